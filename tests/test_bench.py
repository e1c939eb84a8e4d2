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
    conf = tt.axolotl_config(recipe, tt.recipe_overrides(args, tmp_path, "cuda", recipe))
    for key in ("sample_packing", "lora_r", "lora_alpha", "lora_dropout", "lora_target_linear", "sequence_len",
                "micro_batch_size", "gradient_accumulation_steps", "gradient_checkpointing", "liger_rms_norm",
                "liger_fused_linear_cross_entropy", "learning_rate", "optimizer", "bf16", "deepspeed",
                "attn_implementation", "sdpa_varlen", "eval_batch_size"):  # fmt: skip
        assert conf.get(key) == recipe.get(key), key
    assert conf["plugins"] == [*recipe["plugins"], "bench.axolotl_plugin.BenchPlugin"]
    assert conf["base_model"] == str(tmp_path / "model") and conf["max_steps"] == 30
    assert conf["datasets"] == [{"path": str(tmp_path / "data" / "chat_train.jsonl"), "ds_type": "json"}]
    # a lever run: no evaluation, no checkpoints (None removes a key)
    assert "test_datasets" not in conf and conf["save_strategy"] == "no" and conf["val_set_size"] == 0.0
    lever = tt.axolotl_config(
        recipe, {**tt.recipe_overrides(args, tmp_path, "cuda", recipe), **tt.RUNS["sft_d0"].overrides}
    )
    assert lever["lora_dropout"] == 0.0


def test_headline_runs_keep_one_evaluation_pass_and_one_save_at_the_last_step(recipe, tmp_path):
    args = tt.parse_args(["--ours-steps", "6"])
    conf = tt.axolotl_config(recipe, tt.recipe_overrides(args, tmp_path, "cuda", recipe, full=True))
    assert conf["eval_steps"] == conf["save_steps"] == conf["max_steps"] == 6
    assert conf["save_strategy"] == "steps" and "evals_per_epoch" not in conf and "saves_per_epoch" not in conf
    assert conf["test_datasets"][0]["path"] == str(tmp_path / "data" / "chat_eval.jsonl")  # sft: held-out file
    assert conf["save_total_limit"] == recipe["save_total_limit"]
    import yaml

    cpt = yaml.safe_load((REPO / "recipes" / "cpt.yml").read_text())
    conf = tt.axolotl_config(cpt, tt.recipe_overrides(args, tmp_path, "cuda", cpt, full=True))
    assert conf["val_set_size"] == cpt["val_set_size"] > 0 and "test_datasets" not in conf  # cpt: its own split
    assert conf["datasets"][0]["path"].endswith("completion_train.jsonl")


def test_cpu_config_disables_gpu_only_features(recipe, tmp_path):
    args = tt.parse_args(["--tiny", "--dry-run"])
    conf = tt.axolotl_config(recipe, tt.recipe_overrides(args, tmp_path, "cpu", recipe))
    assert conf["bf16"] is False and conf["fp16"] is False
    assert not any(k.startswith("liger_") for k in conf) and "deepspeed" not in conf
    assert all(conf[k] is False for k in ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel"))
    assert tt.cpu_safe({"activation_offloading": "hidden_states", "lora_dropout": 0.0}) == {"lora_dropout": 0.0}


def test_commands_are_the_chains_own():
    train = tt.train_command(Path("/w/sft.yml"))
    assert train == [sys.executable, "-m", "axolotl.cli.train", "/w/sft.yml"]  # one worker of accelerate launch
    merge = tt.merge_command(Path("/w/sft.yml"), Path("/w/out"))
    assert merge[1:] == ["-m", "axolotl.cli.main", "merge-lora", "/w/sft.yml", "--lora-model-dir", "/w/out"]
    env = tt.subprocess_env(23.5, Path("/s"), Path("/p"), Path("/g"), 29555)
    assert env["BENCH_MEMORY_CAP_GIB"] == "23.5" and env["BENCH_GO_FILE"] == "/g" and env["MASTER_PORT"] == "29555"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO / "bench" / "memcap")  # the cap hook comes first
    assert env["PYTORCH_ALLOC_CONF"] == "expandable_segments:True" and env["WORLD_SIZE"] == "1"
    assert "BENCH_MEMORY_CAP_GIB" not in tt.subprocess_env(None, Path("/s"), Path("/p"), None, 1)


