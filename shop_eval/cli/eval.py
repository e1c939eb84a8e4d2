"""``shop-eval eval``: build (and run) the lm-evaluation-harness command for the ``shop_*`` tasks on CPU, one
GPU or N GPUs; ``make eval MODEL=... [ADAPTER=...] [NUM_GPUS=N] [EVAL_BACKEND=vllm]`` calls it.  The library:
:mod:`shop_eval.eval_launch`."""

from __future__ import annotations

import dataclasses

from ..eval_launch import (
    EvalSpec,
    absent_tasks,
    build_command,
    check_output,
    check_paths,
    format_command,
    run_command,
)
from ..eval_launch import __doc__ as LAUNCH_DOC
from .args import add_command


def register(sub) -> None:
    help_ = "run lm-eval on the shop_* tasks (CPU, one GPU, or N GPUs data-parallel / vllm)"
    add_command(sub, "eval", EvalSpec, run, help_, LAUNCH_DOC)


def run(spec: EvalSpec) -> int:
    spec = dataclasses.replace(spec, extra=list(spec.extra or []))
    cmd, env = build_command(spec)
    check_output(spec)
    print(format_command(cmd, env), flush=True)
    if spec.dry_run:  # a command for another machine: its model paths are not checked here
        return 0
    check_paths(spec)
    for name in absent_tasks(spec):
        print(f"absent: {name} (the data has no rows of its task type; n = 0, reported as absent)", flush=True)
    return run_command(spec)
