"""The one validated record type for a ShopBench example (evaluation or training).

Fields are the ShopBench ones (``input_field``, ``output_field``, ``task_name``, ``task_type``,
``metric``, ``is_multiple_choice``, ``track``).  The truth in ``output_field`` is checked by its task type
(:mod:`shop_eval.task_types`), against the prompt's numbered options where it has any:

================================  =====================================================
task type                         truth
================================  =====================================================
``multiple-choice``               int >= 0 (the right option's number; one of the prompt's options)
``retrieval``                     non-empty list of int >= 0 (candidate numbers; among the prompt's)
``ranking``                       non-empty list of finite relevance weights, one per candidate
``named_entity_recognition``      list of str
``generation``                    str (or a non-empty list of str for the
                                  sentence-transformer metrics, as the kit allows)
``classification``                str: a label out of a label set (project extension)
================================  =====================================================
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from . import task_types
from .errors import DataError

__all__ = ["DataError", "Record", "make_record", "TASK_TYPES", "SHORT_NAMES", "DEFAULT_METRIC", "METRICS"]

TASK_TYPES: tuple[str, ...] = task_types.TASK_TYPES
TaskType = Literal[TASK_TYPES]  # type: ignore[valid-type]
#: short names used for lm-eval task names (``shop_<short>``) and tables
SHORT_NAMES: dict[str, str] = {t: task_types.get(t).short for t in TASK_TYPES}
DEFAULT_METRIC: dict[str, str] = {t: task_types.get(t).default_metric for t in TASK_TYPES}
METRICS_FOR_TYPE: dict[str, tuple[str, ...]] = {t: task_types.get(t).metrics for t in TASK_TYPES}
#: every metric name, in the order of the task types
METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for t in TASK_TYPES for m in METRICS_FOR_TYPE[t]))
DEFAULT_TRACK = "default"


class Record(BaseModel):
    """One ShopBench example.  ``output_field`` is checked against ``task_type``, ``metric`` and the prompt."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input_field: str
    output_field: Any
    task_name: str = Field(min_length=1)
    task_type: TaskType
    metric: str
    is_multiple_choice: bool = False
    track: str = DEFAULT_TRACK

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and "is_multiple_choice" not in data:
            data = dict(data)
            data["is_multiple_choice"] = data.get("task_type") == "multiple-choice"
        return data

    @model_validator(mode="after")
    def _check(self) -> Record:
        tt = task_types.get(self.task_type)
        if self.metric not in tt.metrics:
            raise ValueError(
                f"metric: {self.metric!r} does not fit task_type {self.task_type!r} (expected one of {list(tt.metrics)})"
            )
        err = tt.truth_error(self.output_field, self.metric, self.input_field)
        if err:
            raise ValueError(f"output_field: {err}")
        return self


RECORD_FIELDS = tuple(Record.model_fields)


def make_record(data: dict, source: str, where: str) -> Record:
    """Validate ``data`` into a :class:`Record`, or raise :class:`DataError` naming the field."""
    if not isinstance(data, dict):
        raise DataError(source, where, None, f"expected a JSON object, got {type(data).__name__}")
    try:
        return Record.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "__root__"]
        msg = first.get("msg", str(exc))
        field = loc[0] if loc else None
        if field is None and ":" in msg:  # errors raised by the after-validator name their field first
            head, _, rest = msg.removeprefix("Value error, ").partition(":")
            if head in RECORD_FIELDS:
                field, msg = head, rest.strip()
        if first.get("type") == "missing":
            msg = "missing"
        elif first.get("type") == "extra_forbidden":
            msg = f"unknown field (known: {', '.join(RECORD_FIELDS)})"
        raise DataError(source, where, field, msg.removeprefix("Value error, ")) from None
