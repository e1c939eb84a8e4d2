"""Shared fixtures.  Tests run offline; real data under ../shared is optional (tests using it skip)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


def _shared_data(name: str, what: str) -> Path:
    """``../shared/data/<name>``; the test is skipped where it is absent (a clone without the data)."""
    path = SHARED / "data" / name
    if not path.is_dir():
        pytest.skip(f"{what} not present (../shared/data/{name})")
    return path


@pytest.fixture(scope="session")
def ec_guide_dir() -> Path:
    return _shared_data("ec-guide", "real EC-Guide data")


@pytest.fixture(scope="session")
def seed_testsets_dir() -> Path:
    return _shared_data("seed-testsets", "seed test sets")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny Llama model (tokenizer + weights) built from scratch once per test session."""
    from shop_eval.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    build_tiny_model(out, seed=0, quick=True)
    return out


@pytest.fixture
def clean_env():
    """For tests that load axolotl configs or train with it: axolotl registers plugins (Liger) in its singleton
    PluginManager and sets env vars process-wide, and both would reach later tests: undo them afterwards."""
    import os

    from axolotl.integrations.base import PluginManager

    saved = dict(os.environ)
    manager = PluginManager.get_instance()
    before = set(manager.plugins)
    yield
    for name in list(manager.plugins):
        if name not in before:
            del manager.plugins[name]
    os.environ.clear()
    os.environ.update(saved)
    # axolotl's load_cfg starts colorama, whose exit hook would write to pytest's closed capture stream
    import atexit

    import colorama.initialise

    atexit.unregister(colorama.initialise.reset_all)
