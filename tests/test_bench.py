"""CPU checks of the GPU benchmarks' logic (bench/): parameter and FLOP accounting against an independently
built model, token counting of real vs pad tokens, batching, the axolotl plugin's packed-segment
accounting, config and command construction, forced stopping, result schemas, the wheel list and the
import stubs.  No GPU, no training; a few seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # bench/ is a folder of scripts beside the package, not installed

from bench import common  # noqa: E402
from bench import train_throughput as tt  # noqa: E402
from bench.token_stats import batch_stats, logged, segment_pairs  # noqa: E402


# ----------------------------------------------------------------------------- parameters and FLOPs
def test_yi9b_parameter_count_matches_published_size():
    p = common.count_params(common.YI_9B)
    assert p.total == 8_829_009_920  # Yi-9B: ~8.8B parameters (48 layers, untied 64k vocabulary)
    assert p.embedding == 64000 * 4096
    assert p.lora == 48 * 16 * sum(
        i + o for i, o in [(4096, 4096), (4096, 512), (4096, 512), (4096, 4096)] + [(4096, 11008)] * 3
    )


def test_param_count_matches_a_built_model_and_peft():
    """Independent reference: count nn.Linear weights of a real LlamaForCausalLM and PEFT's trainable params."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = {**common.TINY, "num_hidden_layers": 3, "vocab_size": 1000}
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    p = common.count_params(cfg, lora_r=4)
    assert p.linear == linear
    assert p.embedding == model.get_input_embeddings().weight.numel()
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=common.LORA_TARGETS))
    assert p.lora == sum(x.numel() for x in peft.parameters() if x.requires_grad)


def test_attention_flops_by_hand():
    cfg = {"hidden_size": 4, "num_hidden_layers": 2}
    # one segment of 3 tokens: positions attend 1, 2, 3 keys; 4*d*L per attended key
    assert common.attention_flops_forward(cfg, [3]) == 4 * 4 * 2 * (1 + 2 + 3)
    # two independent segments cost less than one of the summed length (causal, no cross-attention)
    assert common.attention_flops_forward(cfg, [2, 1]) == 4 * 4 * 2 * (1 + 2 + 1)


def test_lora_train_flops_and_mfu():
    cfg = {**common.TINY, "num_hidden_layers": 1, "vocab_size": 100}
    p = common.count_params(cfg, 2)
    got = common.lora_train_flops(cfg, n_tokens=10, segment_lengths=[10], lora_r=2)
    assert got == (4 * p.linear + 6 * p.lora) * 10 + 3 * common.attention_flops_forward(cfg, [10])
    assert common.mfu(8e14, 2.0, 8e14) == 0.5
    assert common.mfu(1.0, 0.0, 1.0) == 0.0


