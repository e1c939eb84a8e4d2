"""Cap every Python process's CUDA memory when ``BENCH_MEMORY_CAP_GIB`` is set, and record its whole-life
peak when ``BENCH_PEAK_FILE`` is set (bench/README.md).

Put this folder on ``PYTHONPATH`` and every Python process started with it — the benchmark itself,
``accelerate launch`` and each of its workers, ``axolotl train``, ``axolotl merge-lora`` — calls
``torch.cuda.set_per_process_memory_fraction(cap / total)`` on every visible GPU as soon as CUDA is
initialised, so a run that would not fit a card of that size fails with CUDA out-of-memory.  Nothing is
imported eagerly: a hook waits for ``import torch`` and registers the cap with torch's lazy CUDA
initialisation (``torch.cuda._lazy_call``).  Without the variable this module only hands over to any
other ``sitecustomize`` further down ``sys.path``.

The cap bounds what torch's caching allocator may reserve (``max_memory_reserved`` stays below it); the
CUDA context, NCCL buffers and other memory outside the allocator are not counted, which is why the
24 GB rows use 23.5 GiB.

The peak: torch's counters are reset by axolotl each time it logs, so ``torch.cuda.reset_peak_memory_stats``
is wrapped to fold the peak so far into a running maximum first; at exit the maximum is written to
``BENCH_PEAK_FILE`` as JSON (``peak_allocated_gib``, ``peak_reserved_gib``), also after a failure.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

ENV = "BENCH_MEMORY_CAP_GIB"
PEAK_ENV = "BENCH_PEAK_FILE"
_PEAK = {"peak_allocated_gib": 0.0, "peak_reserved_gib": 0.0}
_HERE = os.path.dirname(os.path.abspath(__file__))


def cap_fraction(cap_gib: float, total_bytes: int) -> float:
    """The fraction of a device of ``total_bytes`` that ``cap_gib`` GiB is (ValueError if out of range)."""
    if not cap_gib > 0:
        raise ValueError(f"{ENV} must be a positive number of GiB, got {cap_gib!r}")
    frac = cap_gib * 2**30 / total_bytes
    if frac > 1:
        raise ValueError(f"{ENV}={cap_gib} GiB is more than the device's {total_bytes / 2**30:.1f} GiB")
    return frac


def read_cap(environ=os.environ) -> float | None:
    raw = environ.get(ENV, "").strip()
    if raw in ("", "0", "none"):
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{ENV} must be a number of GiB, got {raw!r}") from None


def apply(torch, cap_gib: float) -> None:
    """Register the cap on every visible device at CUDA initialisation (now, if CUDA is up already)."""

    def _set():
        for dev in range(torch.cuda.device_count()):
            total = torch.cuda.get_device_properties(dev).total_memory
            torch.cuda.set_per_process_memory_fraction(cap_fraction(cap_gib, total), dev)

    torch.cuda._lazy_call(_set)


def _fold(torch) -> None:
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return
    for dev in range(torch.cuda.device_count()):
        _PEAK["peak_allocated_gib"] = max(_PEAK["peak_allocated_gib"], torch.cuda.max_memory_allocated(dev) / 2**30)
        _PEAK["peak_reserved_gib"] = max(_PEAK["peak_reserved_gib"], torch.cuda.max_memory_reserved(dev) / 2**30)


def peaks_gib(torch) -> dict:
    """The process's peak allocated / reserved GiB so far, over all resets of torch's counters."""
    _fold(torch)
    return dict(_PEAK)


def track_peaks(torch, path: str | None) -> None:
    reset = torch.cuda.reset_peak_memory_stats

    def reset_after_folding(device=None):
        _fold(torch)
        return reset(device)

    torch.cuda.reset_peak_memory_stats = reset_after_folding
    if path:
        import atexit
        import json

        def write():
            peaks = peaks_gib(torch)
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                with open(path, "w") as fh:
                    json.dump(peaks, fh)

        atexit.register(write)


def _on_torch(torch, cap_gib: float | None) -> None:
    if cap_gib is not None:
        apply(torch, cap_gib)
    track_peaks(torch, os.environ.get(PEAK_ENV))


class _TorchHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself: every spec of ``torch`` found while torch is not yet imported gets a loader that
    applies the cap right after torch's own code has run.  It stays on ``sys.meta_path`` until then, since a
    library may look torch up (``importlib.util.find_spec("torch")``) long before importing it."""

    def __init__(self, cap_gib: float | None):
        self.cap_gib = cap_gib
        self.done = False

    def find_spec(self, name, path=None, target=None):
        if name != "torch" or self.done:
            return None
        sys.meta_path.remove(self)  # find the real spec without finding ourselves again
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        hook, exec_module = self, spec.loader.exec_module

        def exec_and_cap(module):
            exec_module(module)
            if not hook.done:
                hook.done = True
                if hook in sys.meta_path:
                    sys.meta_path.remove(hook)
                _on_torch(module, hook.cap_gib)

        spec.loader.exec_module = exec_and_cap
        return spec


def _chain_next_sitecustomize() -> None:
    """Run the ``sitecustomize`` this one shadows (e.g. the interpreter's own), if there is one."""
    rest = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


def _install() -> None:
    try:
        cap = read_cap()
    except ValueError as exc:  # one line, exit 2 (an exception here would only be printed, and the run go on uncapped)
        print(f"error: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(2)
    if cap is None and not os.environ.get(PEAK_ENV):
        return
    if "torch" in sys.modules:
        _on_torch(sys.modules["torch"], cap)
    else:
        sys.meta_path.insert(0, _TorchHook(cap))


_install()
_chain_next_sitecustomize()
