"""What the lm-evaluation-harness tasks in ``lm_eval_tasks/`` call (``utils.py`` only re-exports these): data
loading through :mod:`shop_eval.loaders`, the prompt, one filter pipeline per protocol, ``process_results`` and
the aggregations — all of them thin calls into the scoring core (:mod:`shop_eval.scoring`), the same code
``shop-eval score`` runs.

Data: the ``shop_*`` tasks read ``lm_eval_tasks/data/sample.jsonl`` unless told otherwise; point them at any file
or folder the loaders accept with ``SHOP_EVAL_DATA=PATH`` (or ``--metadata '{"data": "PATH"}'``), optionally
``SHOP_EVAL_DATA_FORMAT`` and ``SHOP_EVAL_SKIP_INVALID=1``.  The ``shopmmlu_*`` tasks read a Shopping MMLU
``data/`` folder from ``SHOPMMLU_DATA``.  A task whose task type (or skill) has no rows in the data is *absent*:
it runs on zero docs, logs one line saying so, and reports no score.

Metrics reported per task and filter pipeline (``official``, ``flexible``, ``shoppingmmlu``):

* ``shop_score``: the protocol's aggregation over the task's rows (per task name: the mean, or pooled micro F1
  when the task's first row is ``micro f1``; then the mean over task names);
* ``parse_failure``: the share of rows where the protocol found no answer;
* generation only, one per metric (``rougel``, ``sent_transformer``, ``multilingual_sent_transformer``, ``bleu``,
  ``jp_bleu``): the same aggregation over the rows carrying that metric (``nan`` when none do).

Every row emits every metric key (``None`` where it does not apply) so that data-parallel ranks gather the same
keys in the same order.
"""

from __future__ import annotations

import json
import logging
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import task_types
from .errors import DataError
from .lm_eval_docs import dataset_features, doc_to_record, record_to_doc
from .loaders import load_records
from .options import flag
from .prompt_options import parse_options
from .prompts import official_prompt
from .scoring import aggregate, label_sets
from .scoring.protocols import Pending, RowScore, score_row
from .scoring.samples import argmax_first
from .shoppingmmlu import skill_number
from .task_types import Extraction

log = logging.getLogger(__name__)

DATA_ENV = "SHOP_EVAL_DATA"
FORMAT_ENV = "SHOP_EVAL_DATA_FORMAT"
SKIP_ENV = "SHOP_EVAL_SKIP_INVALID"
SHOPMMLU_ENV = "SHOPMMLU_DATA"
GENERATION_METRICS = task_types.get("generation").metrics
#: lm-eval metric key for each generation metric (lm-eval keys are ``metric,filter``: no spaces/dashes)
METRIC_KEYS = {m: m.replace("-", "_") for m in GENERATION_METRICS}
TASK_FOR_TYPE = {t: f"shop_{task_types.get(t).short}" for t in task_types.TASK_TYPES}

__all__ = ["doc_to_record", "record_to_doc"]


# --------------------------------------------------------------------------- data


def resolve_data(default: str | os.PathLike | None, data: str | None = None, env: str = DATA_ENV) -> Path:
    """The data path: ``data`` (from ``--metadata``), else ``$env``, else ``default``.  User paths are taken
    relative to the current directory; ``default`` is absolute (set by utils.py)."""
    chosen = data or os.environ.get(env) or default
    if not chosen:
        raise DataError(env, "", None, f'no data: set {env}=PATH (or --metadata \'{{"data": "PATH"}}\')')
    return Path(chosen).expanduser().resolve()


@lru_cache(maxsize=4)
def _docs(path: str, fmt: str, skip_invalid: bool, stamp: float) -> tuple[dict, ...]:
    loaded = load_records(path, fmt, skip_invalid)
    if loaded.skipped:
        log.warning("%s: %d invalid rows skipped: %s", path, len(loaded.skipped), loaded.report()["skipped_by_reason"])
    if loaded.quirks:
        log.info("%s: quirks %s", path, dict(loaded.quirks))
    labels = label_sets(loaded.records)
    return tuple(
        record_to_doc(r, row=i, origin=origin, labels=labels.get(r.task_name, []))
        for i, (r, origin) in enumerate(zip(loaded.records, loaded.origins, strict=True))
    )