def test_summarize_counts_real_tokens_and_mfu():
    args = tt.parse_args(["--tiny"])
    args.peak_tflops = 100.0
    cfg = common.shape("tiny")
    steps = [{"real": 300, "slots": 400, "pairs": 3 * 100 * 101 // 2, "seconds": 0.5}] * 2
    out = tt.summarize("x", cfg, steps, args)
    assert out["tok_s"] == 600.0 and out["padding_fraction"] == 0.25
    p = common.count_params(cfg, 16)
    flops = 2 * ((4 * p.linear + 6 * p.lora) * 300 + 3 * common.attention_flops_forward(cfg, [100, 100, 100]))
    assert out["mfu"] == round(flops / 1.0 / 100e12, 4)


# ----------------------------------------------------------------------------- examples and batches
LENGTHS = [{"task_type": "generation", "prompt": 5, "answer": 3}, {"task_type": "retrieval", "prompt": 9, "answer": 1}]


def test_make_examples_masks_prompts_and_never_uses_pad():
    ex = common.make_examples(LENGTHS, 50, vocab=200, seed=1)
    for e in ex:
        n_prompt = sum(1 for x in e.labels if x == -100)
        assert n_prompt in (5, 9)
        assert len(e.input_ids) == n_prompt + {5: 4, 9: 2}[n_prompt]  # answer + EOS
        assert e.labels[n_prompt:] == e.input_ids[n_prompt:]
        assert all(common.FIRST_ID <= t < 200 for t in e.input_ids)
    assert common.make_examples(LENGTHS, 50, vocab=200, seed=1)[7].input_ids == ex[7].input_ids  # seeded


def test_make_examples_truncates_to_max_len_keeping_the_answer():
    (e,) = common.make_examples([{"prompt": 100, "answer": 20}], 1, vocab=50, max_len=64)
    assert len(e.input_ids) == 64 and sum(1 for x in e.labels if x != -100) == 21


def test_padded_batches_count_real_and_pad_tokens():
    ex = [common.Example([7] * n, [-100] * (n - 1) + [7]) for n in (3, 5, 8, 2, 4)]
    batches = common.padded_batches(ex, batch_size=2, multiple=4)
    assert [len(b["input_ids"][0]) for b in batches] == [8, 8, 4]  # 5 -> 8, 8 -> 8, 4 -> 4
    assert [b["real_tokens"] for b in batches] == [8, 10, 4]
    b = batches[0]
    assert b["input_ids"][0] == [7, 7, 7] + [common.PAD_ID] * 5
    assert b["attention_mask"][0] == [1, 1, 1, 0, 0, 0, 0, 0]
    assert b["labels"][0][3:] == [-100] * 5
    assert common.padding_fraction(batches) == pytest.approx(1 - 22 / (16 + 16 + 4))


def test_fixed_blocks_are_full_and_drop_the_remainder():
    ex = [common.Example(list(range(10, 10 + n)), [0] * n) for n in (5, 7, 6)]  # 18 tokens
    batches = common.fixed_blocks(ex, block=4, batch_size=2)  # 4 blocks -> 2 batches, 2 tokens dropped
    assert len(batches) == 2
    assert all(b["real_tokens"] == 8 and b["attention_mask"] is None for b in batches)
    assert batches[0]["input_ids"][0] == [10, 11, 12, 13] and batches[0]["labels"] == batches[0]["input_ids"]
    assert common.padding_fraction(batches) == 0.0


def test_committed_length_sample_is_real_data_shaped():
    ex = common.load_lengths()
    assert len(ex) >= 1000
    assert {"generation", "multiple-choice", "retrieval", "named_entity_recognition"} <= {e["task_type"] for e in ex}
    assert all(e["prompt"] > 0 and e["answer"] > 0 for e in ex)


# ----------------------------------------------------------------------------- the axolotl plugin's accounting
def test_segment_pairs_of_packed_rows():
    # row 0: segments of 3 and 2 then one pad slot; row 1: one segment of 4
    pos = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 0]])
    real = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    assert segment_pairs(pos, real) == (6 + 3) + 10


def test_batch_stats_counts_non_pad_and_trained_tokens():
    ids = torch.tensor([[5, 6, 7, 8, 0, 0]])
    inputs = {"input_ids": ids, "labels": torch.tensor([[-100, -100, 7, 8, -100, -100]])}
    s = batch_stats(inputs, pad_id=0)
    assert s == {"real": 4, "slots": 6, "trained": 2, "pairs": 10}
    inputs["position_ids"] = torch.tensor([[0, 1, 0, 1, 0, 0]])
    assert batch_stats(inputs, pad_id=0)["pairs"] == 3 + 3


def test_logged_reads_axolotl_string_metrics():
    hist = [{"memory/max_allocated (GiB)": "44.03"}, {"loss": 1.0}, {"memory/max_allocated (GiB)": 21.5}]
    assert logged(hist, "memory/max_allocated (GiB)") == [44.03, 21.5]


def test_peaks_from_axolotl_log():
    from bench.collect_results import peaks_from_log

    text = (
        "{'loss': '11.87', 'memory/max_active (GiB)': '44.03', 'memory/max_allocated (GiB)': '44.03', "
        "'memory/device_reserved (GiB)': '44.35'}\n{'memory/max_allocated (GiB)': '21.7', "
        "'memory/device_reserved (GiB)': '44.49'}"
    )
    assert peaks_from_log(text) == {"peak_allocated_gib": 44.03, "peak_reserved_gib": 44.49}


# ----------------------------------------------------------------------------- config and commands
@pytest.fixture(scope="module")
def recipe():
    import yaml

    path = REPO / "recipes" / "sft.yml"
    if not path.exists():
        pytest.skip("recipes/sft.yml not present")
    return yaml.safe_load(path.read_text())


