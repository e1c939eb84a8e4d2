"""Aggregation of scored rows, as the kit does it, and the views built on it.

* **Task name**: the mean of its rows' scores, whatever their metrics (a ``bleu`` row and a ``jp-bleu`` row of
  one translation task count alike) — except when the task's first row has the metric ``micro f1``: then the
  F1 of the tp, fp, fn summed over its rows (a corpus number, not a mean).
* **Task type, metric, track**: the mean over the task names that have rows of that type / metric / track,
  each task scored on those rows only (a task with ``bleu`` and ``jp-bleu`` rows counts in both metric views).
* **Overall**: ``mean_of_tracks`` (the all-around score, the challenge's Track 5) and ``mean_of_tasks`` (the
  kit's printed "Overall Score", all task names pooled).

Standard errors: per task the standard error of the mean (sample s.d. / √n), for pooled F1 a seeded
1000-sample bootstrap over rows; for a mean of k parts √(Σ se²) / k.  Rows with an embedding metric whose
model cannot be loaded have no score: their tasks and every mean above them are ``None`` and ``incomplete``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .. import metrics as M
from .. import task_types
from . import protocols as P
from .results import Cell, ProtocolResult, TaskCell, TypeCell

log = logging.getLogger(__name__)
BOOTSTRAP_ITERS = 1000


# --------------------------------------------------------------------------- embeddings


def resolve_pending(
    rows: Sequence[P.RowScore], unavailable: dict[str, str] | None = None, progress: bool = False
) -> list[P.RowScore]:
    """Score the :class:`~shop_eval.scoring.protocols.Pending` rows, one batch per embedding metric.  Where
    the metric's model cannot be loaded the row's value becomes None (and ``unavailable[metric]`` says why)."""
    todo: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if isinstance(r.value, P.Pending):
            todo[r.metric].append(i)
    if not todo:
        return list(rows)
    out = list(rows)
    for metric, idx in todo.items():
        try:
            emb = M.Embedder.for_metric(metric)
        except M.EmbeddingModelUnavailable as exc:
            why = str(exc).split("\n")[0][:300]
            if unavailable is not None:
                unavailable[metric] = why
            log.warning("metric %s unavailable, its rows are left unscored: %s", metric, why)
            for i in idx:
                out[i] = out[i]._replace(value=None)
            continue
        sims = emb.similarity([rows[i].value.value for i in idx], [rows[i].value.truth for i in idx], progress=progress)
        for i, s in zip(idx, sims, strict=True):
            out[i] = out[i]._replace(value=s)
    return out


# --------------------------------------------------------------------------- one task


def _sem(xs: Sequence[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    return float(np.std(np.asarray(xs, dtype=float), ddof=1) / math.sqrt(n))


def _bootstrap_pooled_f1(counts: Sequence[Sequence[int]], seed: int = 0) -> float:
    n = len(counts)
    if n < 2:
        return 0.0
    arr = np.asarray(counts, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(BOOTSTRAP_ITERS, n))
    sums = arr[idx].sum(axis=1)  # (iters, 3)
    tp, fp, fn = sums[:, 0], sums[:, 1], sums[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        r = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    return float(np.std(f, ddof=1))


def row_number(value: Any) -> float:
    """A row's own score: a float, or the example's F1 of its counts."""
    return M.f1_from_counts(*value) if isinstance(value, M.Counts) else float(value)


def _pooled(rows: Sequence[P.RowScore]) -> tuple[list[M.Counts], float | None]:
    """A pooled-F1 task's counts and its F1 (None where the protocol's metric fails on the task)."""
    counts = [r.value for r in rows if isinstance(r.value, M.Counts)]
    try:
        return counts, float(P.get(rows[0].protocol).pooled_f1(*M.sum_counts(counts)))
    except M.MetricFailure:
        return counts, None


def _pooled_task(rows: Sequence[P.RowScore]) -> bool:
    return bool(rows) and rows[0].metric == "micro f1"


def task_failures(rows: Sequence[P.RowScore]) -> int:
    """Parse failures of one task: rows the protocol could not read, or every row of a pooled-F1 task whose
    F1 the protocol's metric cannot give (the authors' code raises there)."""
    if _pooled_task(rows) and _pooled(rows)[1] is None:
        return len(rows)
    return sum(1 for r in rows if r.failed)


def score_task(rows: Sequence[P.RowScore]) -> tuple[float | None, float | None, int, bool]:
    """(score, stderr, parse failures, incomplete) of one task's rows, in data order."""
    if not rows:
        return None, None, 0, False
    failures = task_failures(rows)
    if any(r.value is None or isinstance(r.value, P.Pending) for r in rows):
        return None, None, failures, True
    if _pooled_task(rows):
        counts, score = _pooled(rows)
        return (0.0 if score is None else score), _bootstrap_pooled_f1(counts), failures, False
    xs = [row_number(r.value) for r in rows]
    return float(sum(xs) / len(xs)), _sem(xs), failures, False