def test_runs_each_state_a_prediction():
    for name, run in tt.RUNS.items():
        assert (REPO / run.recipe).exists(), name
        if run.overrides:
            assert "predict" in run.prediction or "bench only" in run.prediction, name


def test_run_list_parsing():
    items = tt.parse_items("fixed_b2,sft,merge:sft,sft_80gb@78,fixed_b4_r64_nockpt@0", 23.5)
    assert [(i.kind, i.name, i.cap, i.label) for i in items] == [
        ("plain", "fixed_b2", 23.5, "fixed_b2"),
        ("recipe", "sft", 23.5, "sft"),
        ("merge", "merge:sft", 23.5, "merge_sft"),
        ("recipe", "sft_80gb", 78.0, "sft_80gb@78"),
        ("plain", "fixed_b4_r64_nockpt", None, "fixed_b4_r64_nockpt"),
    ]
    args = tt.parse_args([])
    assert tt.plain_spec("fixed_b3_r64_nockpt", args) == {"batch": 3, "rank": 64, "ckpt": False}
    assert tt.plain_spec("fixed", args) == {"batch": 4, "rank": 16, "ckpt": True}
    for bad, why in [
        ("nope", "unknown run"),
        ("sft@x", "number of GiB"),
        ("merge:nope", "no recipe run"),
        ("sft,sft", "twice"),
    ]:
        with pytest.raises(ValueError, match=why):
            tt.parse_items(bad, None)


def test_bad_cap_option_is_one_clear_error():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "train_throughput.py"), "--memory-cap-gib", "-3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "--memory-cap-gib must be a positive number" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_oom_message_numbers():
    msg = (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 3.91 GiB. GPU 0 has a total capacity of "
        "139.80 GiB of which 89.66 GiB is free. 23.50 GiB allowed; Of the allocated memory 22.77 GiB is allocated "
        "by PyTorch, and 124.99 MiB is reserved by PyTorch but unallocated."
    )
    assert tt.oom_numbers(msg) == {
        "oom_tried_gib": 3.91,
        "oom_allocated_gib": 22.77,
        "oom_reserved_unallocated_gib": 0.12,
    }


def test_completion_examples_train_every_token(tmp_path):
    ex = common.make_examples(LENGTHS, 4, vocab=100)
    doc = common.as_completion(ex[0])
    assert doc.input_ids == ex[0].input_ids and doc.labels == ex[0].input_ids and -100 in ex[0].labels
    args = tt.parse_args(["--tiny", "--dry-run"])
    tt.write_datasets(LENGTHS, args, 100, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "data" / "completion_train.jsonl").read_text().splitlines()]
    chat = [json.loads(x) for x in (tmp_path / "data" / "chat_train.jsonl").read_text().splitlines()]
    assert [r["input_ids"] for r in rows] == [r["input_ids"] for r in chat]  # the same tokens, all trained
    assert all(r["labels"] == r["input_ids"] for r in rows)
    assert (tmp_path / "data" / "chat_eval.jsonl").exists()


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


# ----------------------------------------------------------------------------- the memory cap (bench/memcap)
MEMCAP = REPO / "bench" / "memcap"


def _python(code: str, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(MEMCAP), **env}
    full.pop("BENCH_MEMORY_CAP_GIB", None) if "BENCH_MEMORY_CAP_GIB" not in env else None
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


def test_cap_fraction_by_hand():
    from bench.memcap.sitecustomize import cap_fraction

    assert cap_fraction(23.5, 47 * 2**30) == 0.5
    with pytest.raises(ValueError, match="more than the device"):
        cap_fraction(30, 24 * 2**30)
    with pytest.raises(ValueError, match="positive"):
        cap_fraction(0, 24 * 2**30)


