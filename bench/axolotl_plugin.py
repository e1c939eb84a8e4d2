"""An axolotl plugin that measures what the benchmark reports, independently of axolotl's own counters.

axolotl's ``tokens/train_per_sec_per_gpu`` counts *trained* (label != -100) tokens only; the benchmark
counts every real (non-pad) token the model processed, as for the baselines.  Enabled by adding
``bench.axolotl_plugin.BenchPlugin`` to ``plugins:`` (the repo root on PYTHONPATH) and naming the output
file in ``BENCH_AXOLOTL_STATS``.  Per optimizer step it records the wall time (after a device sync), the
real tokens, the trained tokens, the padded slots and Σ n(n+1)/2 over the packed segments (for the
attention FLOPs).  Evaluation passes and checkpoint saves are timed on their own (their time is taken
out of the step they fall into) and counted, so a result can say that they ran.  Peak device memory is the
process's whole-life peak (bench/memcap/sitecustomize.py folds axolotl's resets of the peak counters).

``BENCH_GO_FILE``: the process waits before loading the model until that file exists.  The benchmark
starts the next runs early (imports, config, dataset preparation) and lets each one onto the GPU only
when the previous one has finished, so timed steps never share the GPU.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from pathlib import Path

import torch
from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback

from bench.token_stats import batch_stats, logged  # noqa: E402  (the repo root is on PYTHONPATH)


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def lifetime_peaks() -> dict:
    """Whole-process peak GiB from the memcap hook when it is loaded, else torch's own counters."""
    site = sys.modules.get("sitecustomize")
    if site is not None and hasattr(site, "peaks_gib"):
        return site.peaks_gib(torch)
    if not torch.cuda.is_available():
        return {}
    return {
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
    }


def enforce_cap() -> dict:
    """The ``BENCH_MEMORY_CAP_GIB`` cap on every visible GPU (bench/memcap/sitecustomize.py sets it at CUDA
    start already; this is the second line, after axolotl's imports) and the fraction torch reports."""
    cap = os.environ.get("BENCH_MEMORY_CAP_GIB")
    out: dict = {}
    if not (cap and torch.cuda.is_available()):
        return out
    for dev in range(torch.cuda.device_count()):
        total = torch.cuda.get_device_properties(dev).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, float(cap) * 2**30 / total), dev)
    getter = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if getter is not None:
        frac = getter(0)
        out = {
            "memory_fraction": frac,
            "memory_cap_enforced_gib": frac * torch.cuda.get_device_properties(0).total_memory / 2**30,
        }
    return out


def wait_for_go(path: str, timeout: float, poll: float = 0.2) -> float:
    """Block until ``path`` exists; returns the seconds waited (TimeoutError past ``timeout``)."""
    t0 = time.perf_counter()
    while not os.path.exists(path):
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"no go file {path} after {timeout:.0f} s")
        time.sleep(poll)
    return time.perf_counter() - t0


class _StepTimer(TrainerCallback):
    def __init__(self, out: str):
        self.out = out
        self.steps: list[dict] = []
        self.pending = {"real": 0, "slots": 0, "trained": 0, "pairs": 0}
        self.t_last = None
        self.excluded = 0.0  # seconds of evaluation / saving inside the current step's interval
        self.evals: list[dict] = []
        self.saves: list[dict] = []
        self.finished = False
        self.log_history: list[dict] = []
        self.extra: dict = {}

    def add(self, stats: dict) -> None:
        for k, v in stats.items():
            self.pending[k] += v

    def timed(self, what: str, fn, *args, **kwargs):
        """Run an evaluation or a save, timed on its own and left out of the step timing."""
        _sync()
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        _sync()
        dt = time.perf_counter() - t0
        self.excluded += dt
        (self.evals if what == "eval" else self.saves).append({"seconds": dt, "after_step": len(self.steps)})
        return result

    def on_train_begin(self, args, state, control, **kwargs):
        _sync()
        self.t_last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        _sync()
        now = time.perf_counter()
        self.steps.append({**self.pending, "seconds": now - self.t_last - self.excluded})
        self.pending = dict.fromkeys(self.pending, 0)
        self.excluded = 0.0
        self.t_last = now

    def on_train_end(self, args, state, control, **kwargs):
        self.finished = True
        self.log_history = state.log_history
        self.dump()

    def dump(self) -> None:
        result = {
            "steps": self.steps,
            "log_history": self.log_history,
            "evals": self.evals,
            "saves": self.saves,
            "finished": self.finished,
            **self.extra,
        }
        peaks = lifetime_peaks()
        if peaks:
            result.update(peaks)
            # axolotl's own logged peaks (since its last reset) as a cross-check
            result["logged_max_allocated_gib"] = max(logged(self.log_history, "memory/max_allocated (GiB)") or [0])
        Path(self.out).write_text(json.dumps(result))


class BenchPlugin(BasePlugin):
    """Counts real tokens per step, times steps, evaluations and saves; see the module docstring."""

    timer: _StepTimer | None = None
    go_wait_s: float = 0.0
    cap: dict = {}

    def pre_model_load(self, cfg):
        go = os.environ.get("BENCH_GO_FILE")
        if go:
            BenchPlugin.go_wait_s = wait_for_go(go, float(os.environ.get("BENCH_GO_TIMEOUT", "3600")))
        BenchPlugin.cap = enforce_cap()

    def add_callbacks_post_trainer(self, cfg, trainer):
        out = os.environ.get("BENCH_AXOLOTL_STATS")
        if not out:
            return []
        timer = _StepTimer(out)
        timer.extra.update({"go_wait_s": BenchPlugin.go_wait_s, **BenchPlugin.cap})
        BenchPlugin.timer = timer
        training_step, evaluate, save = trainer.training_step, trainer.evaluate, trainer._save_checkpoint

        def training_step_counted(model, inputs, *args, **kwargs):
            timer.add(batch_stats(inputs))
            return training_step(model, inputs, *args, **kwargs)

        trainer.training_step = training_step_counted
        trainer.evaluate = lambda *a, **k: timer.timed("eval", evaluate, *a, **k)
        trainer._save_checkpoint = lambda *a, **k: timer.timed("save", save, *a, **k)
        atexit.register(timer.dump)  # also after a failure (out of memory): the steps that ran and the peak
        return [timer]

    def post_train(self, cfg, model):
        if BenchPlugin.timer is not None:  # after axolotl's final save of the adapter: the whole-run peak
            BenchPlugin.timer.dump()
