"""``shop-eval eval``: build (and run) the lm-evaluation-harness command for the ``shop_*`` tasks on
CPU, one GPU or N GPUs.  ``make eval MODEL=... [ADAPTER=...] [NUM_GPUS=N] [EVAL_BACKEND=vllm]`` calls it.

* ``--backend hf`` (default): ``lm_eval --model hf`` on CPU (``--num-gpus 0``) or one GPU; with
  ``--num-gpus N > 1`` data-parallel, one full model copy per GPU:
  ``accelerate launch --multi_gpu --num_processes N -m lm_eval --model hf ...``.
  A LoRA adapter is passed as ``peft=ADAPTER`` in ``--model_args``.
* ``--backend vllm``: ``lm_eval --model vllm`` with ``tensor_parallel_size`` x ``data_parallel_size`` =
  N (default: data-parallel, tensor_parallel_size 1 — a 9B model fits on one GPU); a LoRA adapter is
  passed as ``lora_local_path`` (vLLM serves it on top of the base model, ``max_lora_rank`` must cover
  its rank).

``--dry-run`` prints the command (and the environment it sets) instead of running it.  Every command
logs samples (``--log_samples``) so that ``shop-eval leaderboard`` and ``shop-eval score`` can recompute
per-task-name, per-track and overall scores with standard errors.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .lm_eval_bridge import DATA_ENV

TASKS_DIR = Path(__file__).resolve().parents[1] / "lm_eval_tasks"
DEFAULT_TASKS = "shop_*"


@dataclass
class EvalSpec:
    model: str
    adapter: str | None = None
    num_gpus: int = 0
    backend: str = "hf"
    tasks: str = DEFAULT_TASKS
    tensor_parallel_size: int | None = None
    output: str | None = None
    name: str | None = None
    chat_template: bool = False
    system_instruction: bool = False
    batch_size: str | None = None
    dtype: str | None = None
    limit: float | None = None
    data: str | None = None
    max_lora_rank: int = 64
    gpu_memory_utilization: float = 0.9
    include_path: str = str(TASKS_DIR)
    extra: list[str] = field(default_factory=list)


def run_name(spec: EvalSpec) -> str:
    """A readable, filesystem-safe name: the model's folder name, plus the adapter's (and ``chat``)."""
    parts = [Path(spec.model.rstrip("/")).name or spec.model]
    if spec.adapter:
        parts.append(Path(spec.adapter.rstrip("/")).name)
    if spec.chat_template:
        parts.append("chat")
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", "+".join(parts)).strip("-") or "model"


def _model_args(spec: EvalSpec) -> str:
    gpu = spec.num_gpus > 0
    args = [f"pretrained={spec.model}"]
    if spec.backend == "hf":
        if spec.adapter:
            args.append(f"peft={spec.adapter}")
        args.append(f"dtype={spec.dtype or ('bfloat16' if gpu else 'float32')}")
    else:
        tp = spec.tensor_parallel_size or 1
        dp = spec.num_gpus // tp
        args += [
            f"tensor_parallel_size={tp}",
            f"data_parallel_size={dp}",
            f"dtype={spec.dtype or 'auto'}",
            f"gpu_memory_utilization={spec.gpu_memory_utilization}",
        ]
        if spec.adapter:
            args += [f"lora_local_path={spec.adapter}", f"max_lora_rank={spec.max_lora_rank}"]
    for a in args:
        if "," in a.split("=", 1)[1]:
            raise ValueError(f"a comma in {a!r} would split lm-eval's --model_args; rename the path")
    return ",".join(args)


def validate(spec: EvalSpec) -> None:
    if not spec.model:
        raise ValueError("MODEL is required (a local model folder or a hub id)")
    if spec.backend not in ("hf", "vllm"):
        raise ValueError(f"unknown backend {spec.backend!r} (hf or vllm)")
    if spec.num_gpus < 0:
        raise ValueError("NUM_GPUS must be >= 0")
    if spec.backend == "vllm":
        if spec.num_gpus < 1:
            raise ValueError("the vllm backend needs at least one GPU (NUM_GPUS >= 1)")
        tp = spec.tensor_parallel_size or 1
        if tp < 1 or spec.num_gpus % tp:
            raise ValueError(f"tensor_parallel_size {tp} must divide NUM_GPUS {spec.num_gpus}")
    elif spec.tensor_parallel_size not in (None, 1):
        raise ValueError("--tensor-parallel-size is a vllm option; hf runs one model copy per GPU")


def build_command(spec: EvalSpec) -> tuple[list[str], dict[str, str]]:
    """The argv to run and the environment variables it needs (beyond the caller's)."""
    validate(spec)
    out = spec.output or str(Path("runs") / "eval" / run_name(spec))
    if spec.backend == "hf" and spec.num_gpus > 1:
        launcher = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(spec.num_gpus), "-m", "lm_eval"]
    else:
        launcher = ["lm_eval"]
    cmd = [*launcher, "--model", spec.backend, "--model_args", _model_args(spec)]
    cmd += ["--include_path", spec.include_path, "--tasks", spec.tasks]
    if spec.backend == "hf":
        if spec.num_gpus == 0:
            cmd += ["--device", "cpu"]
        elif spec.num_gpus == 1:
            cmd += ["--device", "cuda:0"]
    cmd += ["--batch_size", spec.batch_size or ("auto" if spec.num_gpus else "8")]
    if spec.chat_template:
        cmd += ["--apply_chat_template"]
    if spec.limit is not None:
        cmd += ["--limit", f"{spec.limit:g}"]
    cmd += ["--log_samples", "--output_path", out, *spec.extra]
    env = {"TOKENIZERS_PARALLELISM": "false"}  # HF_HUB_OFFLINE etc. come from the caller (the Makefile sets them)
    if spec.data:
        env[DATA_ENV] = str(Path(spec.data).expanduser().resolve())
    return cmd, env


