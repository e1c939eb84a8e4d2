"""Token accounting of the axolotl plugin (bench/axolotl_plugin.py), importable without axolotl."""

from __future__ import annotations

import os

import torch

PAD_ID = int(os.environ.get("BENCH_PAD_ID", "0"))


def segment_pairs(position_ids: torch.Tensor, real: torch.Tensor) -> int:
    """Σ n(n+1)/2 over the segments of each row: a segment starts where position_ids == 0."""
    total = 0
    for pos, keep in zip(position_ids.tolist(), real.tolist(), strict=True):
        n = 0
        for p, k in zip(pos, keep, strict=True):
            if not k:
                continue
            if p == 0 and n:
                total += n * (n + 1) // 2
                n = 0
            n += 1
        total += n * (n + 1) // 2
    return total


def batch_stats(inputs: dict, pad_id: int = PAD_ID) -> dict:
    ids = inputs["input_ids"]
    real = ids != pad_id
    stats = {
        "real": int(real.sum()),
        "slots": int(ids.numel()),
        "trained": int((inputs["labels"] != -100).sum()) if "labels" in inputs else 0,
    }
    pos = inputs.get("position_ids")
    if pos is None:
        pos = torch.cumsum(real.long(), dim=1) - 1
    stats["pairs"] = segment_pairs(pos.cpu(), real.cpu())
    return stats


def logged(history: list[dict], key: str) -> list[float]:
    """The values of ``key`` in a Trainer log history (axolotl may log them as strings)."""
    out = []
    for entry in history:
        try:
            out.append(float(entry[key]))
        except (KeyError, TypeError, ValueError):
            continue
    return out
