"""``shop-eval eval``: build (and run) the lm-evaluation-harness command for the ``shop_*`` tasks on
CPU, one GPU or N GPUs.  ``make eval MODEL=... [ADAPTER=...] [NUM_GPUS=N] [EVAL_BACKEND=vllm]`` calls it.

* ``--backend hf`` (default): ``lm_eval --model hf`` on CPU (``--num-gpus 0``) or one GPU; with
  ``--num-gpus N > 1`` data-parallel, one full model copy per GPU:
  ``accelerate launch --multi_gpu --num_processes N -m lm_eval --model hf ...``.
  A LoRA adapter is passed as ``peft=ADAPTER`` in ``--model_args``.
* ``--backend hf-fast``: the same model, prompts, adapters and chat templates as ``hf`` and the same greedy
  responses, decoded on a static KV cache replayed as one CUDA graph per step (:mod:`shop_eval.hf_fast`):
  ``python -m shop_eval.hf_fast --model hf-fast ...`` (that module registers the class with lm-eval and runs
  lm-eval's command line); batch 64 unless ``--batch-size`` says otherwise.  The one to pick on a GPU.
* ``--backend vllm``: ``lm_eval --model vllm`` with ``tensor_parallel_size`` x ``data_parallel_size`` =
  N (default: data-parallel, tensor_parallel_size 1 — a 9B model fits on one GPU); a LoRA adapter is
  passed as ``lora_local_path`` (vLLM serves it on top of the base model, ``max_lora_rank`` must cover
  its rank).

``--dry-run`` prints the command (and the environment it sets) instead of running it.  Every command
logs samples (``--log_samples``) so that ``shop-eval leaderboard`` and ``shop-eval score`` can recompute
per-task-name, per-track and overall scores with standard errors.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .lm_eval_bridge import DATA_ENV
from .options import float_in, int_in, nonempty, option
from .resources import tasks_dir

DEFAULT_TASKS = "shop_*"
BACKENDS = ("hf", "hf-fast", "vllm")
#: the lm-eval backends built on its hf model (one copy per process; hf-fast: shop_eval.hf_fast)
HF_BACKENDS = ("hf", "hf-fast")
#: hf-fast sizes its static KV cache by the batch: lm-eval's "auto" probe does not count it
HF_FAST_BATCH = "64"
DTYPES = ("auto", "float32", "bfloat16", "float16", "half", "float")


def batch_size(text: str) -> str:
    """lm-eval's ``--batch_size``: a positive int, ``auto`` or ``auto:N``."""
    import argparse

    head, _, n = text.partition(":")
    if (text.isdigit() and int(text) > 0) or (head == "auto" and (not n or (n.isdigit() and int(n) > 0))):
        return text
    raise argparse.ArgumentTypeError(f"expected a positive whole number, auto or auto:N, got {text!r}")


def limit(text: str) -> float:
    """lm-eval's ``--limit``: a fraction of the docs (0 < x <= 1) or a whole number of docs."""
    import argparse

    v = float_in(0, lo_open=True)(text)
    if v > 1 and v != int(v):
        raise argparse.ArgumentTypeError(f"expected a fraction 0 < x <= 1 or a whole number of docs, got {text!r}")
    return v


