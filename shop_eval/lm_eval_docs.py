"""The lm-eval doc of a record, and back: what the ``shop_*`` tasks evaluate and what their samples files log.

A doc holds the record's fields, the truth as JSON (``output_field_json``: its type varies within a task
type, which a ``datasets`` column cannot hold), ``labels`` (classification: the task name's label set over the
whole data file) and ``row`` / ``origin`` (where it came from in the data).
"""

from __future__ import annotations

import json
from typing import Any

from .records import Record

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


def doc_to_record(doc: dict) -> Record:
    """The :class:`Record` a doc (or a logged sample's ``doc``) was made from."""
    return Record.model_validate(
        {
            "input_field": doc["input_field"],
            "output_field": json.loads(doc["output_field_json"]),
            "task_name": doc["task_name"],
            "task_type": doc["task_type"],
            "metric": doc["metric"],
            "track": doc["track"],
            "is_multiple_choice": bool(doc["is_multiple_choice"]),
        }
    )


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
