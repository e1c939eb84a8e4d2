"""An axolotl plugin that measures what the benchmark reports, independently of axolotl's own counters.

axolotl's ``tokens/train_per_sec_per_gpu`` counts *trained* (label != -100) tokens only; the benchmark
counts every real (non-pad) token the model processed, as for the baselines.  Enabled by adding
``bench.axolotl_plugin.BenchPlugin`` to ``plugins:`` (the repo root on PYTHONPATH) and naming the output
file in ``BENCH_AXOLOTL_STATS``.  Per optimizer step it records the wall time (after a device sync), the
real tokens, the trained tokens, the padded slots and Σ n(n+1)/2 over the packed segments (for the
attention FLOPs); at the end, peak device memory since training began.
"""

from __future__ import annotations

import json
import os
import time

import torch
from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback

from bench.token_stats import batch_stats, logged  # noqa: E402  (the repo root is on PYTHONPATH)


class _StepTimer(TrainerCallback):
    def __init__(self, out: str):
        self.out = out
        self.steps: list[dict] = []
        self.pending = {"real": 0, "slots": 0, "trained": 0, "pairs": 0}
        self.t_last = None

    def _sync(self):
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def add(self, stats: dict) -> None:
        for k, v in stats.items():
            self.pending[k] += v

    def on_train_begin(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self._sync()
        self.t_last = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._sync()
        now = time.perf_counter()
        self.steps.append({**self.pending, "seconds": now - self.t_last})
        self.pending = dict.fromkeys(self.pending, 0)
        self.t_last = now

    def on_train_end(self, args, state, control, **kwargs):
        result = {"steps": self.steps, "log_history": state.log_history}
        if torch.cuda.is_available():
            # axolotl resets the peak counters each time it logs (axolotl.utils.bench.gpu_memory_usage_all),
            # so the run's peak is the largest of its logged peaks and what is left since the last log.
            result["peak_allocated_gib"] = max(
                [torch.cuda.max_memory_allocated() / 2**30] + logged(state.log_history, "memory/max_allocated (GiB)")
            )
            result["peak_reserved_gib"] = max(
                [torch.cuda.max_memory_reserved() / 2**30] + logged(state.log_history, "memory/device_reserved (GiB)")
            )
        with open(self.out, "w") as fh:
            json.dump(result, fh)


class BenchPlugin(BasePlugin):
    """Counts real tokens per step and times steps; see the module docstring."""

    def add_callbacks_post_trainer(self, cfg, trainer):
        out = os.environ.get("BENCH_AXOLOTL_STATS")
        if not out:
            return []
        timer = _StepTimer(out)
        original = trainer.training_step

        def training_step(model, inputs, *args, **kwargs):
            timer.add(batch_stats(inputs))
            return original(model, inputs, *args, **kwargs)

        trainer.training_step = training_step
        return [timer]