@dataclass
class EvalSpec:
    """One evaluation run (also the options of ``shop-eval eval``)."""

    model: str = option(help="base model folder or hub id", type=nonempty)
    adapter: str | None = option(None, help="LoRA adapter folder (hf: peft=, vllm: lora_local_path=)")
    num_gpus: int = option(0, help="0 = CPU (default); 1 = one GPU; N > 1 = data-parallel", type=int_in(0, 1024))
    backend: str = option("hf", help="lm-eval model backend", choices=BACKENDS)
    tasks: str = option(DEFAULT_TASKS, help="lm-eval task names or globs (default: 'shop_*')", type=nonempty)
    tensor_parallel_size: int | None = option(None, help="vllm: GPUs per model copy (default 1)", type=int_in(1, 1024))
    output: str | None = option(None, help="lm-eval --output_path (default runs/eval/<model>[+<adapter>])")
    name: str | None = None
    chat_template: bool = option(False, help="pass --apply_chat_template")
    system_instruction: bool = False
    batch_size: str | None = option(None, help="default: auto on GPU, 8 on CPU", type=batch_size)
    dtype: str | None = option(None, help="default: bfloat16 (hf on GPU), float32 (CPU), auto (vllm)", choices=DTYPES)
    limit: float | None = option(None, help="lm-eval --limit (docs per task, or a fraction 0 < x <= 1)", type=limit)
    data: str | None = option(
        None, help=f"data file/folder for the tasks (sets {DATA_ENV}; default: the shipped sample)"
    )
    max_lora_rank: int = option(64, help="vllm: the adapter's LoRA rank or more", type=int_in(1, 4096))
    gpu_memory_utilization: float = 0.9
    include_path: str | None = None
    dry_run: bool = option(False, help="print the command instead of running it")
    extra: list[str] = option([], help="more lm-eval arguments, after `--`", positional=True, nargs="*")


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
    if spec.backend in HF_BACKENDS:
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
            raise UsageError(f"a comma in {a!r} would split lm-eval's --model_args; rename the path")
    return ",".join(args)


def validate(spec: EvalSpec) -> None:
    """Options that cannot work together (a :class:`UsageError` naming them)."""
    if not spec.model:
        raise UsageError("MODEL is required (a local model folder or a hub id)")
    patterns = [p.strip() for p in spec.tasks.split(",")]
    if not all(patterns):
        raise UsageError(f"--tasks {spec.tasks!r}: an empty task name")
    import fnmatch

    from .resources import task_names

    known = task_names()
    for pat in patterns:
        if not any(fnmatch.fnmatchcase(n, pat) for n in known):
            raise UsageError(f"--tasks: no shop task or group matches {pat!r} (shop-eval tasks ls lists them)")
    if spec.backend not in BACKENDS:
        raise UsageError(f"unknown backend {spec.backend!r} (one of {', '.join(BACKENDS)})")
    if spec.num_gpus < 0:
        raise UsageError("NUM_GPUS must be >= 0")
    if spec.backend == "vllm":
        if spec.num_gpus < 1:
            raise UsageError("the vllm backend needs at least one GPU (NUM_GPUS >= 1)")
        tp = spec.tensor_parallel_size or 1
        if tp < 1 or spec.num_gpus % tp:
            raise UsageError(f"--tensor-parallel-size {tp} must divide NUM_GPUS {spec.num_gpus}")
    elif spec.tensor_parallel_size not in (None, 1):
        raise UsageError(f"--tensor-parallel-size is a vllm option; {spec.backend} runs one model copy per GPU")


