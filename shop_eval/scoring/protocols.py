"""The three scoring protocols: an extraction and a set of metrics each.

* ``official`` — the KDD Cup 2024 starter kit exactly (../shared/docs/shopbench-protocol.md): its parsers,
  its metrics, Python's quirks included.  The number to quote as "the ShopBench score".
* ``flexible`` — a robust extractor for chatty output (answer markers, lists, bullets, role tags), scored by
  the kit's metrics; it reports what it could not read as parse failures.
* ``shoppingmmlu`` — the Shopping MMLU authors' skill-wise scorer (../shared/docs/shopping-mmlu-format.md):
  their readings of the raw response and their metrics without the kit's guards; where their code raises or
  yields NaN the row scores 0 and counts as a parse failure.

:func:`score_value` is the one per-row scorer: the offline scorer and the lm-eval tasks both call it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import metrics as M
from .. import task_types
from ..task_types import Extraction, TaskType, _text

PROTOCOLS: tuple[str, ...] = ("official", "flexible", "shoppingmmlu")
DEFAULT_PROTOCOLS: tuple[str, ...] = PROTOCOLS


class Pending(NamedTuple):
    """An embedding-metric row, scored later in one batch per metric."""

    value: str
    truth: Any


@dataclass(frozen=True)
class Protocol:
    name: str
    summary: str
    read: Callable[[TaskType, str, str | None, list[str] | None], Extraction]
    #: metric name -> per-row function (task type, value, truth) -> float | Counts | Pending
    row_metrics: dict[str, Callable[[TaskType, Any, Any], Any]]
    #: pooled micro F1 from summed counts (may raise MetricFailure)
    pooled_f1: Callable[[float, float, float], float]


# --------------------------------------------------------------------------- readings


def _read_official(tt: TaskType, response: str, prompt: str | None, labels) -> Extraction:
    value = tt.official(_text.as_text(response)[: _text.MAX_RESPONSE_CHARACTERS])
    return Extraction(value, tt.official_failed(value))


def _read_flexible(tt: TaskType, response: str, prompt: str | None, labels) -> Extraction:
    text = _text.clean(_text.as_text(response), nfkc=tt.flexible_nfkc)
    try:
        return tt.flexible(text, prompt, labels)
    except RecursionError:  # pathological nesting in a literal
        return Extraction(tt.empty, True)


def _read_shoppingmmlu(tt: TaskType, response: str, prompt: str | None, labels) -> Extraction:
    return tt.shoppingmmlu(_text.as_text(response))


# --------------------------------------------------------------------------- per-row metrics


def _embedding(metric: str):
    return lambda tt, value, truth: Pending(value, truth)


_KIT: dict[str, Callable[[TaskType, Any, Any], Any]] = {
    "accuracy": lambda tt, v, t: float(tt.same_answer(v, t)),
    "hit rate@3": lambda tt, v, t: M.hit_rate_3(v, t),
    "ndcg": lambda tt, v, t: M.ndcg(v, t),
    "micro f1": lambda tt, v, t: M.ner_counts(v, t),
    "rougel": lambda tt, v, t: M.rougel(v, t),
    "bleu": lambda tt, v, t: M.bleu(v, t),
    "jp-bleu": lambda tt, v, t: M.bleu(v, t, japanese=True),
    "sent-transformer": _embedding("sent-transformer"),
    "multilingual-sent-transformer": _embedding("multilingual-sent-transformer"),
}


def _authors_accuracy(tt: TaskType, value: Any, truth: Any) -> float:
    if tt.name == "multiple-choice":  # the first character against the truth written as a string
        return float(value != "" and value == str(truth))
    return float(tt.same_answer(value, truth))


_AUTHORS = {
    **_KIT,
    "accuracy": _authors_accuracy,
    "ndcg": lambda tt, v, t: M.ndcg_unguarded(v, t),
}

REGISTRY: dict[str, Protocol] = {
    "official": Protocol(
        "official",
        "the KDD Cup 2024 starter kit's parsers and metrics, exactly",
        _read_official,
        _KIT,
        M.f1_from_counts,
    ),
    "flexible": Protocol(
        "flexible",
        "a robust extractor for chatty answers, scored with the kit's metrics",
        _read_flexible,
        _KIT,
        M.f1_from_counts,
    ),
    "shoppingmmlu": Protocol(
        "shoppingmmlu",
        "the Shopping MMLU authors' skill-wise scorer, exactly (failures of their code score 0)",
        _read_shoppingmmlu,
        _AUTHORS,
        M.f1_from_counts_unguarded,
    ),
}


def get(name: str) -> Protocol:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r} (one of {', '.join(REGISTRY)})") from None


def read(protocol: str, task_type: str, response: Any, prompt: str | None = None, labels=None) -> Extraction:
    """``protocol``'s reading of ``response`` for a row of ``task_type``."""
    return get(protocol).read(task_types.get(task_type), response, prompt, labels)


class RowScore(NamedTuple):
    """One scored row, as aggregation needs it.  ``value`` is a float, :class:`~shop_eval.metrics.Counts`
    (micro F1) or :class:`Pending` (embedding metrics, scored in a batch); None when it cannot be scored."""

    protocol: str
    task_name: str
    task_type: str
    metric: str
    track: str
    value: Any
    failed: bool


def score_value(protocol: str, task_type: str, metric: str, value: Any, truth: Any) -> tuple[Any, bool]:
    """The row's score under ``protocol``'s metric and whether the metric failed on it (then the score is 0)."""
    fn = get(protocol).row_metrics.get(metric)
    if fn is None:
        raise ValueError(f"unknown metric {metric!r}")
    try:
        return fn(task_types.get(task_type), value, truth), False
    except M.MetricFailure:
        return 0.0, True


def score_row(protocol: str, record, extraction: Extraction) -> RowScore:
    """A :class:`RowScore` for ``record`` (a Record or any object with its fields) and its extraction."""
    value, metric_failed = score_value(protocol, record.task_type, record.metric, extraction.value, record.output_field)
    return RowScore(
        protocol,
        record.task_name,
        record.task_type,
        record.metric,
        record.track,
        value,
        extraction.failed or metric_failed,
    )