def test_cap_is_registered_at_cuda_start_even_after_an_earlier_lookup_of_torch():
    """Every process that imports torch queues the cap for CUDA's start — also when a library looked torch up
    (importlib.util.find_spec) before importing it, which is what disarmed the first version of the hook."""
    code = (
        "import importlib.util; importlib.util.find_spec('torch')\n"
        "import torch\n"
        "print([c[0].__qualname__ for c in torch.cuda._queued_calls].count('apply.<locals>._set'))\n"
        "print(torch.cuda.reset_peak_memory_stats.__qualname__)\n"
    )
    out = _python(code, BENCH_MEMORY_CAP_GIB="23.5").stdout.split()
    assert out == ["1", "track_peaks.<locals>.reset_after_folding"]
    assert _python(code).stdout.split()[0] == "0"  # no variable: nothing queued, nothing wrapped


def test_bad_cap_variable_stops_the_process_with_one_line():
    proc = _python("print('ran')", BENCH_MEMORY_CAP_GIB="lots")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "error: BENCH_MEMORY_CAP_GIB must be a number of GiB, got 'lots'"


def test_peak_survives_resets_of_torchs_counters(tmp_path):
    """axolotl resets the peak counters each time it logs: the wrapper folds the peak so far in first."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("memcap_under_test", MEMCAP / "sitecustomize.py")
    site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site)
    state = {"alloc": 5 * 2**30, "resv": 6 * 2**30}

    def reset(device=None):
        state.update(alloc=2**30, resv=2**30)

    cuda = SimpleNamespace(
        is_available=lambda: True, is_initialized=lambda: True, device_count=lambda: 1,
        max_memory_allocated=lambda d=0: state["alloc"], max_memory_reserved=lambda d=0: state["resv"],
        reset_peak_memory_stats=reset,
    )  # fmt: skip
    fake = SimpleNamespace(cuda=cuda)
    site.track_peaks(fake, None)
    fake.cuda.reset_peak_memory_stats(0)  # the peak of 5 / 6 GiB is folded in before the reset
    state.update(alloc=3 * 2**30)
    assert site.peaks_gib(fake) == {"peak_allocated_gib": 5.0, "peak_reserved_gib": 6.0}


# ----------------------------------------------------------------------------- the plugin's timing
def test_plugin_takes_evaluation_and_save_out_of_the_step_time(monkeypatch, tmp_path):
    from bench import axolotl_plugin as ap

    clock = iter([0.0, 10.0, 13.0, 20.0, 21.0, 30.0, 31.0, 40.0])  # begin, eval 10-13, end, save 21-30, end, ...
    monkeypatch.setattr(ap.time, "perf_counter", lambda: next(clock))
    timer = ap._StepTimer(str(tmp_path / "s.json"))
    timer.on_train_begin(None, None, None)
    assert timer.timed("eval", lambda: "metrics") == "metrics"
    timer.add({"real": 100, "slots": 128, "trained": 10, "pairs": 5})
    timer.on_step_end(None, None, None)  # at 20: 20 - 0 - 3 s of evaluation
    timer.timed("save", lambda: None)
    timer.on_step_end(None, None, None)  # at 31: 31 - 20 - 9 s of saving
    assert [s["seconds"] for s in timer.steps] == [17.0, 2.0]
    assert timer.steps[0]["real"] == 100 and timer.steps[1]["real"] == 0
    assert [e["seconds"] for e in timer.evals] == [3.0] and [s["seconds"] for s in timer.saves] == [9.0]


def test_go_file_wait(tmp_path):
    import threading

    from bench.axolotl_plugin import wait_for_go

    go = tmp_path / "run.go"
    threading.Timer(0.3, go.write_text, args=("go",)).start()
    assert wait_for_go(str(go), timeout=60, poll=0.05) >= 0.0
    with pytest.raises(TimeoutError, match="no go file"):
        wait_for_go(str(tmp_path / "never.go"), timeout=0.1, poll=0.05)


# ----------------------------------------------------------------------------- headline rows and merging calls
def _row(kind, run, tok, cap, rank=16, error=None, **kw):
    return {
        "kind": kind,
        "run": run,
        "path": run,
        "tok_s": tok,
        "memory_cap_gib": cap,
        "lora_r": rank,
        "error": error,
        **kw,
    }


def test_best_plain_is_the_fastest_that_fit_the_same_cap_at_the_same_rank():
    paths = {
        "a": _row("plain", "fixed_b2", 5000.0, 23.5),
        "b": _row("plain", "fixed_b3", None, 23.5, error="CUDA out of memory"),
        "c": _row("plain", "fixed_b4", 5600.0, 78.0),
        "d": _row("plain", "fixed_b1_r64", 3200.0, 23.5, rank=64),
    }
    assert common.best_plain(paths, 23.5)["path"] == "fixed_b2"
    assert common.best_plain(paths, 23.5, 64)["path"] == "fixed_b1_r64"
    assert common.best_plain(paths, 23.5, 32)["path"] == "fixed_b2"  # no plain loop at that rank: any rank
    assert common.best_plain(paths, 78.0)["path"] == "fixed_b4" and common.best_plain(paths, 40.0) == {}


def test_headline_rows_and_their_checks():
    fields = dict(recipe="recipes/sft.yml", peak_allocated_gib=20.0, peak_reserved_gib=21.0, max_steps=6)
    fields.update(timed_steps=4, eval_included=True, save_included=True)
    paths = {"fixed_b2": _row("plain", "fixed_b2", 5000.0, 23.5), "sft": _row("recipe", "sft", 7600.0, 23.5, **fields)}
    (row,) = common.headline_rows(paths)
    assert row["ratio"] == 1.52 and row["goal"] == 1.5 and row["goal_met"] is True and row["baseline"] == "fixed_b2"
    result = {f: 1 for f in common.TRAIN_FIELDS} | {"headline": [row]}
    common.check_result(result, "train")
    over = dict(row, peak_reserved_gib=24.0)
    with pytest.raises(ValueError, match="over its cap"):
        common.check_result(result | {"headline": [over]}, "train")
    common.check_result(result | {"headline": [dict(over, cap_enforced=False)]}, "train")  # said so: allowed
    with pytest.raises(ValueError, match="lacks fields: eval_included"):
        common.check_result(result | {"headline": [{k: v for k, v in row.items() if k != "eval_included"}]}, "train")


def test_partial_row_from_a_cut_off_log():
    from bench.collect_results import partial_from_log

    log = (
        '"lora_r": 64,\n"max_steps": 3,\n'
        "{'eval_loss': '11.89', 'memory/max_allocated (GiB)': '22.64', 'memory/device_reserved (GiB)': '23.36'}\n"
        "{'loss': '11.89', 'memory/max_allocated (GiB)': '20.29', 'memory/device_reserved (GiB)': '23.44'}\n"
    )
    row = partial_from_log("cpt_eval_capped", "cpt", "recipes/cpt.yml", log, 23.5)
    assert (row["steps_run"], row["eval_passes"], row["eval_included"], row["save_included"]) == (1, 1, True, False)
    assert (row["peak_allocated_gib"], row["peak_reserved_gib"]) == (22.64, 23.44)
    assert (row["lora_r"], row["max_steps"], row["tok_s"]) == (64, 3, None)


def test_committed_recipe_rows_are_the_recipes_as_committed_now():
    """Each recipe run in the committed results ran the recipe as it is now: its recorded config equals the
    committed recipe with the run's own change (RUNS) and the bench's recorded overrides applied.  A row that
    ran an earlier version says how that version differed (``recipe_then``); a headline row of such a run
    names the results file that measured the recipe as committed (``superseded_by``)."""
    import yaml

    results = REPO / "bench" / "results"
    local = {"base_model", "datasets", "test_datasets", "output_dir", "dataset_prepared_path", "plugins"}

    def norm(d):
        return {k: v for k, v in d.items() if k not in local and v not in (None, False)}

    def check(name):
        res = json.loads((results / name).read_text())
        current = set()
        for key, row in res["paths"].items():
            if row.get("kind") != "recipe" or "config" not in row:
                continue
            run = tt.RUNS[row["run"]]
            recipe = yaml.safe_load((REPO / run.recipe).read_text()) | row.get("recipe_then", {})
            want = tt.axolotl_config(recipe, {**row["bench_overrides"], **run.overrides})
            assert norm(row["config"]) == norm(want), (name, key)
            if "recipe_then" not in row:
                current.add(key)
        return res, current

    res, current = check("train_h200.json")
    assert len(current) >= 4  # the rest ran an earlier recipe version (recipe_then); headlines checked below
    for h in res["headline"]:
        assert h["recipe"] in ("recipes/sft.yml", "recipes/cpt.yml", "recipes/sft-80gb.yml", "recipes/cpt-80gb.yml",
                               "recipes/qlora.yml")  # fmt: skip
        if h["run"] in current or "config" not in res["paths"][h["run"]]:
            assert "superseded_by" not in h
            continue
        later, later_current = check(h["superseded_by"])
        (row,) = [r for r in later["headline"] if r["recipe"] == h["recipe"]]
        assert row["run"] in later_current and row["cap_enforced"] and row["peak_reserved_gib"] <= row["memory_cap_gib"]


def test_committed_gpu_packing_check_isolates_both_recipes():
    """The GPU run of bench/packing_check.py (the recipes' varlen path): both recipes isolated, the leak it
    guards against visible, and the lone document compared through the packed rows' own attention path."""
    rows = json.loads((REPO / "bench" / "results" / "train_packing_h200.json").read_text())
    assert sorted(r["recipe"] for r in rows) == ["recipes/cpt.yml", "recipes/sft.yml"]
    for r in rows:
        assert r["device"] == "cuda" and r["varlen_kernel_patched"] and r["documents_after_the_first"] >= 2
        assert r["isolated"] and r["max_abs_diff"] <= r["tolerance"]
        assert r["leak_detectable"] and r["leak_max_abs_diff"] > 10 * r["tolerance"]
        assert "stock_alone_max_abs_diff" in r


def test_eval_whole_sample_compares_one_run_with_the_per_task_runs():
    from bench.eval_throughput import budget_group_max_gen_toks, whole_sample

    assert budget_group_max_gen_toks() == {
        "retrieval": 16, "ranking": 32, "named_entity_recognition": 32, "generation": 100, "classification": 8
    }  # fmt: skip
    rates = {"ours_stop": {"seconds": 30.0}}
    one = {
        "fast_stop_group": {"seconds": 6.0, "model_seconds": 4.0},
        "ours_stop_group": {"seconds": 12.0, "model_seconds": 10.0},
    }
    ws = whole_sample(rates, one)
    assert ws["recommended_per_task_runs_s"] == 30.0 and ws["hf_one_run_s"] == 12.0
    assert ws["fast_stop_group"] == {
        "seconds": 6.0, "model_seconds": 4.0, "ratio_vs_recommended": 5.0, "ratio_one_run_like_for_like": 2.0,
        "model_time_ratio_one_run": 2.5,
    }  # fmt: skip
    assert whole_sample(rates, {"ours_stop_group": one["ours_stop_group"]}) is None  # no hf-fast run: nothing


def test_kernel_profile_and_decode_attention_probe_run_on_the_cpu(tmp_path, tiny_model_dir):
    """The two GPU diagnostics end to end on a 2-layer model / tiny shapes: every prefill setting and decode variant
    is reported, the fused-norm variants did replace the model's norms, and each attention kernel that runs on a
    CPU matches the float64 reference."""
    from bench import decode_attention_probe, kernel_profile

    out = tmp_path / "k.json"
    assert kernel_profile.main(["--tiny", "--tokenizer", str(tiny_model_dir), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"prefill_tokens=128", "prefill_tokens=0", "prefill_tokens=8192+fused_norm"} <= set(res["prefill"])
    assert res["prefill"]["prefill_tokens=128"]["chunks"] > 1 and res["prefill"]["prefill_tokens=0"]["chunks"] == 1
    dec = res["decode"]
    assert {k: v["norms_fused"] for k, v in dec.items()} == {"plain": 0, "fused_norm": 5, "fused_norm+cudnn": 5}
    assert all(v["eager_profile"]["kernels"] > 0 for v in dec.values())
    assert kernel_profile.kernel_class("nvjet_sm90_tst_192x56_64x6_4x2_h_bz_TNT") == "gemm"
    assert kernel_profile.kernel_class("fmha_cutlassF_bf16_aligned_64x128_rf_sm80") == "attention"
    assert kernel_profile.kernel_class("cudnn_generated_fort_native_sdpa_sm90_flash_fprop") == "attention"
    out = tmp_path / "a.json"
    assert decode_attention_probe.main(["--cpu", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["cache_len=64"]
    assert rows["math"]["max_abs_err"] < 0.02 and rows["matmul_bf16"]["max_abs_err"] < 0.05


SAMPLE_JSONL = REPO / "lm_eval_tasks" / "data" / "sample.jsonl"


def test_eval_commands_are_the_documented_commands_with_the_bench_options(tmp_path):
    from bench import eval_commands
    from bench.eval_throughput import OURS_TASKS, TASK_TYPES

    args = eval_commands.parse_args([
        "--shape", "tiny", "--work", str(tmp_path), "--per-type", "3", "--device", "cpu",
        "--data", str(SAMPLE_JSONL), "--out", str(tmp_path / "r.json"),
    ])  # fmt: skip
    ours = eval_commands.commands("ours", "/m", args, tmp_path)
    assert [c[c.index("--tasks") + 1] for c in ours] == [OURS_TASKS[t] for t in TASK_TYPES]
    for i, c in enumerate(ours):
        assert c[:3] == [sys.executable, "-m", "lm_eval"] and "pretrained=/m,dtype=bfloat16" in c
        assert c[c.index("--limit") + 1] == "3" and c[c.index("--device") + 1] == "cpu" and "--log_samples" in c
        assert c[c.index("--output_path") + 1] == str(tmp_path / "ours" / str(i))
    (fast,) = eval_commands.commands("fast_group", "/m", args, tmp_path)
    assert fast[:4] == [sys.executable, "-m", "shop_eval.hf_fast", "--model"] and "hf-fast" in fast


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--settings", "ours,nope"], "unknown nope (one of"),
        (["--settings", ","], "expected one or more of"),
        (["--per-type", "0"], "--per-type: 0 is out of range"),
        (["--per-type", "99999999999999999999"], "--per-type: 99999999999999999999 is out of range"),
        (["--batch-size", "0"], "--batch-size: 0 is out of range"),
        (["--timeout", "0"], "--timeout: 0 is out of range"),
        (["--per-type", "1.5"], "expected a whole number"),
        (["--data", "/nonexistent.jsonl"], "not a file"),
        (["--model", "/"], "no config.json there"),
        (["--out", "/proc/r.json"], "cannot be written"),
        (["--work", "FILE"], "--work"),
        (["--shape", "tiny"], "--shape needs --work"),
    ],
)
def test_eval_commands_refuses_bad_options_before_any_run(tmp_path, capsys, argv, message):
    from bench import eval_commands

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "FILE").write_text("")
    argv = [str(tmp_path / "FILE") if a == "FILE" else a for a in argv]
    base = ["--data", str(SAMPLE_JSONL), "--out", str(tmp_path / "r.json"), "--device", "cpu"]
    if "--model" not in argv and "--shape" not in argv:
        base += ["--model", str(tmp_path / "model")]
    with pytest.raises(SystemExit) as exc:
        eval_commands.parse_args(base + argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()  # the check that --out can be written leaves nothing behind


def test_eval_commands_settings_named_twice_run_once_and_cuda_needs_a_gpu(tmp_path, capsys, monkeypatch):
    from bench import eval_commands

    base = ["--shape", "tiny", "--work", str(tmp_path), "--data", str(SAMPLE_JSONL), "--out", str(tmp_path / "r.json")]
    args = eval_commands.parse_args(base + ["--device", "cpu", "--settings", "ours_group, fast_group,ours_group"])
    assert args.settings == ["ours_group", "fast_group"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        eval_commands.parse_args(base + ["--device", "cuda:0"])
    assert exc.value.code == 2 and "--device cuda:0: no GPU here" in capsys.readouterr().err


def _samples_folder(folder: Path, tasks: dict, seconds: str = "12.5") -> None:
    """An lm-eval output folder as ``--log_samples`` writes it: a results file and a samples file a task."""
    run = folder / "__m__"
    run.mkdir(parents=True)
    results = {"results": {"shopbench_budget": {"alias": "g"}}, "total_evaluation_time_seconds": seconds}
    for task, (metrics, samples) in tasks.items():
        results["results"][task] = {"alias": task, **metrics}
        with (run / f"samples_{task}_2026-12-01T16-53-34.469.jsonl").open("w") as f:
            for s in samples:
                f.write(json.dumps(s) + "\n")
    (run / "results_2026-12-01T16-53-34.469.json").write_text(json.dumps(results))


def test_eval_commands_reads_lm_eval_files_and_compares_the_options_chosen(tmp_path):
    """Samples files hold log-likelihood scores as strings: the option chosen is the highest number (index 1
    here; the highest string would be index 3); task names keep their underscores; NaN metrics become null and a
    group's metric-less entry is left out; responses compared by text / option, docs only one side has counted."""
    from bench import eval_commands

    ll = lambda doc, scores: {"doc_id": doc, "doc": {}, "resps": [[[str(x), "False"]] for x in scores]}  # noqa: E731
    gen = lambda doc, text: {"doc_id": doc, "doc": {}, "resps": [[text]]}  # noqa: E731
    _samples_folder(tmp_path / "a", {
        "shop_multiple_choice_ll": ({"shop_score,none": 0.5}, [ll(0, [-11.0, -10.5, -10.75, -11.25]), ll(1, [-2, -1])]),
        "shop_ner": ({"shop_score,official": float("nan")}, [gen(0, "x"), gen(1, "y"), gen(2, "z")]),
    })  # fmt: skip
    scores, responses, own = eval_commands.read_run(tmp_path / "a")
    assert own == 12.5 and set(scores) == {"shop_multiple_choice_ll", "shop_ner"}
    assert scores["shop_ner"] == {"shop_score,official": None}
    assert responses == {"shop_multiple_choice_ll": {"0": "1", "1": "1"}, "shop_ner": {"0": "x", "1": "y", "2": "z"}}
    other = {"shop_multiple_choice_ll": {"0": "1", "1": "0"}, "shop_ner": {"0": "x", "1": "y!"}, "shop_x": {"0": "q"}}
    c = eval_commands.compare(responses, other)
    assert (c["compared"], c["identical"], c["unmatched"]) == (4, 2, 2)  # ner doc 2 and shop_x doc 0 unmatched
    assert c["tasks"]["shop_ner"]["identical"] == 1 and c["tasks"]["shop_multiple_choice_ll"]["identical"] == 1


def test_eval_commands_saves_after_every_command_and_reads_only_this_runs_files(tmp_path, monkeypatch):
    """Stand-in commands (lm-eval not run): the first writes a results file, the second exits 3.  A result is
    saved after each; a stale results file an earlier run left in the output folder is not read; the first
    command's setting is ``done``, the failing one ``failed`` with its output's end, and later commands never
    start."""
    from bench import eval_commands

    write = (
        "import json, pathlib, sys; o = pathlib.Path(sys.argv[sys.argv.index('--output_path') + 1]) / 'm'; "
        "o.mkdir(parents=True); (o / 'results_1.json').write_text(json.dumps({'results': {'t': {'s': 1.0}}, "
        "'total_evaluation_time_seconds': '0.5'}))"
    )
    fail = "import sys; print('boom'); sys.exit(3)"
    scripts = {"a": [write], "b": [write, fail, write]}

    def fake(setting, model, args, out_dir):
        return [
            [sys.executable, "-c", code, "--tasks", f"t{i}", "--output_path", str(out_dir / setting / str(i))]
            for i, code in enumerate(scripts[setting])
        ]

    monkeypatch.setattr(eval_commands, "commands", fake)
    stale = tmp_path / "runs" / "a" / "0" / "old"
    stale.mkdir(parents=True)
    (stale / "results_0.json").write_text(json.dumps({"results": {"stale": {"s": 9.0}}}))
    args = eval_commands.parse_args([
        "--shape", "tiny", "--work", str(tmp_path), "--data", str(SAMPLE_JSONL), "--out", str(tmp_path / "r.json"),
        "--device", "cpu",
    ])  # fmt: skip
    saved = []
    res_a: dict = {}
    eval_commands.run_setting("a", "/m", args, tmp_path / "runs", dict(os.environ), res_a, lambda: saved.append(1))
    assert res_a["done"] and res_a["scores"] == {"t": {"s": 1.0}} and res_a["runs"][0]["lm_eval_seconds"] == 0.5
    res_b: dict = {}
    snapshots = []
    eval_commands.run_setting(
        "b", "/m", args, tmp_path / "runs", dict(os.environ), res_b, lambda: snapshots.append(len(res_b["runs"]))
    )
    assert saved == [1] and snapshots == [1, 2]
    assert res_b["failed"] and "done" not in res_b and [r["rc"] for r in res_b["runs"]] == [0, 3]
    assert "boom" in res_b["runs"][1]["output_tail"] and "boom" in (tmp_path / "runs" / "b" / "1.log").read_text()


def test_eval_commands_runs_hf_and_hf_fast_as_commands_with_the_same_responses(tmp_path, tiny_model_dir):
    """Both group commands end to end on the CPU (one example of each task type): each timed, lm-eval's own
    time read back, the ratio the two totals', and on the trained tiny model every response and score equal."""
    from bench import eval_commands

    out = tmp_path / "r.json"
    argv = ["--model", str(tiny_model_dir), "--device", "cpu", "--per-type", "1", "--settings", "ours_group,fast_group"]
    argv += ["--data", str(SAMPLE_JSONL), "--work", str(tmp_path / "w"), "--out", str(out)]
    assert eval_commands.main(argv) == 0
    res = json.loads(out.read_text())
    hf, fast = res["runs"]["ours_group"], res["runs"]["fast_group"]
    assert hf["done"] and fast["done"] and [r["rc"] for r in hf["runs"] + fast["runs"]] == [0, 0]
    assert "-m lm_eval --model hf " in hf["runs"][0]["command"]
    for r in hf["runs"] + fast["runs"]:
        assert 0 < r["lm_eval_seconds"] < r["seconds"]
    assert fast["ratio_vs_ours_group"] == round(hf["seconds"] / fast["seconds"], 3)
    tasks = {"shop_multiple_choice_ll", "shop_retrieval", "shop_ranking", "shop_ner", "shop_generation"}
    tasks.add("shop_classification")
    assert set(hf["scores"]) == tasks and fast["scores_vs_ours_group"] == {"tasks": 6, "differ": []}
    same = fast["responses_vs_ours_group"]
    assert same["compared"] == same["identical"] == 6 and set(same["tasks"]) == tasks
    assert (tmp_path / "w" / "runs" / "fast_group" / "0.log").read_text()


def test_eval_commands_keeps_what_ran_when_a_command_fails(tmp_path, tiny_model_dir):
    """A checkpoint whose weights are gone: the command's exit status and the end of its output are kept, the
    result is written, and the script exits 1."""
    from bench import eval_commands

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in tiny_model_dir.iterdir():
        if not f.name.endswith(".safetensors"):
            (broken / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "r.json"
    argv = ["--model", str(broken), "--device", "cpu", "--per-type", "1", "--settings", "ours_group"]
    assert eval_commands.main(argv + ["--data", str(SAMPLE_JSONL), "--out", str(out)]) == 1
    run = json.loads(out.read_text())["runs"]["ours_group"]
    assert run["failed"] and "done" not in run and run["runs"][0]["rc"] not in (0, None)
    assert run["runs"][0]["output_tail"]


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("decode_attention_probe", ["--head-dim", "0"], "--head-dim: 0 is out of range"),
        ("decode_attention_probe", ["--lengths", "448,4"], "whole numbers >= 8"),
        ("decode_attention_probe", ["--cpu", "--out", "/proc/x.json"], "cannot be written"),
        ("decode_attention_probe", [], "no GPU: use --cpu"),
        ("kernel_profile", ["--tiny", "--tokenizer", "/"], "no tokenizer_config.json there"),
        ("kernel_profile", ["--prefill-tokens", "-1"], "whole numbers >= 0"),
        ("kernel_profile", [], "no GPU: use --tiny"),
    ],
)
def test_gpu_probes_refuse_bad_options_before_any_work(tmp_path, capsys, monkeypatch, script, argv, message):
    """Every refusal is a usage error (exit 2, one line, no traceback) before a model is built; a result file
    already at --out is left as it was."""
    import importlib

    mod = importlib.import_module(f"bench.{script}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "r.json"
    out.write_text("earlier result")
    full = (["--out", str(out)] if "--out" not in argv else []) + argv
    with pytest.raises(SystemExit) as exc:
        mod.main(full)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "Traceback" not in err
    assert out.read_text() == "earlier result"
