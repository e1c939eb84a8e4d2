"""A shortened `shop-eval demo` end to end on CPU: sample data -> tiny base -> axolotl LoRA CPT -> merge ->
axolotl LoRA SFT -> merge -> lm-eval shop_* on the held-out split (base and fine-tuned) -> leaderboard.

The `small` preset (fewer products, examples and steps; no separate `axolotl preprocess`) keeps this to a
couple of minutes on 2 cores.  It checks the outputs' structure and that both trainings lowered the loss
(read from axolotl's trainer_state.json); the full demo's numbers are in docs/demo.md.
"""

from __future__ import annotations

import json

import pytest
import yaml

from shop_eval.demo import STAGES, read_losses, run_demo
from shop_eval.records import SHORT_NAMES, TASK_TYPES


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    report = run_demo(out, seed=0, preset="small", preprocess=False, quiet=True)
    return out, report


@pytest.mark.slow
def test_demo_outputs(demo_out):
    out, report = demo_out
    assert json.loads((out / "demo.json").read_text()) == json.loads(json.dumps(report))
    assert list(report["timings"]) == list(STAGES)
    for name in ("corpus.jsonl", "train.jsonl", "test.jsonl", "sft_train.jsonl"):
        assert (out / "data" / name).stat().st_size > 0
    for model in ("base", "cpt/merged", "sft/merged"):
        assert (out / model / "model.safetensors").is_file(), model
        assert (out / model / "tokenizer.json").is_file(), model
    # the resolved recipes point at this run's folders and keep the CPU settings
    for stage, base in (("cpt", out / "base"), ("sft", out / "cpt" / "merged")):
        cfg = yaml.safe_load((out / "configs" / f"{stage}.yml").read_text())
        assert cfg["base_model"] == str(base) and cfg["output_dir"] == str(out / stage)
        assert cfg["bf16"] is False and cfg["fp16"] is False and cfg["lora_mlp_kernel"] is False
        assert cfg["adapter"] == "lora"


@pytest.mark.slow
def test_training_lowered_the_loss(demo_out):
    out, report = demo_out
    for stage in ("cpt", "sft"):
        losses = read_losses(out / stage)  # axolotl's trainer_state.json
        assert losses == report["stages"][stage]["losses"]
        assert len(losses) >= 6
        k = max(1, len(losses) // 5)
        assert sum(losses[-k:]) / k < sum(losses[:k]) / k, (stage, losses)


@pytest.mark.slow
def test_eval_and_leaderboard(demo_out):
    out, report = demo_out
    board = json.loads((out / "leaderboard.json").read_text())
    assert [m["name"] for m in board["models"]] == ["base", "fine-tuned"]
    n_test = report["stages"]["data"]["n_test"]
    for m in board["models"]:
        assert m["lm_eval_agreement"]["ok"]
        types = m["scores"]["shop"]["protocols"]["official"]["task_types"]
        assert set(types) == set(TASK_TYPES)
        for t in TASK_TYPES:
            assert types[t]["n"] == n_test
            assert 0.0 <= types[t]["score"] <= 1.0
            assert m["tasks"][f"shop_{SHORT_NAMES[t]}"]["samples"]
    assert board["comparable"] == {"same_config": True, "same_data": True, "same_task_types": True,
                                   "lm_eval_agreement": True}  # fmt: skip
    md = (out / "leaderboard.md").read_text()
    assert "| `base` |" in md and "| `fine-tuned` |" in md
    assert (out / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    assert set(report["comparison"]) == set(TASK_TYPES)
    assert report["wins"] == sum(v["beats_by_more_than_stderr"] for v in report["comparison"].values())
