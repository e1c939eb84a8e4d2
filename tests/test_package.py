"""Installed from a wheel, outside the checkout, every command finds what it ships: the lm-eval tasks (for
``--include_path``), the recipes (``shop-eval recipes ls|cp``), the sample data; scoring and the eval launcher
work from another directory, and lm-eval runs the installed tasks on a tiny model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    wheels, target, src = tmp / "wheels", tmp / "site", tmp / "src"
    # build from a copy of the checkout's files (tracked or not ignored): no stale build/ folder can leak in,
    # and the checkout gets no build/ or egg-info of its own
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split("\n")  # fmt: skip
    for name in filter(None, files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = wheels.glob("shop_eval-*.whl")
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return target


def _cli(installed: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("SHOP_EVAL_DATA", None)
    return subprocess.run([sys.executable, "-m", "shop_eval.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def test_the_wheel_is_what_runs(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    out = subprocess.run([sys.executable, "-c", "import shop_eval; print(shop_eval.__file__)"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.strip().startswith(str(installed))


def test_tasks_and_recipes_ship_with_the_wheel(installed, tmp_path):
    path = _cli(installed, tmp_path, "tasks", "path")
    assert path.returncode == 0, path.stderr
    tasks = Path(path.stdout.strip())
    assert tasks == installed / "shop_eval" / "_data" / "lm_eval_tasks"
    assert (tasks / "utils.py").is_file() and (tasks / "data" / "sample.jsonl").is_file()
    names = _cli(installed, tmp_path, "tasks", "ls").stdout.split()
    assert {"shop_multiple_choice", "shopbench", "shoppingmmlu", "shopmmlu_concept_ner"} <= set(names)
    recipes = _cli(installed, tmp_path, "recipes", "ls").stdout.split()
    assert {"sft.yml", "cpt.yml", "tiny/sft.yml"} <= set(recipes)
    cp = _cli(installed, tmp_path, "recipes", "cp", "sft.yml", "mine.yml")
    assert cp.returncode == 0, cp.stderr
    assert (tmp_path / "mine.yml").read_bytes() == (REPO / "recipes" / "sft.yml").read_bytes()


def test_score_and_eval_dry_run_from_another_directory(installed, tmp_path):
    out = tmp_path / "r.json"
    run = _cli(
        installed, tmp_path, "score", str(REPO / "tests" / "fixtures" / "kit_dev.jsonl"), "truth", "--out", str(out)
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(out.read_text())["protocols"]["official"]["tasks"]["task2"]["score"] == 1.0
    dry = _cli(installed, tmp_path, "eval", "--model", "m", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"--include_path {installed / 'shop_eval' / '_data' / 'lm_eval_tasks'}" in dry.stdout


@pytest.mark.slow
def test_lm_eval_runs_the_installed_tasks(installed, tmp_path, tiny_model_dir):
    include = _cli(installed, tmp_path, "tasks", "path").stdout.strip()
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("SHOP_EVAL_DATA", None)
    run = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_model_dir}",
         "--device", "cpu", "--include_path", include, "--tasks", "shop_*", "--limit", "2", "--log_samples",
         "--output_path", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (results,) = (tmp_path / "run").rglob("results_*.json")
    res = json.loads(results.read_text())
    assert {"shop_ner", "shop_multiple_choice_ll"} <= set(res["results"])
    assert res["configs"]["shop_ner"]["dataset_kwargs"]["task_type"] == "named_entity_recognition"
