"""The scoring core: one path from responses to scores, used by ``shop-eval score``, the lm-eval tasks'
aggregations and the leaderboard alike.

* :mod:`.protocols` — ``official`` / ``flexible`` / ``shoppingmmlu``: a reading of the response and a set of
  metrics each; :func:`.protocols.score_row` scores one row;
* :mod:`.aggregate` — per task name, then the task-type / metric / track views and both overall numbers;
* :mod:`.samples` — the only reader of lm-eval samples files;
* :mod:`.results` — the typed results (``to_json``).

:func:`score_rows` runs all of it for a list of records and their responses.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .. import task_types
from ..metrics import Counts
from ..records import Record
from . import aggregate, protocols
from .protocols import DEFAULT_PROTOCOLS, PROTOCOLS, Pending, RowScore, score_row
from .results import SCHEMA, Cell, ProtocolResult, ScoreResult, TaskCell, TypeCell

__all__ = [
    "DEFAULT_PROTOCOLS",
    "PROTOCOLS",
    "SCHEMA",
    "Cell",
    "Pending",
    "ProtocolResult",
    "RowScore",
    "ScoreResult",
    "TaskCell",
    "TypeCell",
    "label_sets",
    "score_row",
    "score_rows",
]


def label_sets(records: Sequence[Record]) -> dict[str, list[str]]:
    """Per classification task name, its label set: the distinct truths, in order of appearance.  Build it
    from all of a data set's rows, so that scoring a subset (lm-eval ``--limit``) reads responses against the
    same labels."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if task_types.get(r.task_type).has_label_set and r.output_field not in out[r.task_name]:
            out[r.task_name].append(r.output_field)
    return dict(out)


def score_rows(
    records: Sequence[Record],
    responses: Sequence[str],
    protocol_names: Sequence[str] = DEFAULT_PROTOCOLS,
    *,
    labels: dict[str, list[str]] | None = None,
    embeddings: bool = True,
    progress: bool = False,
    per_example: list[dict] | None = None,
) -> ScoreResult:
    """Score ``responses`` against ``records`` under each protocol.  ``labels``: the classification label sets
    (default: :func:`label_sets` of ``records``); ``embeddings=False`` leaves the sentence-transformer metrics
    unscored; ``per_example`` (a list) receives one row per record with what each protocol extracted."""
    if len(records) != len(responses):
        raise ValueError(f"{len(records)} records but {len(responses)} responses")
    for p in protocol_names:
        protocols.get(p)
    labels_by_task = dict(labels) if labels is not None else label_sets(records)
    unavailable: dict[str, str] = {}
    rows: list[dict[str, Any]] = [
        {"row": i, "task_name": r.task_name, "task_type": r.task_type, "metric": r.metric, "track": r.track}
        for i, r in enumerate(records)
    ]
    results: dict[str, ProtocolResult] = {}
    for p in protocol_names:
        t0 = time.perf_counter()
        extracted, scored = [], []
        for r, resp in zip(records, responses, strict=True):
            e = protocols.read(p, r.task_type, resp, r.input_field, labels_by_task.get(r.task_name))
            extracted.append(e)
            scored.append(score_row(p, r, e))
        if not embeddings:
            for i, s in enumerate(scored):
                if isinstance(s.value, Pending):
                    scored[i] = s._replace(value=None)
                    unavailable[s.metric] = "disabled by --no-embeddings"
        scored = aggregate.resolve_pending(scored, unavailable, progress=progress)
        res = aggregate.aggregate(scored)
        res.seconds = round(time.perf_counter() - t0, 3)
        results[p] = res
        for row, e, s in zip(rows, extracted, scored, strict=True):
            cell: dict[str, Any] = {
                "extracted": e.value,
                "failed": s.failed,
                "score": None if s.value is None else aggregate.row_number(s.value),
            }
            if isinstance(s.value, Counts):
                cell["tp_fp_fn"] = list(s.value)
            row[p] = cell
    if per_example is not None:
        per_example.extend(rows)
    return ScoreResult(n=len(records), protocols=results, unavailable_metrics=unavailable)
