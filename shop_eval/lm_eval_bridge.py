"""What the lm-evaluation-harness tasks in ``lm_eval_tasks/`` call: dataset loading through
:mod:`shop_eval.loaders`, the prompt, the two filter pipelines (``official`` / ``flexible`` extraction
from :mod:`shop_eval.extract`) and ``process_results`` / aggregations built on :mod:`shop_eval.metrics`.

``lm_eval_tasks/utils.py`` only re-exports these functions; nothing here parses or scores on its own.

Data: the tasks read ``lm_eval_tasks/data/sample.jsonl`` unless told otherwise.  Point them at any file or
folder the loaders accept with ``SHOP_EVAL_DATA=PATH`` (or ``--metadata '{"data": "PATH"}'``), optionally
``SHOP_EVAL_DATA_FORMAT`` (``auto``, ``shopbench``, ``ec-guide``, ``alpaca``) and
``SHOP_EVAL_SKIP_INVALID=1`` (skip and report bad rows instead of failing).

Each lm-eval doc is one record: ``input_field``, ``task_name``, ``task_type``, ``metric``, ``track``,
``is_multiple_choice``, ``output_field_json`` (the truth as JSON: its type varies within a task type, which
a ``datasets`` column cannot hold), ``labels`` (classification: the task name's label set over the whole
file, for the flexible extractor) and ``row`` / ``origin`` (where it came from).  ``shop-eval score`` aligns
lm-eval ``samples_*.jsonl`` rows to the data by ``row`` (when that row has the same ``input_field`` and
``task_name``; so duplicate prompts stay separate rows), else by ``input_field`` and ``task_name``.

Metrics reported per lm-eval task and filter pipeline:

* ``shop_score``: the protocol's aggregation over the task's rows (per task name: mean, or pooled micro F1 for
  NER; then the mean over task names), via :func:`shop_eval.metrics.aggregate_tasks`;
* ``parse_failure``: the share of rows where the pipeline's extractor found no answer;
* generation only, one per metric (``rougel``, ``sent_transformer``, ``multilingual_sent_transformer``,
  ``bleu``, ``jp_bleu``): the same aggregation over the rows carrying that metric (``nan`` when none do).

Every row emits every metric key (``None`` where it does not apply) so that data-parallel ranks gather the
same keys in the same order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from .extract import extract
from .loaders import load_records
from .metrics import EMBEDDING_METRICS, Embedder, EmbeddingModelUnavailable, aggregate_tasks, example_score, ner_counts
from .prompts import format_answer, official_prompt
from .records import GENERATION_METRICS, SHORT_NAMES, TASK_TYPES, DataError, Record
from .scorer import label_sets

log = logging.getLogger(__name__)

DATA_ENV = "SHOP_EVAL_DATA"
FORMAT_ENV = "SHOP_EVAL_DATA_FORMAT"
SKIP_ENV = "SHOP_EVAL_SKIP_INVALID"
#: lm-eval metric key for each generation metric (lm-eval keys are ``metric,filter``: no spaces/dashes)
METRIC_KEYS = {m: m.replace("-", "_") for m in GENERATION_METRICS}
TASK_FOR_TYPE = {t: f"shop_{SHORT_NAMES[t]}" for t in TASK_TYPES}


# --------------------------------------------------------------------------- data


def resolve_data(default: str | os.PathLike, data: str | None = None) -> Path:
    """The data path: ``data`` (from ``--metadata``), else ``$SHOP_EVAL_DATA``, else ``default``.
    User paths are taken relative to the current directory; ``default`` is absolute (set by utils.py)."""
    chosen = data or os.environ.get(DATA_ENV) or default
    return Path(chosen).expanduser().resolve()


def _truthy(x: Any) -> bool:
    return str(x).strip().lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=4)
def _docs_by_type(path: str, fmt: str, skip_invalid: bool, stamp: float) -> dict[str, list[dict]]:
    loaded = load_records(path, fmt, skip_invalid)
    if loaded.skipped:
        log.warning("%s: %d invalid rows skipped: %s", path, len(loaded.skipped), loaded.report()["skipped_by_reason"])
    if loaded.quirks:
        log.info("%s: quirks %s", path, dict(loaded.quirks))
    labels = label_sets(loaded.records)
    out: dict[str, list[dict]] = defaultdict(list)
    for i, (r, origin) in enumerate(zip(loaded.records, loaded.origins, strict=True)):
        out[r.task_type].append(record_to_doc(r, row=i, origin=origin, labels=labels.get(r.task_name, [])))
    return dict(out)


def record_to_doc(r: Record, row: int = 0, origin: str = "", labels: list[str] | None = None) -> dict:
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


def load_docs(task_type: str, default_data: str | os.PathLike, data: str | None = None, data_format: str | None = None,
              skip_invalid: Any = None) -> list[dict]:  # fmt: skip
    """The docs of one task type from the chosen data (see module docstring)."""
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task_type {task_type!r} (one of {TASK_TYPES})")
    path = resolve_data(default_data, data)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (set by {DATA_ENV} or --metadata data)")
    fmt = data_format or os.environ.get(FORMAT_ENV) or "auto"
    skip = _truthy(skip_invalid if skip_invalid is not None else os.environ.get(SKIP_ENV, "0"))
    by_type = _docs_by_type(str(path), fmt, skip, path.stat().st_mtime)
    docs = by_type.get(task_type, [])
    if not docs:
        have = [TASK_FOR_TYPE[t] for t in TASK_TYPES if by_type.get(t)]
        raise DataError(
            str(path), "", "task_type",
            f"no {task_type!r} rows, so task {TASK_FOR_TYPE[task_type]} has nothing to evaluate; "
            f"run only the tasks this data has: --tasks {','.join(have)}",
        )  # fmt: skip
    return docs


def load_dataset(task_type: str, default_data: str | os.PathLike, data: str | None = None,
                 data_format: str | None = None, skip_invalid: Any = None, **_metadata: Any):  # fmt: skip
    """lm-eval ``custom_dataset``: a ``DatasetDict`` with one ``test`` split.  lm-eval passes the task's
    ``metadata`` (which includes ``--model_args`` and ``--metadata``) and ``dataset_kwargs`` as keywords."""
    import datasets

    docs = load_docs(task_type, default_data, data, data_format, skip_invalid)
    features = datasets.Features(
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
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs, features=features)})


# --------------------------------------------------------------------------- prompt and targets


def doc_to_text(doc: dict) -> str:
    """The kit's prompt: system text, a blank line, then ``input_field``."""
    return official_prompt(doc["input_field"])