def format_command(cmd: list[str], env: dict[str, str]) -> str:
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), shlex.join(cmd)])


# --------------------------------------------------------------------------- CLI


def register(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="run lm-eval on the shop_* tasks (CPU, one GPU, or N GPUs data-parallel / vllm)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="base model folder or hub id")
    p.add_argument("--adapter", help="LoRA adapter folder (hf: peft=, vllm: lora_local_path=)")
    p.add_argument("--num-gpus", type=int, default=0, help="0 = CPU (default); N > 1 = data-parallel")
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--tasks", default=DEFAULT_TASKS, help="lm-eval task names or globs (default: 'shop_*')")
    p.add_argument("--tensor-parallel-size", type=int, help="vllm: GPUs per model copy (default 1)")
    p.add_argument("--output", help="lm-eval --output_path (default runs/eval/<model>[+<adapter>])")
    p.add_argument("--chat-template", action="store_true", help="pass --apply_chat_template")
    p.add_argument("--batch-size", help="default: auto on GPU, 8 on CPU")
    p.add_argument("--dtype", help="default: bfloat16 (hf on GPU), float32 (CPU), auto (vllm)")
    p.add_argument("--limit", type=float, help="lm-eval --limit (rows per task, or a fraction)")
    p.add_argument("--data", help=f"data file/folder for the tasks (sets {DATA_ENV}; default: the shipped sample)")
    p.add_argument("--max-lora-rank", type=int, default=64, help="vllm: the adapter's LoRA rank or more")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("extra", nargs="*", help="more lm-eval arguments, after `--`")
    p.set_defaults(func=run)


def run(args) -> int:
    spec = EvalSpec(
        model=args.model,
        adapter=args.adapter,
        num_gpus=args.num_gpus,
        backend=args.backend,
        tasks=args.tasks,
        tensor_parallel_size=args.tensor_parallel_size,
        output=args.output,
        chat_template=args.chat_template,
        batch_size=args.batch_size,
        dtype=args.dtype,
        limit=args.limit,
        data=args.data,
        max_lora_rank=args.max_lora_rank,
        extra=list(args.extra or []),
    )
    try:
        cmd, env = build_command(spec)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_command(cmd, env), flush=True)
    if args.dry_run:
        return 0
    full_env = {**os.environ, **env}
    # the venv's lm_eval / accelerate first, whether or not the venv is activated
    full_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), full_env.get("PATH", "")])
    return subprocess.call(cmd, env=full_env)