def test_axolotl_config_keeps_the_recipe_and_overrides_only_what_the_device_forces(recipe, tmp_path):
    args = tt.parse_args(["--ours-steps", "30"])
    conf = tt.axolotl_config(recipe, tt.recipe_overrides(args, tmp_path, "cuda"))
    for key in ("sample_packing", "lora_r", "lora_alpha", "lora_dropout", "lora_target_linear", "sequence_len",
                "micro_batch_size", "gradient_accumulation_steps", "gradient_checkpointing", "liger_rms_norm",
                "liger_fused_linear_cross_entropy", "learning_rate", "optimizer", "bf16"):  # fmt: skip
        assert conf.get(key) == recipe.get(key), key
    assert conf["plugins"] == ["axolotl.integrations.liger.LigerPlugin", "bench.axolotl_plugin.BenchPlugin"]
    assert conf["attn_implementation"] == "sdpa" and conf["sdpa_varlen"] is True
    assert conf["base_model"] == str(tmp_path / "model") and conf["max_steps"] == 30
    assert "deepspeed" not in conf and "test_datasets" not in conf  # None removes a key
    assert conf["datasets"] == [{"path": str(tmp_path / "data" / "train.jsonl"), "ds_type": "json"}]
    lever = tt.axolotl_config(recipe, {**tt.recipe_overrides(args, tmp_path, "cuda"), **tt.LEVERS["zero2_1gpu"][0]})
    assert lever["deepspeed"] == "recipes/deepspeed/zero2.json"