def load_docs(
    task_type: str | None = None,
    default_data: str | os.PathLike | None = None,
    data: str | None = None,
    data_format: str | None = None,
    skip_invalid: Any = None,
    track: str | None = None,
    env: str = DATA_ENV,
    task: str | None = None,
    skill: int | None = None,
) -> list[dict]:
    """The docs of one task type (and, if given, one track, or one Shopping MMLU skill: tracks ``skill<N>_*``)
    from the chosen data; [] when it has none (the task is absent: one line says so)."""
    if task_type is not None:
        task_types.get(task_type)
    path = resolve_data(default_data, data, env)
    if not path.exists():
        raise DataError(str(path), "", None, f"no such file or folder (set by {env} or --metadata data)")
    fmt = data_format or os.environ.get(FORMAT_ENV) or "auto"
    skip = (
        flag(skip_invalid, "skip_invalid (--metadata)")
        if skip_invalid is not None
        else flag(os.environ.get(SKIP_ENV) or "0", SKIP_ENV)
    )
    docs = [
        d
        for d in _docs(str(path), fmt, skip, path.stat().st_mtime)
        if (task_type is None or d["task_type"] == task_type)
        and (track is None or d["track"] == track)
        and (skill is None or skill_number(d["track"]) == int(skill))
    ]
    if not docs:
        parts = (task_type and f"task type {task_type!r}", track and f"track {track!r}", skill and f"skill {skill}")
        what = " and ".join(x for x in parts if x)
        log.warning("%s: absent: %s has no %s rows (n = 0), nothing to evaluate", task or what, path, what)
    return docs


def load_dataset(**kwargs: Any):
    """lm-eval ``custom_dataset``: a ``DatasetDict`` with one ``test`` split of :func:`load_docs`'s docs.  lm-eval
    passes the task's ``metadata`` (which includes ``--model_args`` and ``--metadata``) and ``dataset_kwargs`` as
    keywords; the ones :func:`load_docs` does not take are ignored."""
    import inspect

    import datasets

    params = inspect.signature(load_docs).parameters
    task_type = kwargs.get("task_type")
    docs = load_docs(**{k: v for k, v in kwargs.items() if k in params})
    if not docs:
        docs = absent_docs(task_type)
    columns = {k: [d[k] for d in docs] for k in dataset_features()}
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns, features=dataset_features())})


#: the ``origin`` of the placeholder docs of an absent task
from .scoring.samples import ABSENT  # noqa: E402


def absent_docs(task_type: str | None) -> list[dict]:
    """The docs of an absent task.  lm-eval 0.4.11 refuses a task without docs (and a rank without docs), so an
    absent task holds one placeholder doc per process (``$WORLD_SIZE``): it is generated for like any doc, but
    scores nothing (``process_results`` returns no metric) and every reader of samples skips it."""
    from .records import Record

    tt = task_types.get(task_type or "generation")
    truth = {"multiple-choice": 0, "retrieval": [1], "ranking": [1.0], "named_entity_recognition": [],
             "generation": "-", "classification": ABSENT}[tt.name]  # fmt: skip
    rec = Record(input_field="", output_field=truth, task_name=ABSENT, task_type=tt.name, metric=tt.default_metric,
                 track=ABSENT)  # fmt: skip
    try:
        ranks = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        ranks = 1
    return [record_to_doc(rec, row=-1, origin=ABSENT) for _ in range(ranks)]


# --------------------------------------------------------------------------- prompt and targets


def doc_to_text(doc: dict) -> str:
    """The kit's prompt: system text, a blank line, then ``input_field``."""
    return official_prompt(doc["input_field"])