def build_command(spec: EvalSpec) -> tuple[list[str], dict[str, str]]:
    """The argv to run and the environment variables it needs (beyond the caller's)."""
    validate(spec)
    out = spec.output or str(Path("runs") / "eval" / run_name(spec))
    # hf-fast registers its model class with lm-eval first: its module runs lm-eval's own command line
    module = "shop_eval.hf_fast" if spec.backend == "hf-fast" else "lm_eval"
    if spec.backend in HF_BACKENDS and spec.num_gpus > 1:
        launcher = ["accelerate", "launch", "--multi_gpu", "--num_processes", str(spec.num_gpus), "-m", module]
    else:
        launcher = ["lm_eval"] if module == "lm_eval" else ["python", "-m", module]
    cmd = [*launcher, "--model", spec.backend, "--model_args", _model_args(spec)]
    cmd += ["--include_path", spec.include_path or str(tasks_dir()), "--tasks", spec.tasks]
    if spec.backend in HF_BACKENDS:
        if spec.num_gpus == 0:
            cmd += ["--device", "cpu"]
        elif spec.num_gpus == 1:
            cmd += ["--device", "cuda:0"]
    default_batch = (HF_FAST_BATCH if spec.backend == "hf-fast" else "auto") if spec.num_gpus else "8"
    cmd += ["--batch_size", spec.batch_size or default_batch]
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


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_paths(spec: EvalSpec) -> None:
    """Before a run: a local model (adapter) must be a saved model — a folder with a ``config.json``
    (``adapter_config.json``) holding a JSON object, weights, and (a model) a tokenizer; a name that is not a local
    path must look like a hub id, and the hub must be reachable (not offline)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    for label, value, marker in (
        ("--model", spec.model, "config.json"),
        ("--adapter", spec.adapter, "adapter_config.json"),
    ):
        if not value:
            continue
        p = Path(value).expanduser()
        if p.exists():
            if not p.is_dir():
                raise UsageError(f"{label} {value}: expected a model folder, got a file")
            _check_model_folder(label, p, marker)
            continue
        if not _HUB_ID.match(value) or value.startswith((".", "/", "~")):
            raise UsageError(f"{label} {value}: no such folder")
        if offline:
            raise UsageError(f"{label} {value}: no such folder, and the hub is offline (HF_HUB_OFFLINE=1)")


def absent_tasks(spec: EvalSpec) -> list[str]:
    """The selected ``shop_*`` / ``shopchat_*`` / ``shopmmlu_*`` tasks whose task type (and skill) the data lacks:
    lm-eval runs them as absent.  A selection with none of the data's task types is a :class:`UsageError`."""
    import fnmatch

    from .leaderboard import family_of
    from .lm_eval_bridge import SHOPMMLU_ENV, load_docs
    from .resources import task_names

    names = [n for pat in spec.tasks.split(",") for n in task_names() if fnmatch.fnmatchcase(n, pat.strip())]
    tasks = [(n, family_of(n)) for n in dict.fromkeys(names)]
    tasks = [(n, fam) for n, fam in tasks if fam is not None]
    if not tasks:
        return []
    sample = tasks_dir() / "data" / "sample.jsonl"
    absent = []
    for name, (family, ttype) in tasks:
        if family.startswith("shopmmlu"):
            if not os.environ.get(SHOPMMLU_ENV):
                raise UsageError(f"task {name} reads Shopping MMLU: set {SHOPMMLU_ENV}=path/to/data")
            skill = {"concept": 1, "reasoning": 2, "behavior": 3, "multilingual": 4}.get(name.split("_")[1])
            docs = load_docs(ttype, None, env=SHOPMMLU_ENV, skill=skill, task=name)
        else:
            docs = load_docs(ttype, sample, spec.data, task=name)
        if not docs:
            absent.append(name)
    if len(absent) == len(tasks):
        raise UsageError(f"the data has no rows for any selected task ({', '.join(absent)}): nothing to evaluate")
    return absent


def _check_model_folder(label: str, p: Path, marker: str) -> None:
    """A saved model (adapter): its config is a JSON object, and it holds weights (a model: and a tokenizer)."""
    import json

    cfg = p / marker
    if not cfg.is_file():
        raise UsageError(f"{label} {p}: no {marker} in this folder (not a saved model)")
    try:
        ok = isinstance(json.loads(cfg.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"{label} {p}: {marker} is not a JSON object")
    if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")) and not any(p.glob("*.safetensors.index.json")):
        raise UsageError(f"{label} {p}: no weights (*.safetensors or *.bin) in this folder")
    tokenizer = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
    if marker == "config.json" and not any((p / t).is_file() for t in tokenizer):
        raise UsageError(f"{label} {p}: no tokenizer ({', '.join(tokenizer)}) in this folder")


def check_output(spec: EvalSpec) -> None:
    out = spec.output
    if out and Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--output {out}: is a file; lm-eval writes its results into a folder")


def run_command(spec: EvalSpec) -> int:
    """Run the lm-eval command with the venv's tools first on PATH; its exit code."""
    import subprocess
    import sys

    cmd, env = build_command(spec)
    full_env = {**os.environ, **env}
    full_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), full_env.get("PATH", "")])
    return subprocess.call(cmd, env=full_env)