def test_cpu_config_disables_gpu_only_features(recipe, tmp_path):
    conf = tt.axolotl_config(recipe, tt.recipe_overrides(tt.parse_args(["--tiny", "--dry-run"]), tmp_path, "cpu"))
    assert conf["bf16"] is False and conf["fp16"] is False
    assert not any(k.startswith("liger_") for k in conf)
    assert all(conf[k] is False for k in ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel"))


def test_axolotl_commands_run_preprocess_then_train():
    pre, train = tt.axolotl_commands(Path("/w/ours.yml"))
    assert pre == [sys.executable, "-m", "axolotl.cli.main", "preprocess", "/w/ours.yml"]
    assert train == [sys.executable, "-m", "axolotl.cli.main", "train", "/w/ours.yml", "--launcher", "python"]


def test_levers_each_state_a_prediction():
    for name, (overrides, prediction) in tt.LEVERS.items():
        assert overrides and "predict" in prediction, name


def test_write_dataset_is_pretokenized(tmp_path):
    ex = common.make_examples(LENGTHS, 3, vocab=100)
    tt.write_dataset(ex, tmp_path / "d" / "train.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    assert [r["input_ids"] for r in rows] == [e.input_ids for e in ex]
    assert all(
        r["attention_mask"] == [1] * len(r["input_ids"]) and len(r["labels"]) == len(r["input_ids"]) for r in rows
    )


# ----------------------------------------------------------------------------- results
def test_train_result_has_the_issue_fields():
    args = tt.parse_args(["--tiny"])
    paths = {
        "padded": {"path": "padded", "tok_s": 100.0, "peak_allocated_gib": 5.0},
        "padded_nocudnn": {"path": "padded_nocudnn", "tok_s": 200.0},
        "fixed": {"path": "fixed", "tok_s": 1000.0, "peak_allocated_gib": 9.0},
        "ours": {"path": "ours", "tok_s": 1500.0, "peak_allocated_gib": 8.0},
    }
    res = tt.build_result(args, common.shape("tiny"), paths, "cpu", {})
    common.check_result(res, "train")
    assert res["train_ratio"] == 1.5 and res["train_ratio_padded"] == 7.5  # against the faster padded variant
    assert res["padded_baseline_variant"] == "padded_nocudnn"
    assert (res["baseline_peak_gib"], res["recipe_peak_gib"]) == (9.0, 8.0)
    with pytest.raises(ValueError, match="eval_ratio"):
        common.check_result({"device": 1, "versions": 1, "settings": 1}, "eval")


def test_committed_results_have_the_issue_fields():
    results = REPO / "bench" / "results"
    for path in sorted([*results.glob("train_*.json"), *results.glob("eval_*.json")]):
        res = json.loads(path.read_text())
        if "train_ratio" in res:
            common.check_result(res, "train")
            if res["recipe_tok_s"] and res["baseline_tok_s"]:  # the 8-layer smoke file has the padded loops only
                assert res["train_ratio"] == round(res["recipe_tok_s"] / res["baseline_tok_s"], 3)
        elif "eval_ratio" in res and "smoke" not in path.name:
            common.check_result(res, "eval")


# ----------------------------------------------------------------------------- evaluation logic
def test_eval_rates_extrapolate_the_defaults_per_task():
    from bench.eval_throughput import setting_rates

    per = {
        "defaults": {"a": {"examples": 4, "examples_s": 2.0, "generated_tok_s": 10.0}, "b": {"examples": 4, "examples_s": 0.5, "generated_tok_s": 50.0}},
        "ours": {"a": {"examples": 100, "examples_s": 50.0, "generated_tok_s": 0.0}, "b": {"examples": 100, "examples_s": 10.0, "generated_tok_s": 500.0}},
    }  # fmt: skip
    r = setting_rates(per)
    assert r["defaults"]["seconds"] == 100 / 2.0 + 100 / 0.5  # each task's rate times ours' count
    assert r["defaults"]["examples_s"] == round(200 / 250, 3)
    assert r["ours"]["seconds"] == 2 + 10


def test_max_gen_toks_cover_the_real_answers():
    from bench.eval_throughput import KIT_MAX_GEN_TOKS, MAX_GEN_TOKS

    by_type: dict[str, list[int]] = {}
    for e in common.load_lengths():
        by_type.setdefault(e["task_type"], []).append(e["answer"])
    for t, lengths in by_type.items():
        lengths.sort()
        p99 = lengths[int(0.99 * (len(lengths) - 1))]
        assert MAX_GEN_TOKS.get(t, KIT_MAX_GEN_TOKS) >= min(p99, KIT_MAX_GEN_TOKS), t


def test_forced_stop_ends_each_row_after_its_answer_length():
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.eval_throughput import ForcedStop

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{**common.TINY, "vocab_size": 1000}, eos_token_id=common.EOS_ID)).eval()

    class Tok:  # ForcedStop only decodes prompts to look up their answer length
        def decode(self, ids, skip_special_tokens=True):
            return " ".join(str(int(i)) for i in ids if int(i) != common.PAD_ID)

    prompts = torch.tensor([[common.PAD_ID, 5, 6, 7], [8, 9, 10, 11]])
    mask = (prompts != common.PAD_ID).long()
    lengths = {"5 6 7": 2, "8 9 10 11": 4}
    with ForcedStop(model, Tok(), lengths, common.EOS_ID) as fs:
        out = model.generate(
            input_ids=prompts, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=common.PAD_ID
        )
    new = out[:, 4:]
    assert new[0, 1] == common.EOS_ID and (new[0, 2:] == common.PAD_ID).all()  # 1 answer token + EOS
    assert common.EOS_ID not in new[1, :3].tolist() and new[1, 3] == common.EOS_ID
    assert fs.misses == 0
    assert model.generate != fs.generate  # restored on exit


# ----------------------------------------------------------------------------- carrying to the device
def test_wheel_list_is_pinned_and_never_carries_the_image_stack():
    names = []
    for line in (REPO / "bench" / "wheels.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            spec = line.split()[0]
            name, _, version = spec.partition("==")
            assert version, f"unpinned: {line}"
            names.append(name.lower().replace("_", "-"))
    assert len(names) == len(set(names))
    forbidden = {"torch", "transformers", "peft", "numpy", "accelerate", "triton", "bitsandbytes", "wandb", "pandas"}
    assert not forbidden & set(names)
    assert {"axolotl", "liger-kernel", "lm-eval", "deepspeed", "trl", "datasets", "pydantic"} <= set(names)


def test_stubs_import_and_refuse_use():
    code = (
        "import importlib.util, bitsandbytes as bnb, wandb\n"
        "from bitsandbytes.nn import Params4bit\n"
        "from bitsandbytes.functional import QuantState\n"
        "assert importlib.util.find_spec('wandb') is not None and wandb.run is None\n"
        "assert not isinstance(object(), bnb.nn.Linear4bit)\n"
        "print(callable(bnb.functional.lib.cdequantize_blockwise_fp32))\n"
        "Params4bit()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench" / "stubs")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "True"
    assert "is a benchmark stub" in proc.stderr
