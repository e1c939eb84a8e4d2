"""Training throughput: plain transformers + PEFT loops vs ``axolotl train`` with the SFT recipe, one GPU.

Same model (Yi-9B's shape, random bf16 weights built on the device), same examples (token lengths drawn
from the real SFT data, bench/data/sft_lengths.json), LoRA r=16 on every linear layer:

* ``padded`` — the baseline: a hand-written loop / LLaMA-Factory-style batches, each padded to its
  longest example; SDPA attention; gradient checkpointing; bf16 autocast; fused AdamW.
* ``fixed``  — the same loop fed full fixed-length blocks of the concatenated examples (no padding):
  the best case for a plain loop ("best plain", the baseline of ``train_ratio``).
* ``ours``   — ``axolotl preprocess`` + ``axolotl train`` with recipes/sft.yml's settings (packing, Liger,
  LoRA r=16 all-linear...), overridden only where the device forces it (see ``recipe_overrides``), plus
  variants (``--levers``) that each change one setting.

Tokens/s counts every real (non-pad) token; MFU = model FLOPs (bench.common.lora_train_flops: 4N + 6N_lora
per token + 3x causal attention, recomputation not counted) / time / the peak bf16 rate measured in the same
run (an 8192^3 matmul).  Peak memory: torch.cuda.max_memory_allocated / max_memory_reserved since the
path's training began.

    python bench/train_throughput.py --shape yi9b --paths padded,fixed,ours --out bench/results/train_h100.json
    python bench/train_throughput.py --tiny --dry-run     # CPU: everything end to end on a 2-layer model
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402

RECIPE = REPO / "recipes" / "sft.yml"
TOKENIZER = common.BENCH / "_carry" / "tokenizer"

#: Levers: one change each on top of the recipe run (name -> (overrides, prediction text)).
LEVERS = {
    "no_ckpt": (
        {"gradient_checkpointing": False, "micro_batch_size": 1, "gradient_accumulation_steps": 4},
        "no forward recomputation (6N -> 4N matmul FLOPs/token) at half the micro-batch so activations fit: "
        "predict ~1.3x, at a higher peak memory",
    ),
    "no_ckpt_d0": (
        {"gradient_checkpointing": False, "lora_dropout": 0.0, "micro_batch_size": 1, "gradient_accumulation_steps": 4},
        "no recomputation and LoRA dropout 0: dropout keeps a dropped copy of each adapter's input (7 per layer, "
        "~half the saved activations): predict peak ~30 GiB (from 44) and ~1.05x over no_ckpt",
    ),
    "no_ckpt_d0_s2048": (
        {
            "gradient_checkpointing": False,
            "lora_dropout": 0.0,
            "sequence_len": 2048,
            "micro_batch_size": 1,
            "gradient_accumulation_steps": 8,
        },
        "as no_ckpt_d0 with 2048-token packed rows (same tokens per optimizer step): activations halve, "
        "predict peak ~24 GiB (under the best plain case's 26) at ~0.95x of no_ckpt_d0",
    ),
    "no_ckpt_d0_mb2": (
        {"gradient_checkpointing": False, "lora_dropout": 0.0, "micro_batch_size": 2, "gradient_accumulation_steps": 2},
        "as no_ckpt_d0 with the recipe's 2 x 4096 tokens per micro-step: the ~0.3 s per-micro-step launch overhead "
        "is paid half as often: predict ~1.1x over no_ckpt_d0, peak ~58 GiB",
    ),
    "seq8192": (
        {"sequence_len": 8192, "micro_batch_size": 1},
        "same tokens per micro-step in fewer, longer packed rows: predict ~1.0x (matmuls already large)",
    ),
    "mb4": (
        {"micro_batch_size": 4, "gradient_accumulation_steps": 1},
        "twice the tokens per micro-step (32k): predict ~1.05x (the per-micro-step overhead paid half as often)",
    ),
    "no_lora_kernels": (
        {"lora_mlp_kernel": False, "lora_qkv_kernel": False, "lora_o_kernel": False, "lora_embedding_kernel": False},
        "ablation: PEFT's own LoRA layers instead of axolotl's fused LoRA autograd (auto-enabled in the recipe): "
        "predict ~0.85x",
    ),
    "no_liger": (
        {"plugins": ["bench.axolotl_plugin.BenchPlugin"]},
        "ablation: no Liger (RoPE, RMSNorm, SwiGLU, fused linear cross-entropy): predict ~0.9x, more memory",
    ),
    "compile": (
        {"torch_compile": True},
        "torch.compile of the model: predict ~1.1x after compilation (compile time excluded by warm-up steps)",
    ),
    "zero2_1gpu": (
        {"deepspeed": "recipes/deepspeed/zero2.json"},
        "the recipe's own DeepSpeed ZeRO-2 path on 1 GPU (issue 8's launch command): predict ~1.0x",
    ),
}


# ------------------------------------------------------------------------------------------ model
def build_model(cfg: dict, device: str):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**cfg, pad_token_id=common.PAD_ID, bos_token_id=common.BOS_ID, eos_token_id=common.EOS_ID)
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model


def save_model_dir(cfg: dict, device: str, out: Path) -> float:
    """Random Yi-shaped weights + the stand-in tokenizer in a HF folder for axolotl; returns seconds."""
    t0 = time.perf_counter()
    model = build_model(cfg, device)
    model.save_pretrained(out, max_shard_size="5GB")
    for f in TOKENIZER.iterdir():
        shutil.copy(f, out / f.name)
    del model
    _free()
    return time.perf_counter() - t0


def _free():
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


# ------------------------------------------------------------------------------------------ plain loop
PLAIN_VARIANTS = {
    "padded": "batches padded to the longest example (multiple of 8), default SDPA backend choice",
    "padded_nocudnn": "the same with the cuDNN SDPA backend disabled (torch.backends.cuda.enable_cudnn_sdp(False))",
    "padded_repeat": "diagnostic: the timed steps re-run the warm-up batches (shapes seen before)",
    "padded_m64": "batches padded to a multiple of 64 (fewer distinct shapes)",
}


def run_plain(name: str, cfg: dict, batches: list[dict], args, device: str) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    if device == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(name != "padded_nocudnn")
    if name == "padded_repeat":  # timed steps reuse the warm-up batches
        batches = batches[: args.warmup] * (1 + args.steps // max(1, args.warmup))

    model = build_model(cfg, device)
    model.config.use_cache = False
    if not args.no_ckpt_baseline:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(
        model,
        LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.05, target_modules=common.LORA_TARGETS),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    model.train()
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    steps = []
    n = min(len(batches), args.warmup + args.steps)
    for i, b in enumerate(batches[:n]):
        t0 = time.perf_counter()
        ids = torch.tensor(b["input_ids"], device=device)
        kw = {"labels": torch.tensor(b["labels"], device=device)}
        if b["attention_mask"] is not None:
            kw["attention_mask"] = torch.tensor(b["attention_mask"], device=device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cuda):
            loss = model(input_ids=ids, **kw).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            steps.append(
                {
                    "real": b["real_tokens"],
                    "slots": len(b["input_ids"]) * len(b["input_ids"][0]),
                    "pairs": sum(s * (s + 1) // 2 for s in b["segments"]),
                    "seconds": dt,
                    "loss": float(loss),
                }
            )
    out = summarize(name, cfg, steps, args)
    if cuda:
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    del model, opt, params
    _free()
    return out


def summarize(name: str, cfg: dict, steps: list[dict], args) -> dict:
    """Tokens/s over the timed steps, padding share, and MFU against ``args.peak_tflops``."""
    secs = sum(s["seconds"] for s in steps)
    real = sum(s["real"] for s in steps)
    slots = sum(s["slots"] for s in steps)
    pairs = sum(s["pairs"] for s in steps)
    p = common.count_params(cfg, args.lora_r)
    flops = (4 * p.linear + 6 * p.lora) * real + 3 * 4 * cfg["hidden_size"] * cfg["num_hidden_layers"] * pairs
    tok_s = real / secs if secs else 0.0
    return {
        "path": name,
        "timed_steps": len(steps),
        "seconds": round(secs, 3),
        "real_tokens": real,
        "slots": slots,
        "padding_fraction": round(1 - real / slots, 4) if slots else 0.0,
        "tok_s": round(tok_s, 1),
        "median_step_s": round(statistics.median(s["seconds"] for s in steps), 4) if steps else None,
        "step_seconds": [round(s["seconds"], 3) for s in steps],
        "model_tflops_per_s": round(flops / secs / 1e12, 1) if secs else 0.0,
        "mfu": round(common.mfu(flops, secs, args.peak_tflops * 1e12), 4),
    }


# ------------------------------------------------------------------------------------------ axolotl
def recipe_overrides(args, work: Path, device: str) -> dict:
    """What the bench changes in recipes/sft.yml, and why (each line documented in docs/performance.md)."""
    o = {
        "base_model": str(work / "model"),  # random Yi-shaped weights saved on the device
        "datasets": [{"path": str(work / "data" / "train.jsonl"), "ds_type": "json"}],  # pre-tokenized
        "test_datasets": None,
        "val_set_size": 0.0,
        "evals_per_epoch": None,
        "eval_sample_packing": None,
        "dataset_prepared_path": str(work / "prepared"),
        "output_dir": str(work / "out"),
        "max_steps": args.ours_steps,
        "num_epochs": 1,
        "warmup_ratio": None,
        "warmup_steps": 1,
        "logging_steps": 1,
        "saves_per_epoch": None,
        "save_strategy": "no",
        "save_total_limit": None,
        "include_tkps": True,
        "deepspeed": None,  # one GPU: ZeRO-2 shards nothing (the zero2_1gpu lever runs it anyway)
        "attn_implementation": "sdpa",  # flash-attn is not on the device image; torch's varlen kernel is
        "sdpa_varlen": True,
        "dataloader_num_workers": 2,
        "plugins": ["axolotl.integrations.liger.LigerPlugin", "bench.axolotl_plugin.BenchPlugin"],
    }
    if device != "cuda":  # CPU dry run: no Triton kernels, no bf16, no varlen
        o.update(
            {
                "plugins": ["bench.axolotl_plugin.BenchPlugin"],
                "liger_rope": None,
                "liger_rms_norm": None,
                "liger_glu_activation": None,
                "liger_fused_linear_cross_entropy": None,
                "bf16": False,
                "fp16": False,
                "tf32": False,
                "sdpa_varlen": None,
                "optimizer": "adamw_torch",
                "lora_mlp_kernel": False,
                "lora_qkv_kernel": False,
                "lora_o_kernel": False,
                "lora_embedding_kernel": False,
                "sequence_len": 512,
                "micro_batch_size": 1,
                "gradient_accumulation_steps": 1,
                "dataloader_num_workers": 0,
            }
        )
    return o


def axolotl_config(recipe: dict, overrides: dict) -> dict:
    cfg = copy.deepcopy(recipe)
    for k, v in overrides.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def axolotl_commands(config_path: Path, launcher: str = "python") -> list[list[str]]:
    """The two commands the 'ours' path runs (the CLI a user runs, not a Python API)."""
    exe = [sys.executable, "-m", "axolotl.cli.main"]
    return [exe + ["preprocess", str(config_path)], exe + ["train", str(config_path), "--launcher", launcher]]


def write_dataset(examples: list[common.Example], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for e in examples:
            fh.write(
                json.dumps({"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels})
            )
            fh.write("\n")


def run_axolotl(
    name: str, cfg: dict, overrides: dict, args, work: Path, device: str, logdir: Path, preprocess: bool = True
) -> dict:
    recipe = yaml.safe_load(RECIPE.read_text())
    conf = axolotl_config(recipe, {**recipe_overrides(args, work, device), **overrides})
    if not preprocess:  # a lever: fewer steps; `axolotl train` prepares (or reuses) the dataset itself
        conf["max_steps"] = args.lever_steps
    conf["output_dir"] = str(work / f"out_{name}")
    conf_path = work / f"{name}.yml"
    conf_path.write_text(yaml.safe_dump(conf, sort_keys=False))
    stats_path = work / f"{name}.stats.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "BENCH_AXOLOTL_STATS": str(stats_path),
        "BENCH_PAD_ID": str(common.PAD_ID),
        "AXOLOTL_DO_NOT_TRACK": "1",
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    if conf.get("deepspeed"):  # one process without a launcher: give torch.distributed its rendezvous
        env.update({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"})
        env.setdefault("MASTER_PORT", "29511")
    timings = {}
    for cmd in axolotl_commands(conf_path)[0 if preprocess else 1 :]:
        what = cmd[3]
        t0 = time.perf_counter()
        with open(logdir / f"axolotl_{name}_{what}.log", "w") as log:
            try:
                proc = subprocess.run(
                    cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout
                )
            except subprocess.TimeoutExpired:
                return {"path": name, "error": f"axolotl {what} ran past {args.timeout} s", **timings}
        timings[f"{what}_wall_s"] = round(time.perf_counter() - t0, 1)
        if proc.returncode != 0:
            tail = (logdir / f"axolotl_{name}_{what}.log").read_text()[-3000:]
            return {"path": name, "error": f"axolotl {what} exited {proc.returncode}", "log_tail": tail, **timings}
    stats = json.loads(stats_path.read_text())
    steps = stats["steps"][args.ours_warmup :]
    out = summarize(name, cfg, steps, args)
    out.update(timings)
    out["trained_tokens"] = sum(s["trained"] for s in steps)
    tkps = [h["tokens/train_per_sec_per_gpu"] for h in stats["log_history"] if "tokens/train_per_sec_per_gpu" in h]
    out["axolotl_tokens_train_per_sec_per_gpu_last"] = tkps[-1] if tkps else None
    losses = [h["loss"] for h in stats["log_history"] if "loss" in h]
    out["loss_first_last"] = [losses[0], losses[-1]] if losses else None
    for k in ("peak_allocated_gib", "peak_reserved_gib"):
        if k in stats:
            out[k] = round(stats[k], 2)
    out["overrides"] = overrides
    return out


# ------------------------------------------------------------------------------------------ main
def measure_peak_tflops(device: str) -> float:
    """bf16 8192^3 matmul on random data, median of 20 (the MFU denominator); 0 on CPU."""
    if device != "cuda":
        return 0.0
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    times = []
    for i in range(25):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        if i >= 5:
            times.append(s.elapsed_time(e) / 1e3)
    del a, b
    return 2 * 8192**3 / statistics.median(times) / 1e12


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=["yi9b", "tiny"], default="yi9b")
    ap.add_argument("--tiny", action="store_true", help="= --shape tiny (CPU-sized)")
    ap.add_argument("--layers", type=int, help="override the layer count (e.g. 8 for the smoke run)")
    ap.add_argument("--paths", default="padded,fixed,ours")
    ap.add_argument("--levers", default="", help=f"comma list of axolotl variants: {', '.join(LEVERS)}")
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--max-len", type=int, default=2048, help="cutoff of the padded loop (truncation)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=10, help="timed steps of each plain loop")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ours-steps", type=int, default=24, help="axolotl max_steps")
    ap.add_argument("--ours-warmup", type=int, default=4, help="axolotl steps left out of the timing")
    ap.add_argument("--lever-steps", type=int, default=16, help="axolotl max_steps of each lever run")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--no-ckpt-baseline", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="MFU denominator (default: measured)")
    ap.add_argument("--work", default="/tmp/bench_train")
    ap.add_argument("--logdir", default=None, help="axolotl logs (default: WORK/logs)")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--out", default=None, help="result JSON (default: print only)")
    ap.add_argument("--dry-run", action="store_true", help="CPU: tiny steps, no GPU needed")
    args = ap.parse_args(argv)
    if args.tiny:
        args.shape = "tiny"
    if args.dry_run:
        args.examples, args.steps, args.warmup = min(args.examples, 200), min(args.steps, 2), min(args.warmup, 1)
        args.ours_steps, args.ours_warmup, args.max_len, args.block = 3, 1, 512, 512
        args.lever_steps = 3
    return args


def build_result(args, cfg: dict, paths: dict, device: str, extra: dict) -> dict:
    return {
        "device": common.device_name(),
        "versions": common.versions(),
        "settings": {
            "shape": args.shape,
            "model": cfg,
            "params": common.count_params(cfg, args.lora_r).__dict__,
            "lora_r": args.lora_r,
            "examples": args.examples,
            "batch_size": args.batch_size,
            "block": args.block,
            "max_len": args.max_len,
            "steps": args.steps,
            "warmup": args.warmup,
            "ours_steps": args.ours_steps,
            "ours_warmup": args.ours_warmup,
            "peak_tflops_measured": round(args.peak_tflops, 1),
            "lengths": str(common.LENGTHS_FILE.relative_to(REPO)),
            "recipe": str(RECIPE.relative_to(REPO)),
            "flops_formula": "(4*N_linear + 6*N_lora) per real token + 3 * 4*d*L * sum n(n+1)/2 over segments",
            **extra,
        },
        **common.train_headline(paths),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
    except ImportError:
        device = "cpu"
    if device == "cpu" and not args.dry_run and args.shape == "yi9b":
        sys.exit("no GPU: use --tiny --dry-run on a CPU")
    cfg = common.shape(args.shape, args.layers)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    logdir = Path(args.logdir) if args.logdir else work / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    if not args.peak_tflops:
        args.peak_tflops = measure_peak_tflops(device)
    lengths = common.load_lengths()
    examples = common.make_examples(lengths, args.examples, cfg["vocab_size"], seed=0, max_len=args.max_len)
    wanted = [p for p in args.paths.split(",") if p]
    levers = [x for x in args.levers.split(",") if x]
    extra = {"device_kind": device}
    paths: dict[str, dict] = {}

    def report(name, res):
        paths[name] = res
        print(json.dumps({k: v for k, v in res.items() if k != "log_tail"}), flush=True)
        if "log_tail" in res:
            print(res["log_tail"], flush=True)
        if args.out:  # write after every path, so a cut-off run keeps what it measured
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(build_result(args, cfg, paths, device, extra), indent=1) + "\n")

    for variant in [w for w in wanted if w in PLAIN_VARIANTS]:
        batches = common.padded_batches(examples, args.batch_size, 64 if variant == "padded_m64" else 8)
        extra[f"{variant}_padding_fraction_all"] = round(common.padding_fraction(batches), 4)
        res = run_plain(variant, cfg, batches, args, device)
        res["what"] = PLAIN_VARIANTS[variant]
        report(variant, res)
    if "fixed" in wanted:
        report(
            "fixed", run_plain("fixed", cfg, common.fixed_blocks(examples, args.block, args.batch_size), args, device)
        )
    if "ours" in wanted or levers:
        write_dataset(examples, work / "data" / "train.jsonl")
        if not (work / "model" / "config.json").exists():
            extra["model_save_s"] = round(save_model_dir(cfg, device, work / "model"), 1)
        if "ours" in wanted:
            report("ours", run_axolotl("ours", cfg, {}, args, work, device, logdir))
        for lever in levers:
            overrides, prediction = LEVERS[lever]
            if device != "cuda":  # CPU dry run: no kernels, DeepSpeed, Liger or compile
                skip = ("kernel", "deepspeed", "plugins", "torch_compile")
                overrides = {k: v for k, v in overrides.items() if not any(x in k for x in skip)}
            res = run_axolotl(lever, cfg, overrides, args, work, device, logdir, preprocess=False)
            res["prediction"] = prediction
            if paths.get("ours", {}).get("tok_s") and res.get("tok_s"):
                res["vs_ours"] = common.ratio(res["tok_s"], paths["ours"]["tok_s"])
            report(lever, res)
    rows = [(n, r.get("tok_s"), r.get("mfu"), r.get("peak_allocated_gib"), r.get("error")) for n, r in paths.items()]
    print(f"{'path':16} {'tok/s':>10} {'MFU':>7} {'peak GiB':>9}")
    for n, t, m, pk, err in rows:
        print(f"{n:16} {t or 0:10.1f} {m or 0:7.3f} {pk or 0:9.2f} {err or ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