def doc_to_target(doc: dict) -> str:
    """The truth written as the official parser reads it (logged as ``target``)."""
    return format_answer(doc_to_record(doc))


_OPTION = re.compile(r"^\s*(\d{1,3})[.)]\s*\S", re.MULTILINE)


def doc_to_choice(doc: dict) -> list[str]:
    """Log-likelihood multiple choice: the option indices ``"0" .. "N-1"`` (N = the largest option number
    in the prompt + 1, at least the truth + 1), so that the argmax position *is* the answer index."""
    truth = json.loads(doc["output_field_json"])
    nums = [int(x) for x in _OPTION.findall(doc["input_field"])]
    n = max([*nums, truth, 1]) + 1
    return [str(i) for i in range(n)]


def doc_to_choice_target(doc: dict) -> int:
    return int(json.loads(doc["output_field_json"]))


# --------------------------------------------------------------------------- filters


def _extract_all(resps: list[list[str]], docs: list[dict], extractor: str) -> list[dict]:
    out = []
    for inst, doc in zip(resps, docs, strict=True):
        response = inst[0] if isinstance(inst, list | tuple) else inst
        labels = list(doc.get("labels") or []) or None
        e = extract(doc["task_type"], response, extractor, prompt=doc["input_field"], labels=labels)
        out.append({"value": e.value, "failed": bool(e.failed)})
    return out


