"""Training throughput and memory: plain transformers + PEFT loops vs ``axolotl train`` with the recipes.

Same model (Yi-9B's shape, random bf16 weights built on the device), same examples (token lengths drawn
from the real SFT data, bench/data/sft_lengths.json):

* plain loops (in this process) — ``fixed_b{B}[_r{R}][_nockpt]``: the hand-written loop fed full
  2048-token blocks of the concatenated examples, batch B, LoRA rank R (default 16) on every linear layer,
  gradient checkpointing unless ``_nockpt``; bf16 autocast; fused AdamW.  The best case for a plain loop
  (no padding), the baseline of the ratios.  ``padded`` / ``padded_nocudnn``: batches padded to their
  longest example (the seed's kind of loop).
* recipe runs (``RUNS``: ``sft``, ``cpt``, ``sft_80gb``, ``cpt_80gb``, ``qlora``, and levers that change one
  setting of a recipe) — ``python -m axolotl.cli.train CONFIG``, one worker of the recipes' ``accelerate
  launch`` (RANK 0 of WORLD_SIZE 1), with the recipe as committed except what ``recipe_overrides`` forces
  (random weights, pre-tokenized data, step count).  Headline runs keep the recipe's evaluation and
  checkpointing: one evaluation pass and one checkpoint save at the last step, timed apart from the steps.
* ``merge:RUN`` — ``axolotl merge-lora`` of that run's adapter, as the chain runs it.

Chat recipes (``type: chat_template``) get SFT examples (loss on the answer only); completion recipes
(``type: completion``, cpt) get documents of the same token lengths with every token trained.

Memory cap: ``--memory-cap-gib X`` (or ``NAME@X`` for one run; ``@0`` = none) caps every process —
this one and each axolotl process, through ``BENCH_MEMORY_CAP_GIB`` and bench/memcap/sitecustomize.py —
with ``torch.cuda.set_per_process_memory_fraction``, so a run that would not fit a card of X GiB fails
with CUDA out-of-memory here.  Peak memory is each process's whole-life peak (allocated / reserved).

Runs execute one at a time on the GPU in the order given; the next ``--prefetch`` axolotl runs start early
and wait (bench/axolotl_plugin.py, ``BENCH_GO_FILE``) before loading the model, so their imports and
dataset preparation overlap the running one but their timed steps never share the GPU.

Tokens/s counts every real (non-pad) token of the timed optimizer steps; MFU = model FLOPs
(bench.common.lora_train_flops: 4N + 6N_lora per token + 3x causal attention, recomputation not counted) /
time / the bf16 matmul rate measured in the same run.

    python bench/train_throughput.py --memory-cap-gib 23.5 --runs fixed_b2,sft,cpt,merge:sft,sft_80gb@78 \\
        --out bench/results/train_h200.json
    python bench/train_throughput.py --tiny --dry-run     # CPU: everything end to end on a 2-layer model
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402

RECIPE = REPO / "recipes" / "sft.yml"
TOKENIZER = common.BENCH / "_carry" / "tokenizer"
MEMCAP = common.BENCH / "memcap"
#: what the recipes' launch sets (Makefile TRAIN_LAUNCH, recipes/slurm/*.sbatch): fewer fragments
ALLOC_CONF = "expandable_segments:True"


@dataclass(frozen=True)
class Run:
    """A recipe run: the recipe file, the settings it changes (levers: one change), a prediction."""

    recipe: str
    overrides: dict = field(default_factory=dict)
    prediction: str = ""
    full: bool = False  # keep the recipe's evaluation pass and checkpoint save (headline rows)
    steps: int | None = None  # optimizer steps (default --ours-steps)
    warmup: int | None = None  # of which left out of the timing (default --ours-warmup)


_OFFLOAD = {"activation_offloading": "hidden_states"}
RUNS: dict[str, Run] = {
    # ---- the recipes as committed (headline rows: evaluation + save included)
    "sft": Run("recipes/sft.yml", full=True),
    "cpt": Run("recipes/cpt.yml", full=True, steps=4, warmup=1),
    "sft_80gb": Run("recipes/sft-80gb.yml", full=True),
    "cpt_80gb": Run("recipes/cpt-80gb.yml", full=True, steps=4, warmup=1),
    "qlora": Run(
        "recipes/qlora.yml",
        {"gradient_accumulation_steps": 2},
        "bench only: 2 accumulation steps instead of 12 (the same micro-batches, fewer per optimizer step, "
        "so a few steps fit the time); memory and tokens/s per micro-step are unchanged",
        full=True,
        steps=4,
        warmup=1,
    ),
    # ---- levers on sft.yml under the 24 GB cap (one change each)
    "sft_mb4": Run(
        "recipes/sft.yml",
        {"micro_batch_size": 4, "gradient_accumulation_steps": 1},
        "4 x 4096 tokens per micro-step (the previous H100 default): +4 checkpointed sequences and logits "
        "chunks: predict out of memory under 23.5 GiB (needs ~25-26 GiB)",
    ),
    "sft_mb1": Run(
        "recipes/sft.yml",
        {"micro_batch_size": 1, "gradient_accumulation_steps": 4},
        "1 x 4096 per micro-step: ~1.5 GiB less, the per-micro-step overhead paid twice as often: predict ~0.85x",
    ),
    "sft_d0": Run(
        "recipes/sft.yml",
        {"lora_dropout": 0.0},
        "LoRA dropout off: under checkpointing only the recomputed layer holds dropout masks/copies: predict "
        "-0.2 to -0.5 GiB and ~1.02x (dropout kernels skipped)",
    ),
    "sft_nozero": Run(
        "recipes/sft.yml",
        {"deepspeed": None},
        "plain DDP-less single process instead of ZeRO-2 on one GPU: predict ~1.0x, ~0.5 GiB less reserved "
        "(no DeepSpeed buckets); on 6 GPUs ZeRO-2 shards the adapter's gradients and Adam states (paper)",
    ),
    "sft_offload": Run(
        "recipes/sft.yml",
        dict(_OFFLOAD),
        "checkpointed layer inputs offloaded to pinned host memory (axolotl activation_offloading: "
        "hidden_states): predict -2.5 to -3 GiB (2 x 48 x 4096 x 4096 x 2 B = 3 GiB) at ~0.95x",
    ),
    "sft_offload_mb4": Run(
        "recipes/sft.yml",
        {**_OFFLOAD, "micro_batch_size": 4, "gradient_accumulation_steps": 1},
        "offloading makes room for 4 x 4096 per micro-step: predict it fits (~23 GiB) at ~1.05x of sft",
    ),
    "sft_sac": Run(
        "recipes/sft.yml",
        {"selective_checkpointing": True},
        "selective checkpointing (attention outputs saved, not recomputed): +48 x 4096 x 4096 x 2 B per "
        "sequence = 1.5 GiB each: predict out of memory or ~+3 GiB, ~1.03x (attention is a small share here)",
    ),
    "sft_s8192": Run(
        "recipes/sft.yml",
        {"sequence_len": 8192, "micro_batch_size": 1},
        "the same 8192 tokens per micro-step in one 8192-token row: predict the same memory, ~1.0-1.05x",
    ),
    "sft_offload_mb4_eval": Run(
        "recipes/sft.yml",
        {**_OFFLOAD, "micro_batch_size": 4, "gradient_accumulation_steps": 1},
        "sft_offload_mb4 with the recipe's evaluation pass and save: packed evaluation batches 4 rows like "
        "training, so its logits (4 x 4096 x 64,000 in fp32 = 3.9 GiB) come on top: predict out of memory",
        full=True,
    ),
    # ---- levers on cpt.yml (rank 64, 2 x 4, checkpoints offloaded) under the 24 GB cap
    "cpt_mb1": Run(
        "recipes/cpt.yml",
        {"activation_offloading": False, "micro_batch_size": 1, "gradient_accumulation_steps": 8},
        "no offloading, 1 x 4096 per micro-step (8 accumulation steps): the checkpointed inputs of one sequence "
        "stay on the GPU: predict it fits (~22 GiB with the evaluation pass) at ~0.75x (twice the micro-steps)",
        full=True,
        steps=4,
        warmup=1,
    ),
    "cpt_mb1_r32": Run(
        "recipes/cpt.yml",
        {
            "activation_offloading": False,
            "micro_batch_size": 1,
            "gradient_accumulation_steps": 8,
            "lora_r": 32,
            "lora_alpha": 64,
        },
        "cpt_mb1 at rank 32: adapter + gradients + Adam 3.25 -> 1.6 GiB: predict -1.6 GiB, ~1.05x of cpt_mb1",
        steps=4,
        warmup=1,
    ),  # fmt: skip
    "cpt_no_offload": Run(
        "recipes/cpt.yml",
        {"activation_offloading": False},
        "2 x 4096 per micro-step with the checkpoints on the GPU (the previous recipe): predict out of memory "
        "under 23.5 GiB (3.25 GiB of adapter states + 3 GiB of checkpoints over the 16.5 GiB base)",
        steps=4,
        warmup=1,
    ),
    "cpt_r32": Run(
        "recipes/cpt.yml",
        {"lora_r": 32, "lora_alpha": 64},
        "rank 32 instead of 64: predict -1.6 GiB, ~1.05x (not measured)",
        steps=4,
        warmup=1,
    ),
    "cpt_d0": Run(
        "recipes/cpt.yml",
        {"lora_dropout": 0.0},
        "LoRA dropout off on the rank-64 adapter: predict -0.2 to -0.5 GiB, ~1.05x (not measured)",
        steps=4,
        warmup=1,
    ),
}
#: the old name of the SFT recipe run
RUNS["ours"] = RUNS["sft"]

PLAIN_RE = re.compile(r"^fixed(?:_b(?P<batch>\d+))?(?:_r(?P<rank>\d+))?(?P<nockpt>_nockpt)?$")
PLAIN_VARIANTS = {
    "padded": "batches padded to the longest example (multiple of 8), default SDPA backend choice",
    "padded_nocudnn": "the same with the cuDNN SDPA backend disabled (torch.backends.cuda.enable_cudnn_sdp(False))",
    "padded_repeat": "diagnostic: the timed steps re-run the warm-up batches (shapes seen before)",
    "padded_m64": "batches padded to a multiple of 64 (fewer distinct shapes)",
}


@dataclass(frozen=True)
class Item:
    """One entry of ``--runs``: kind ('plain', 'recipe' or 'merge'), name, memory cap in GiB (None: none)."""

    kind: str
    name: str
    cap: float | None
    label: str


def parse_items(spec: str, default_cap: float | None) -> list[Item]:
    """``--runs`` (comma list of NAME, NAME@CAP, merge:RUN) -> items; ValueError names a bad entry."""
    items = []
    for raw in [x.strip() for x in spec.split(",") if x.strip()]:
        name, _, cap_s = raw.partition("@")
        cap = default_cap
        if cap_s:
            try:
                cap = float(cap_s) or None
            except ValueError:
                raise ValueError(f"--runs entry {raw!r}: the cap after '@' must be a number of GiB") from None
        if name.startswith("merge:"):
            target = name.split(":", 1)[1]
            if target not in RUNS:
                raise ValueError(f"--runs entry {raw!r}: no recipe run {target!r} to merge")
            kind = "merge"
        elif name in RUNS:
            kind = "recipe"
        elif name in PLAIN_VARIANTS or PLAIN_RE.match(name):
            kind = "plain"
        else:
            raise ValueError(f"--runs entry {raw!r}: unknown run (recipe runs: {', '.join(RUNS)}; fixed_b2_r64...)")
        label = name.replace(":", "_") + (f"@{cap:g}" if cap_s and cap else "")
        items.append(Item(kind, name, cap, label))
    labels = [i.label for i in items]
    if len(set(labels)) != len(labels):
        raise ValueError("--runs names a run twice")
    return items


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


def save_model_dir(cfg: dict, device: str, out: Path, tokenizer: Path = TOKENIZER) -> float:
    """Random Yi-shaped weights + the stand-in tokenizer in a HF folder for axolotl; returns seconds.
    The config and tokenizer land first (axolotl's config check reads them); the weights are written
    beside and moved in last, so a waiting run never sees half-written shards."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for f in tokenizer.iterdir():
        shutil.copy(f, out / f.name)
    model = build_model(cfg, device)
    model.config.save_pretrained(out)
    tmp = out.parent / (out.name + ".partial")
    model.save_pretrained(tmp, max_shard_size="5GB")
    for f in tmp.iterdir():
        if f.name != "config.json":
            f.replace(out / f.name)
    shutil.rmtree(tmp)
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


def set_cap_here(cap: float | None) -> None:
    """The cap for this process's own (plain-loop) runs: ``cap`` GiB, or the whole device."""
    import torch

    if not torch.cuda.is_available():
        return
    from bench.memcap.sitecustomize import cap_fraction

    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(cap_fraction(cap, total) if cap else 1.0, 0)


# ------------------------------------------------------------------------------------------ plain loop
def plain_spec(name: str, args) -> dict:
    """batch, LoRA rank and checkpointing of a plain variant name (fixed_b2_r64_nockpt...)."""
    m = PLAIN_RE.match(name)
    if not m:
        return {"batch": args.batch_size, "rank": args.lora_r, "ckpt": not args.no_ckpt_baseline}
    return {
        "batch": int(m["batch"] or args.batch_size),
        "rank": int(m["rank"] or args.lora_r),
        "ckpt": not (m["nockpt"] or args.no_ckpt_baseline),
    }


def run_plain(name: str, cfg: dict, batches: list[dict], args, device: str, spec: dict | None = None) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model

    spec = spec or plain_spec(name, args)
    cuda = device == "cuda"
    if cuda:
        torch.backends.cuda.enable_cudnn_sdp(name != "padded_nocudnn")
    if name == "padded_repeat":  # timed steps reuse the warm-up batches
        batches = batches[: args.warmup] * (1 + args.steps // max(1, args.warmup))
    model = opt = params = None
    steps = []
    try:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        model = build_model(cfg, device)
        model.config.use_cache = False
        if spec["ckpt"]:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        lora = LoraConfig(
            r=spec["rank"], lora_alpha=2 * spec["rank"], lora_dropout=0.05, target_modules=common.LORA_TARGETS
        )
        model = get_peft_model(model, lora)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, fused=cuda)
        model.train()
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
                        "loss": float(loss.detach()),
                    }
                )
        out = summarize(name, cfg, steps, args, spec["rank"])
    except torch.OutOfMemoryError as exc:
        out = {"path": name, "error": "CUDA out of memory", **oom_numbers(str(exc)), "steps_done": len(steps)}
    out.update({"kind": "plain", "batch": spec["batch"], "lora_r": spec["rank"], "checkpointing": spec["ckpt"]})
    if cuda:
        out["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    del model, opt, params
    _free()
    return out


_OOM_FIELDS = {
    "oom_tried_gib": r"Tried to allocate ([0-9.]+) ([GM]iB)",
    "oom_allocated_gib": r"([0-9.]+) ([GM]iB) is allocated by PyTorch",
    "oom_reserved_unallocated_gib": r"([0-9.]+) ([GM]iB) is reserved by PyTorch but unallocated",
}


def oom_numbers(text: str) -> dict:
    """The sizes torch's CUDA out-of-memory message gives (last occurrence), in GiB."""
    out = {}
    for key, pat in _OOM_FIELDS.items():
        found = re.findall(pat, text)
        if found:
            value, unit = found[-1]
            out[key] = round(float(value) / (1024 if unit == "MiB" else 1), 2)
    return out


def summarize(name: str, cfg: dict, steps: list[dict], args, lora_r: int | None = None) -> dict:
    """Tokens/s over the timed steps, padding share, and MFU against ``args.peak_tflops``."""
    secs = sum(s["seconds"] for s in steps)
    real = sum(s["real"] for s in steps)
    slots = sum(s["slots"] for s in steps)
    pairs = sum(s["pairs"] for s in steps)
    p = common.count_params(cfg, lora_r or args.lora_r)
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
def data_kind(recipe: dict) -> str:
    """'completion' (every token trained: cpt) or 'chat' (loss on the answers: sft, qlora)."""
    types = {d.get("type") for d in recipe.get("datasets") or []}
    return "completion" if types == {"completion"} else "chat"


def recipe_overrides(args, work: Path, device: str, recipe: dict | None = None, full: bool = False) -> dict:
    """What the bench changes in a recipe, and why (each line documented in docs/performance.md).

    Data and model: random Yi-shaped weights, pre-tokenized examples (the same token ids as the plain
    loops).  Schedule: ``max_steps`` steps; with ``full`` one evaluation pass (the recipe's own eval data
    setting: held-out file for sft, ``val_set_size`` split for cpt) and one checkpoint save at the last
    step, else neither.  Everything that decides memory and speed is the recipe's."""
    recipe = recipe or {}
    kind = data_kind(recipe)
    o = {
        "base_model": str(work / "model"),  # random Yi-shaped weights saved on the device
        "datasets": [{"path": str(work / "data" / f"{kind}_train.jsonl"), "ds_type": "json"}],  # pre-tokenized
        "dataset_num_proc": 2,
        "max_steps": args.ours_steps,
        "num_epochs": 1,
        "warmup_ratio": None,
        "warmup_steps": 1,
        "logging_steps": 1,
        "include_tkps": True,
        "plugins": [*(recipe.get("plugins") or []), "bench.axolotl_plugin.BenchPlugin"],
    }
    if full:
        if recipe.get("test_datasets"):
            o["test_datasets"] = [
                {"path": str(work / "data" / f"{kind}_eval.jsonl"), "ds_type": "json", "split": "train"}
            ]
        o.update({"evals_per_epoch": None, "eval_steps": args.ours_steps})
        o.update({"saves_per_epoch": None, "save_strategy": "steps", "save_steps": args.ours_steps})
    else:
        o.update({"test_datasets": None, "val_set_size": 0.0, "evals_per_epoch": None, "eval_sample_packing": None})
        o.update({"saves_per_epoch": None, "save_strategy": "no", "save_total_limit": None})
    if device != "cuda":  # CPU dry run: also no varlen, DeepSpeed, 4-bit or offloading, and small shapes
        o.update(CPU_OVERRIDES)
        o.update(
            {
                "plugins": ["bench.axolotl_plugin.BenchPlugin"],
                "sdpa_varlen": None,
                "deepspeed": None,
                "load_in_4bit": False,
                "sequence_len": 512,
                "micro_batch_size": 1,
                "gradient_accumulation_steps": 1,
                "eval_batch_size": None,
                "dataloader_num_workers": 0,
            }
        )
        if recipe.get("adapter") == "qlora":
            o["adapter"] = "lora"
    return o


def cpu_safe(overrides: dict) -> dict:
    """A lever's settings that a CPU dry run can take (no kernels, DeepSpeed, offloading, batch changes)."""
    skip = ("kernel", "deepspeed", "plugins", "torch_compile", "offloading", "micro_batch", "accumulation", "sequence")
    return {k: v for k, v in overrides.items() if not any(x in k for x in skip)}


# What a GPU recipe needs changed to run under axolotl on a CPU: no Triton (Liger, the LoRA kernels), no bf16, no
# fused optimizer.  The CPU runs of this bench and of bench/packing_check.py start from it.
CPU_OVERRIDES = {
    "liger_rope": None,
    "liger_rms_norm": None,
    "liger_glu_activation": None,
    "liger_fused_linear_cross_entropy": None,
    "bf16": False,
    "fp16": False,
    "tf32": False,
    "optimizer": "adamw_torch",
    "lora_mlp_kernel": False,
    "lora_qkv_kernel": False,
    "lora_o_kernel": False,
    "lora_embedding_kernel": False,
}


def axolotl_config(recipe: dict, overrides: dict) -> dict:
    cfg = copy.deepcopy(recipe)
    for k, v in overrides.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    return cfg


def train_command(config_path: Path) -> list[str]:
    """One worker of the recipes' `accelerate launch ... -m axolotl.cli.train RECIPE` (RANK 0 of 1)."""
    return [sys.executable, "-m", "axolotl.cli.train", str(config_path)]


def merge_command(config_path: Path, lora_dir: Path) -> list[str]:
    """The chain's `axolotl merge-lora RECIPE --lora-model-dir OUT`."""
    return [sys.executable, "-m", "axolotl.cli.main", "merge-lora", str(config_path), "--lora-model-dir", str(lora_dir)]


def write_dataset(examples: list[common.Example], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for e in examples:
            fh.write(
                json.dumps({"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels})
            )
            fh.write("\n")


def write_datasets(lengths: list[dict], args, vocab: int, work: Path) -> dict:
    """Train and held-out files of both kinds (chat: answer-only labels; completion: all tokens)."""
    d = work / "data"
    train = common.make_examples(lengths, args.examples, vocab, seed=0, max_len=args.max_len)
    held = common.make_examples(lengths, args.eval_examples, vocab, seed=1, max_len=args.max_len)
    write_dataset(train, d / "chat_train.jsonl")
    write_dataset(held, d / "chat_eval.jsonl")
    write_dataset([common.as_completion(e) for e in train], d / "completion_train.jsonl")
    write_dataset([common.as_completion(e) for e in held], d / "completion_eval.jsonl")
    return {"train": train}


def subprocess_env(cap: float | None, stats: Path, peak: Path, go: Path | None, port: int) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(MEMCAP), str(REPO), os.environ.get("PYTHONPATH")])),
        "BENCH_AXOLOTL_STATS": str(stats),
        "BENCH_PEAK_FILE": str(peak),
        "BENCH_PAD_ID": str(common.PAD_ID),
        "AXOLOTL_DO_NOT_TRACK": "1",
        "WANDB_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTORCH_ALLOC_CONF": ALLOC_CONF,
        "ACCELERATE_MIXED_PRECISION": "bf16",  # what accelerate launch sets from recipes/accelerate/*.yaml
        # one worker of a launch: torch.distributed (DeepSpeed) gets its rendezvous, one port per run
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    env.pop("BENCH_GO_FILE", None)
    if go is not None:
        env["BENCH_GO_FILE"] = str(go)
    if cap:
        env["BENCH_MEMORY_CAP_GIB"] = str(cap)
    else:
        env.pop("BENCH_MEMORY_CAP_GIB", None)
    return env


class AxolotlRun:
    """One recipe run as a subprocess: started early, let onto the GPU by ``go()``, collected by ``result()``."""

    def __init__(self, item: Item, index: int, args, work: Path, device: str, logdir: Path):
        self.item, self.args, self.work, self.device = item, args, work, device
        run = RUNS[item.name]
        self.run = run
        self.recipe_path = REPO / run.recipe
        recipe = yaml.safe_load(self.recipe_path.read_text())
        steps = run.steps or args.ours_steps
        self.warmup = run.warmup if run.warmup is not None else args.ours_warmup
        if args.dry_run:
            steps, self.warmup = min(steps, args.ours_steps), min(self.warmup, args.ours_warmup)
        if args.steps_cap:  # a quick check (memory): fewer steps, at least one timed
            steps = min(steps, args.steps_cap)
            self.warmup = min(self.warmup, steps - 1)
        sargs = argparse.Namespace(**{**vars(args), "ours_steps": steps})
        lever = run.overrides if device == "cuda" else cpu_safe(run.overrides)
        self.overrides = lever
        self.bench_overrides = recipe_overrides(sargs, work, device, recipe, full=run.full)
        name = item.label
        self.conf = axolotl_config(recipe, {**self.bench_overrides, **lever})
        self.conf["dataset_prepared_path"] = str(work / f"prepared_{name}")
        self.conf["output_dir"] = str(work / f"out_{name}")
        self.conf_path = work / f"{name}.yml"
        self.conf_path.write_text(yaml.safe_dump(self.conf, sort_keys=False))
        self.stats, self.peak = work / f"{name}.stats.json", work / f"{name}.peak.json"
        self.go_file = work / f"{name}.go"
        for f in (self.stats, self.peak, self.go_file):
            f.unlink(missing_ok=True)
        shutil.rmtree(work / f"out_{name}", ignore_errors=True)
        self.log_path = logdir / f"axolotl_{name}_train.log"
        self.port = 29500 + 7 * index
        self.proc = None
        self.t_start = self.t_go = None
        self.sha = hashlib.sha256(self.recipe_path.read_bytes()).hexdigest()

    def start(self):
        env = subprocess_env(self.item.cap, self.stats, self.peak, self.go_file, self.port)
        self.log = open(self.log_path, "w")
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen(
            train_command(self.conf_path), cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def go(self):
        self.t_go = time.perf_counter()
        self.go_file.write_text("go\n")

    def wait(self) -> int | None:
        try:
            return self.proc.wait(timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return None
        finally:
            self.log.close()

    def result(self, rc: int | None, cfg: dict) -> dict:
        it, conf = self.item, self.conf
        base = {
            "path": it.label,
            "run": it.name,
            "kind": "recipe",
            "recipe": self.run.recipe,
            "recipe_sha256": self.sha,
            "memory_cap_gib": it.cap,
            "max_steps": conf.get("max_steps"),
            "warmup_steps_untimed": self.warmup,
            "lora_r": conf.get("lora_r"),
            "micro_batch_size": conf.get("micro_batch_size"),
            "gradient_accumulation_steps": conf.get("gradient_accumulation_steps"),
            "sequence_len": conf.get("sequence_len"),
            "deepspeed": conf.get("deepspeed"),
            "overrides": self.overrides,
            "bench_overrides": {k: v for k, v in self.bench_overrides.items() if k != "plugins"},
            "config": conf,
            "command": " ".join(train_command(self.conf_path)),
            "prefetch_s": round(self.t_go - self.t_start, 1),
            "train_wall_s": round(time.perf_counter() - self.t_go, 1),
        }
        if self.run.prediction:
            base["prediction"] = self.run.prediction
        stats = json.loads(self.stats.read_text()) if self.stats.exists() else {}
        peak = json.loads(self.peak.read_text()) if self.peak.exists() else {}
        log = self.log_path.read_text(errors="replace")
        if stats.get("steps"):
            steps = stats["steps"][self.warmup :]
            base.update(summarize(it.label, cfg, steps, self.args, conf.get("lora_r")))
            base["path"] = it.label
            base["steps_run"] = len(stats["steps"])
            base["trained_tokens"] = sum(s["trained"] for s in steps)
        evals, saves = stats.get("evals") or [], stats.get("saves") or []
        base.update(
            {
                "eval_included": bool(evals),
                "eval_passes": len(evals),
                "eval_s": round(sum(e["seconds"] for e in evals), 2),
                "save_included": bool(saves),
                "saves": len(saves),
                "save_s": round(sum(s["seconds"] for s in saves), 2),
                "go_wait_s": round(stats.get("go_wait_s", 0.0), 1),
            }
        )
        if "memory_cap_enforced_gib" in stats:  # what torch reports after the cap was set
            base["memory_cap_enforced_gib"] = round(stats["memory_cap_enforced_gib"], 3)
        hist = stats.get("log_history") or []
        losses = [h["loss"] for h in hist if "loss" in h]
        base["loss_first_last"] = [losses[0], losses[-1]] if losses else None
        eval_loss = [h["eval_loss"] for h in hist if "eval_loss" in h]
        base["eval_loss"] = eval_loss[-1] if eval_loss else None
        tkps = [h["tokens/train_per_sec_per_gpu"] for h in hist if "tokens/train_per_sec_per_gpu" in h]
        base["axolotl_tokens_train_per_sec_per_gpu_last"] = tkps[-1] if tkps else None
        for k in ("peak_allocated_gib", "peak_reserved_gib"):
            v = max(peak.get(k, 0.0), stats.get(k, 0.0))
            if v:
                base[k] = round(v, 2)
        adapter = Path(conf["output_dir"]) / "adapter_model.safetensors"
        base["adapter_saved"] = adapter.exists()
        if rc is None:
            base["error"] = f"axolotl train ran past {self.args.timeout} s"
        elif rc != 0 or not stats.get("finished"):
            oom = "OutOfMemoryError" in log or "CUDA out of memory" in log
            base["error"] = "CUDA out of memory" if oom else f"axolotl train exited {rc}"
            base.update(oom_numbers(log) if oom else {})
            base["steps_done"] = len(stats.get("steps") or [])
            base["log_tail"] = log[-2500:]
        return base


def run_merge(item: Item, runs_done: dict, args, work: Path, logdir: Path) -> dict:
    """`axolotl merge-lora` of a finished run's adapter, capped like the others; wall time and peak."""
    target = runs_done.get(item.name.split(":", 1)[1])
    res = {"path": item.label, "run": item.name, "kind": "merge", "memory_cap_gib": item.cap}
    if target is None or not target.conf_path.exists():
        return {**res, "error": "the run to merge did not run first"}
    peak = work / f"{item.label}.peak.json"
    peak.unlink(missing_ok=True)
    out_dir = Path(target.conf["output_dir"])
    cmd = merge_command(target.conf_path, out_dir)
    env = subprocess_env(item.cap, work / "unused.json", peak, None, 29499)
    log_path = logdir / f"axolotl_{item.label}.log"
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            rc = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout)
            rc = rc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    res.update({"recipe": target.run.recipe, "command": " ".join(cmd), "wall_s": round(time.perf_counter() - t0, 1)})
    merged = out_dir / "merged"
    shards = sorted(merged.glob("*.safetensors"))
    res["merged_files"] = [f.name for f in shards]
    res["merged_gib"] = round(sum(f.stat().st_size for f in shards) / 2**30, 2)
    if peak.exists():
        res.update({k: round(v, 2) for k, v in json.loads(peak.read_text()).items()})
    if rc != 0 or not shards:
        text = log_path.read_text(errors="replace")
        res["error"] = "CUDA out of memory" if "out of memory" in text else f"merge-lora exited {rc}"
        res["log_tail"] = text[-2500:]
    if not args.keep_merged:
        shutil.rmtree(merged, ignore_errors=True)  # 17 GiB a model: the disk is not kept
    return res


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
    _free()
    return 2 * 8192**3 / statistics.median(times) / 1e12


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=["yi9b", "tiny"], default="yi9b")
    ap.add_argument("--tiny", action="store_true", help="= --shape tiny (CPU-sized)")
    ap.add_argument("--layers", type=int, help="override the layer count (e.g. 8 for the smoke run)")
    ap.add_argument("--runs", default="fixed_b2,sft,cpt", help="comma list, in order: NAME[@CAP_GIB] or merge:RUN")
    ap.add_argument("--paths", default=None, help="(old) plain variants and 'ours'; appended before --levers")
    ap.add_argument("--levers", default="", help=f"(old) recipe runs after --paths: {', '.join(RUNS)}")
    ap.add_argument("--memory-cap-gib", type=float, default=None, help="cap every run without @CAP (GiB)")
    ap.add_argument("--prefetch", type=int, default=2, help="recipe runs started ahead of their turn")
    ap.add_argument(
        "--together",
        action="store_true",
        help="let all recipe runs onto the GPU at once (memory checks only: their tokens/s share the GPU)",
    )
    ap.add_argument("--examples", type=int, default=3000)
    ap.add_argument("--eval-examples", type=int, default=100, help="held-out examples (sft's test_datasets)")
    ap.add_argument("--max-len", type=int, default=2048, help="cutoff of an example (truncation)")
    ap.add_argument("--batch-size", type=int, default=4, help="plain loop batch when the name gives none")
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=6, help="timed steps of each plain loop")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--ours-steps", type=int, default=6, help="axolotl max_steps (runs may set their own)")
    ap.add_argument("--ours-warmup", type=int, default=2, help="axolotl steps left out of the timing")
    ap.add_argument("--steps-cap", type=int, default=None, help="at most this many steps in every recipe run")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--no-ckpt-baseline", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="MFU denominator (default: measured)")
    ap.add_argument("--work", default="/tmp/bench_train")
    ap.add_argument("--logdir", default=None, help="axolotl logs (default: WORK/logs)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds a run may take once on the GPU")
    ap.add_argument("--keep-merged", action="store_true")
    ap.add_argument("--out", default=None, help="result JSON (default: print only)")
    ap.add_argument("--dry-run", action="store_true", help="CPU: tiny steps, no GPU needed")
    args = ap.parse_args(argv)
    if args.tiny:
        args.shape = "tiny"
    if args.memory_cap_gib is not None and not args.memory_cap_gib > 0:
        ap.error("--memory-cap-gib must be a positive number of GiB")
    if args.paths is not None or args.levers:
        args.runs = ",".join(x for x in [args.paths or "", args.levers] if x)
    if args.dry_run:
        args.examples, args.steps, args.warmup = min(args.examples, 200), min(args.steps, 2), min(args.warmup, 1)
        args.eval_examples = min(args.eval_examples, 20)
        args.ours_steps, args.ours_warmup, args.max_len, args.block = 3, 1, 512, 512
    try:
        args.items = parse_items(args.runs, args.memory_cap_gib)
    except ValueError as exc:
        ap.error(str(exc))
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
            "eval_examples": args.eval_examples,
            "batch_size": args.batch_size,
            "block": args.block,
            "max_len": args.max_len,
            "steps": args.steps,
            "warmup": args.warmup,
            "ours_steps": args.ours_steps,
            "ours_warmup": args.ours_warmup,
            "runs": args.runs,
            "memory_cap_gib": args.memory_cap_gib,
            "alloc_conf": ALLOC_CONF,
            "peak_tflops_measured": round(args.peak_tflops, 1),
            "lengths": str(common.LENGTHS_FILE.relative_to(REPO)),
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
    items = args.items
    extra = {"device_kind": device}
    paths: dict[str, dict] = {}

    def report(name, res):
        paths[name] = res
        print(json.dumps({k: v for k, v in res.items() if k not in ("log_tail", "config", "step_seconds")}), flush=True)
        if "log_tail" in res:
            print(res["log_tail"][-1500:], flush=True)
        if args.out:  # write after every run, so a cut-off call keeps what it measured
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(build_result(args, cfg, paths, device, extra), indent=1) + "\n")

    data = write_datasets(lengths, args, cfg["vocab_size"], work)
    need_model = any(i.kind != "plain" for i in items)
    if need_model and not (work / "model" / "model.safetensors.index.json").exists():
        shutil.rmtree(work / "model", ignore_errors=True)
        pending_model = True
    else:
        pending_model = False
    recipe_runs = {
        i: AxolotlRun(it, i, args, work, device, logdir) for i, it in enumerate(items) if it.kind == "recipe"
    }
    by_name: dict[str, AxolotlRun] = {}

    def prefetch(upto: int):
        for j, r in recipe_runs.items():
            if j <= upto and r.proc is None:
                r.start()

    try:
        if pending_model:  # the first runs import and prepare their data while the weights are written
            prefetch(args.prefetch - 1)
            extra["model_save_s"] = round(save_model_dir(cfg, device, work / "model"), 1)
        if args.together:  # every recipe run at once: each process's memory is its own, the timings are not
            prefetch(len(items))
            for r in recipe_runs.values():
                r.go()
            for r in recipe_runs.values():
                res = r.result(r.wait(), cfg)
                res["concurrent_with"] = [x.item.label for x in recipe_runs.values() if x is not r]
                by_name[r.item.name] = r
                report(r.item.label, res)
            items = [it for it in items if it.kind != "recipe"]
        for i, it in enumerate(items):
            prefetch(i + args.prefetch)
            t0 = time.perf_counter()
            if it.kind == "plain":
                set_cap_here(it.cap)
                if it.name in PLAIN_VARIANTS:
                    batches = common.padded_batches(
                        data["train"], args.batch_size, 64 if it.name == "padded_m64" else 8
                    )
                    res = run_plain(it.name, cfg, batches, args, device)
                    res["what"] = PLAIN_VARIANTS[it.name]
                else:
                    spec = plain_spec(it.name, args)
                    batches = common.fixed_blocks(data["train"], args.block, spec["batch"])
                    res = run_plain(it.name, cfg, batches, args, device, spec)
                res.update({"path": it.label, "run": it.name, "memory_cap_gib": it.cap})
                res["wall_s"] = round(time.perf_counter() - t0, 1)
                set_cap_here(None)
            elif it.kind == "recipe":
                r = recipe_runs[i]
                if r.proc is None:
                    r.start()
                r.go()
                res = r.result(r.wait(), cfg)
                by_name[it.name] = r
            else:
                res = run_merge(it, by_name, args, work, logdir)
            report(it.label, res)
    finally:
        for r in recipe_runs.values():
            if r.proc is not None and r.proc.poll() is None:
                os.killpg(r.proc.pid, signal.SIGKILL)
    print(f"{'run':22} {'cap':>5} {'tok/s':>9} {'MFU':>6} {'alloc':>6} {'resv':>6} eval save")
    for n, r in paths.items():
        print(
            f"{n:22} {r.get('memory_cap_gib') or 0:5.1f} {r.get('tok_s') or 0:9.1f} {r.get('mfu') or 0:6.3f} "
            f"{r.get('peak_allocated_gib') or 0:6.2f} {r.get('peak_reserved_gib') or 0:6.2f} "
            f"{'y' if r.get('eval_included') else '-':4} {'y' if r.get('save_included') else '-':4} {r.get('error') or ''}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