def doc_to_target(doc: dict) -> str:
    """The truth written as the official parser reads it (logged as ``target``)."""
    return task_types.get(doc["task_type"]).format_answer(json.loads(doc["output_field_json"]))


def doc_to_choice(doc: dict) -> list[str]:
    """Log-likelihood multiple choice: the option numbers ``"0" .. "N"`` (N the prompt's highest option), so
    that the argmax position *is* the answer; a prompt without an option list (Shopping MMLU's rating
    prediction) gets the ten digits, so the choices never depend on the truth."""
    opts = parse_options(doc["input_field"])
    n = opts.highest + 1 if opts else 10
    return [str(i) for i in range(n)]


def doc_to_choice_target(doc: dict) -> int:
    return int(json.loads(doc["output_field_json"]))


# --------------------------------------------------------------------------- filters: one per protocol


def _extract_all(resps: list[list[str]], docs: list[dict], protocol: str) -> list[dict]:
    from .scoring.protocols import read

    out = []
    for inst, doc in zip(resps, docs, strict=True):
        response = inst[0] if isinstance(inst, list | tuple) else inst
        labels = list(doc.get("labels") or []) or None
        e = read(protocol, doc["task_type"], response, doc["input_field"], labels)
        out.append({"protocol": protocol, "value": e.value, "failed": bool(e.failed)})
    return out


def official_filter(resps: list[list[str]], docs: list[dict]) -> list[dict]:
    """``official`` pipeline: the kit's parser on the first response of each doc."""
    return _extract_all(resps, docs, "official")


def flexible_filter(resps: list[list[str]], docs: list[dict]) -> list[dict]:
    """``flexible`` pipeline: the robust extractor (with the prompt and the label set)."""
    return _extract_all(resps, docs, "flexible")


def shoppingmmlu_filter(resps: list[list[str]], docs: list[dict]) -> list[dict]:
    """``shoppingmmlu`` pipeline: the Shopping MMLU authors' reading (scored by their metrics)."""
    return _extract_all(resps, docs, "shoppingmmlu")


# --------------------------------------------------------------------------- results and aggregation


def _results(rec, row: RowScore) -> dict:
    out: dict[str, Any] = {"shop_score": row, "parse_failure": row}
    metrics = task_types.get(rec.task_type).metrics
    if len(metrics) > 1:  # one key per metric (generation), the rows of the others None
        for m in metrics:
            out[m.replace("-", "_")] = row if m == rec.metric else None
    return out


def process_results(doc: dict, results: list) -> dict:
    """Generative tasks: ``results`` is ``[{"protocol", "value", "failed"}]`` from the active filter pipeline."""
    if doc.get("origin") == ABSENT:
        return {}
    rec = doc_to_record(doc)
    res = results[0]
    return _results(rec, score_row(res["protocol"], rec, Extraction(res["value"], res["failed"])))


def process_results_ll(doc: dict, results: list) -> dict:
    """Log-likelihood multiple choice: the answer is the option with the highest log-likelihood (it cannot
    fail on format), scored by the kit's accuracy.  ``results`` is one ``(loglikelihood, is_greedy)`` per option."""
    if doc.get("origin") == ABSENT:
        return {}
    rec = doc_to_record(doc)
    pred = argmax_first([r[0] for r in results])
    return _results(rec, score_row("official", rec, Extraction(pred, False)))


def _rows(items: list) -> list[RowScore]:
    return [RowScore(*x) for x in items if x is not None]


def agg_score(items: list) -> float:
    """The protocol's aggregation over the rows that carry this metric: per task name, then the mean."""
    rows = aggregate.resolve_pending(_rows(items))
    if not rows:
        return math.nan
    return aggregate.mean_over_tasks(rows)


def agg_parse_failure(items: list) -> float:
    return aggregate.parse_failure_rate(_rows(items))


__all__ += ["Pending"]