def official_filter(resps: list[list[str]], docs: list[dict]) -> list[dict]:
    """``official`` pipeline: the protocol's parser (:func:`shop_eval.extract.extract`, extractor
    ``official``) on the first response of each doc."""
    return _extract_all(resps, docs, "official")


def flexible_filter(resps: list[list[str]], docs: list[dict]) -> list[dict]:
    """``flexible`` pipeline: the robust extractor (extractor ``flexible``, with the prompt and the label set)."""
    return _extract_all(resps, docs, "flexible")


# --------------------------------------------------------------------------- results and aggregation


class Pending(NamedTuple):
    """An embedding-metric row, scored in the aggregation (batched) rather than one by one."""

    value: str
    truth: Any


def _item(rec: Record, value: Any) -> tuple[str, str, Any]:
    if rec.metric in EMBEDDING_METRICS:
        x: Any = Pending(value, rec.output_field)
    elif rec.metric == "micro f1":
        x = ner_counts(value, rec.output_field)
    else:
        x = example_score(rec.metric, value, rec.output_field, rec.task_type)
    return (rec.task_name, rec.metric, x)


def _results(rec: Record, item: tuple, failed: bool) -> dict:
    out: dict[str, Any] = {"shop_score": item, "parse_failure": float(failed)}
    if rec.task_type == "generation":
        for m, key in METRIC_KEYS.items():
            out[key] = item if m == rec.metric else None
    return out


def process_results(doc: dict, results: list) -> dict:
    """Generative tasks: ``results`` is ``[{"value", "failed"}]`` from the active filter pipeline."""
    rec = doc_to_record(doc)
    res = results[0]
    return _results(rec, _item(rec, res["value"]), res["failed"])


def process_results_ll(doc: dict, results: list) -> dict:
    """Log-likelihood multiple choice: the answer is the option with the highest log-likelihood
    (it cannot fail on format).  ``results`` is one ``(loglikelihood, is_greedy)`` per option."""
    rec = doc_to_record(doc)
    lls = [r[0] for r in results]
    pred = max(range(len(lls)), key=lambda i: (lls[i], -i))  # first maximum, as numpy's argmax
    return _results(rec, _item(rec, pred), False)


def _resolve_pending(items: list[tuple]) -> list[tuple]:
    """Score the embedding rows in one batch per metric; rows whose model cannot be loaded are dropped
    (with a warning), as ``shop-eval score`` leaves their task names unscored."""
    pending: dict[str, list[int]] = defaultdict(list)
    for i, (_, metric, x) in enumerate(items):
        if isinstance(x, Pending) or (metric in EMBEDDING_METRICS and isinstance(x, list | tuple) and len(x) == 2):
            pending[metric].append(i)
    if not pending:
        return items
    items = list(items)
    drop: set[int] = set()
    for metric, idx in pending.items():
        try:
            emb = Embedder.for_metric(metric)
        except EmbeddingModelUnavailable as exc:
            log.warning("metric %s unavailable, its rows are left out: %s", metric, exc)
            drop.update(idx)
            continue
        sims = emb.similarity([items[i][2][0] for i in idx], [items[i][2][1] for i in idx])
        for i, s in zip(idx, sims, strict=True):
            items[i] = (items[i][0], metric, s)
    return [it for i, it in enumerate(items) if i not in drop]


def agg_score(items: list) -> float:
    """The protocol's aggregation over the rows that carry this metric: per task name, then the mean."""
    rows = [tuple(x) for x in items if x is not None]
    rows = _resolve_pending(rows)
    if not rows:
        return math.nan
    return aggregate_tasks(rows)


def agg_mean(items: list) -> float:
    xs = [float(x) for x in items if x is not None]
    return sum(xs) / len(xs) if xs else math.nan
