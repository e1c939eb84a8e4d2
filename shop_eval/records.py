"""The one validated record type for a ShopBench example (evaluation or training).

Fields are the ShopBench ones (``input_field``, ``output_field``, ``task_name``, ``task_type``,
``metric``, ``is_multiple_choice``, ``track``).  The truth in ``output_field`` is checked against
its task type:

================================  =====================================================
task type                         truth
================================  =====================================================
``multiple-choice``               int (0-based option index)
``retrieval``                     non-empty list of int (candidate indices)
``ranking``                       non-empty list of relevance weights, one per candidate
``named_entity_recognition``      list of str
``generation``                    str (or a non-empty list of str for the
                                  sentence-transformer metrics, as the kit allows)
``classification``                str: a label out of a label set (project extension)
================================  =====================================================
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

TaskType = Literal[
    "multiple-choice",
    "retrieval",
    "ranking",
    "named_entity_recognition",
    "generation",
    "classification",
]
TASK_TYPES: tuple[str, ...] = (
    "multiple-choice",
    "retrieval",
    "ranking",
    "named_entity_recognition",
    "generation",
    "classification",
)
#: short names used for lm-eval task names (``shop_<short>``) and tables
SHORT_NAMES: dict[str, str] = {
    "multiple-choice": "multiple_choice",
    "retrieval": "retrieval",
    "ranking": "ranking",
    "named_entity_recognition": "ner",
    "generation": "generation",
    "classification": "classification",
}

OFFICIAL_METRICS: tuple[str, ...] = (
    "accuracy",
    "hit rate@3",
    "ndcg",
    "micro f1",
    "rougel",
    "sent-transformer",
    "multilingual-sent-transformer",
    "bleu",
    "jp-bleu",
)
GENERATION_METRICS = ("rougel", "sent-transformer", "multilingual-sent-transformer", "bleu", "jp-bleu")
METRICS_FOR_TYPE: dict[str, tuple[str, ...]] = {
    "multiple-choice": ("accuracy",),
    "retrieval": ("hit rate@3",),
    "ranking": ("ndcg",),
    "named_entity_recognition": ("micro f1",),
    "generation": GENERATION_METRICS,
    "classification": ("accuracy",),
}
DEFAULT_METRIC: dict[str, str] = {
    "multiple-choice": "accuracy",
    "retrieval": "hit rate@3",
    "ranking": "ndcg",
    "named_entity_recognition": "micro f1",
    "generation": "rougel",
    "classification": "accuracy",
}
DEFAULT_TRACK = "default"


class DataError(ValueError):
    """Bad input: names the file, the line or row, and the field."""

    def __init__(self, source: str, where: str, field: str | None, message: str):
        self.source, self.where, self.field, self.message = source, where, field, message
        loc = f"{source}:{where}" if where else source
        fld = f" field '{field}':" if field else ""
        super().__init__(f"{loc}:{fld} {message}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v  # not NaN


def truth_error(task_type: str, metric: str, truth: Any) -> str | None:
    """Why ``truth`` is not a valid truth for ``task_type`` (None when it is)."""
    if task_type in ("multiple-choice",):
        return None if _is_int(truth) else f"expected an int option index, got {type(truth).__name__} {truth!r:.60}"
    if task_type == "retrieval":
        if not isinstance(truth, list) or not truth or not all(_is_int(x) for x in truth):
            return f"expected a non-empty list of int, got {truth!r:.60}"
        return None
    if task_type == "ranking":
        if not isinstance(truth, list) or not truth or not all(_is_number(x) for x in truth):
            return f"expected a non-empty list of relevance weights, got {truth!r:.60}"
        return None
    if task_type == "named_entity_recognition":
        if not isinstance(truth, list) or not all(isinstance(x, str) for x in truth):
            return f"expected a list of str, got {truth!r:.60}"
        return None
    if task_type == "generation":
        if isinstance(truth, str):
            return None
        if (
            metric in ("sent-transformer", "multilingual-sent-transformer")
            and isinstance(truth, list)
            and truth
            and all(isinstance(x, str) for x in truth)
        ):
            return None
        return f"expected a str, got {type(truth).__name__} {truth!r:.60}"
    if task_type == "classification":
        if isinstance(truth, str) and truth.strip():
            return None
        return f"expected a non-empty str label, got {truth!r:.60}"
    return f"unknown task_type {task_type!r}"


class Record(BaseModel):
    """One ShopBench example.  ``output_field`` is checked against ``task_type`` and ``metric``."""

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
        allowed = METRICS_FOR_TYPE[self.task_type]
        if self.metric not in allowed:
            raise ValueError(
                f"metric: {self.metric!r} does not fit task_type {self.task_type!r} (expected one of {list(allowed)})"
            )
        err = truth_error(self.task_type, self.metric, self.output_field)
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
