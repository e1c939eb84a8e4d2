"""The lm-eval doc of a record, and back: what the ``shop_*`` tasks evaluate and what their samples files log.

A doc holds the record's fields, the truth as JSON (``output_field_json``: its type varies within a task
type, which a ``datasets`` column cannot hold), ``labels`` (classification: the task name's label set over the
whole data file) and ``row`` / ``origin`` (where it came from in the data).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import DataError
from .records import Record, make_record

DOC_FIELDS = (
    "input_field",
    "task_name",
    "task_type",
    "metric",
    "track",
    "is_multiple_choice",
    "output_field_json",
    "labels",
    "row",
    "origin",
)


def record_to_doc(r: Record, row: int = 0, origin: str = "", labels: list[str] | None = None) -> dict[str, Any]:
    return {
        "input_field": r.input_field,
        "task_name": r.task_name,
        "task_type": r.task_type,
        "metric": r.metric,
        "track": r.track,
        "is_multiple_choice": r.is_multiple_choice,
        "output_field_json": json.dumps(r.output_field, ensure_ascii=False),
        "labels": list(labels or []),
        "row": row,
        "origin": origin,
    }


def doc_to_record(doc: dict, source: str = "doc", where: str = "") -> Record:
    """The :class:`Record` a doc (or a logged sample's ``doc``) was made from; a bad doc is a :class:`DataError`
    naming its place and field."""
    try:
        truth = json.loads(doc["output_field_json"])
    except KeyError as exc:
        raise DataError(source, where, str(exc.args[0]), "missing in the doc") from None
    except (TypeError, ValueError):
        raise DataError(source, where, "output_field_json", "not JSON") from None
    fields = {k: doc.get(k) for k in ("input_field", "task_name", "task_type", "metric", "track", "is_multiple_choice")}
    return make_record({**fields, "output_field": truth, "is_multiple_choice": bool(fields["is_multiple_choice"])},
                       source, where)  # fmt: skip


def dataset_features():
    """The ``datasets.Features`` of a doc."""
    import datasets

    return datasets.Features(
        {
            "input_field": datasets.Value("string"),
            "task_name": datasets.Value("string"),
            "task_type": datasets.Value("string"),
            "metric": datasets.Value("string"),
            "track": datasets.Value("string"),
            "is_multiple_choice": datasets.Value("bool"),
            "output_field_json": datasets.Value("string"),
            "labels": datasets.Sequence(datasets.Value("string")),
            "row": datasets.Value("int64"),
            "origin": datasets.Value("string"),
        }
    )