# --------------------------------------------------------------------------- views


def combine(parts: Sequence[Cell]) -> Cell:
    """Mean of several parts (tasks or tracks), their standard errors combined as independent means."""
    ok = [p for p in parts if p.score is not None]
    return Cell(
        n=sum(p.n for p in parts),
        score=float(np.mean([p.score for p in ok])) if ok else None,
        stderr=float(math.sqrt(sum(p.stderr**2 for p in ok)) / len(ok)) if ok else None,
        parse_failures=sum(p.parse_failures for p in parts),
        n_tasks=sum(p.n_tasks for p in parts),
        incomplete=len(ok) != len(parts) or any(p.incomplete for p in parts),
    )


def _group(rows: Iterable[P.RowScore], key: Callable[[P.RowScore], str]) -> dict[str, list[P.RowScore]]:
    out: dict[str, list[P.RowScore]] = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def task_cells(rows: Sequence[P.RowScore]) -> dict[str, TaskCell]:
    """Per task name (sorted), scored on the given rows."""
    out: dict[str, TaskCell] = {}
    for name, rs in sorted(_group(rows, lambda r: r.task_name).items()):
        score, stderr, failures, incomplete = score_task(rs)
        out[name] = TaskCell(
            n=len(rs),
            score=score,
            stderr=stderr,
            parse_failures=failures,
            incomplete=incomplete,
            metric=rs[0].metric,
            metrics=sorted({r.metric for r in rs}),
            task_type=rs[0].task_type,
            task_types=sorted({r.task_type for r in rs}),
            track=rs[0].track,
        )
    return out


def view(rows: Sequence[P.RowScore], key: Callable[[P.RowScore], str]) -> dict[str, Cell]:
    """Per value of ``key`` (sorted): the mean over task names of each task's score on its rows with that value."""
    return {k: combine(list(task_cells(rs).values())) for k, rs in sorted(_group(rows, key).items())}


def mean_over_tasks(rows: Sequence[P.RowScore]) -> float:
    """The protocol's aggregation of ``rows``: per task name, then the mean over task names (NaN if none)."""
    cell = combine(list(task_cells(rows).values()))
    return math.nan if cell.score is None else cell.score


def parse_failure_rate(rows: Sequence[P.RowScore]) -> float:
    """The share of ``rows`` that are parse failures (:func:`task_failures` per task name)."""
    if not rows:
        return math.nan
    return sum(task_failures(rs) for rs in _group(rows, lambda r: r.task_name).values()) / len(rows)


def aggregate(rows: Sequence[P.RowScore]) -> ProtocolResult:
    """Every view of one protocol's ``rows`` (embedding rows already resolved)."""
    tasks = task_cells(rows)
    types: dict[str, TypeCell] = {}
    present = _group(rows, lambda r: r.task_type)
    for ttype in sorted(task_types.names()):
        rs = present.get(ttype)
        if not rs:
            types[ttype] = TypeCell(n=0, score=None, stderr=None, n_tasks=0, absent=True)
            continue
        cell = combine(list(task_cells(rs).values()))
        metrics = sorted({r.metric for r in rs})
        by_metric = view(rs, lambda r: r.metric) if len(metrics) > 1 else {}
        types[ttype] = TypeCell(**vars(cell), metrics=metrics, by_metric=by_metric)
    tracks = view(rows, lambda r: r.track)
    return ProtocolResult(
        mean_of_tracks=combine(list(tracks.values())),
        mean_of_tasks=combine(list(tasks.values())),
        tracks=tracks,
        task_types=types,
        metrics=view(rows, lambda r: r.metric),
        tasks=tasks,
    )
