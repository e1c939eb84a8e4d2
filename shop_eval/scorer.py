"""Offline scorer: ``shop-eval score DATA PREDICTIONS... --out result.json [--per-example F]``.

DATA is any loader format.  PREDICTIONS is either JSON Lines aligned with DATA line by line, each
``{"response": "..."}`` (an ``input_field`` in it must equal the data row's), or one or more lm-eval
``samples_*.jsonl`` files (``--log_samples``): each sample is matched to its DATA row by the doc's
``input_field`` and ``task_name``, and only the matched rows are scored.

The result holds, for each extractor (``official``, ``flexible``): per task name, per task type
(mean over its task names; generation also per metric), per track (mean over its task names) and
overall (mean over tracks) — each with n, the metric, the score, a standard error and the
parse-failure rate.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .extract import EXTRACTORS, extract
from .io import read_text, write_json, write_jsonl
from .loaders import FORMATS, load_records
from .metrics import (
    EMBEDDING_METRICS,
    Embedder,
    EmbeddingModelUnavailable,
    example_score,
    f1_from_counts,
    ner_counts,
    task_score,
)
from .prompts import format_answer
from .records import DataError, Record

log = logging.getLogger(__name__)
SCHEMA = "shop-eval/score/v1"
BOOTSTRAP_ITERS = 1000


# --------------------------------------------------------------------------- predictions


def _response_from_sample(sample: dict, source: str, where: str) -> str:
    resps = sample.get("resps")
    if not isinstance(resps, list) or not resps:
        raise DataError(source, where, "resps", "missing or empty in the lm-eval sample")
    first = resps[0]
    # log-likelihood multiple choice: one [loglik, is_greedy] per option -> the argmax option index
    # (lm-eval 0.4.11 logs them as strings: [["-11.05", "False"]])
    if all(isinstance(r, list) and r and isinstance(r[0], list) and r[0] and _is_num(r[0][0]) for r in resps):
        lls = [float(r[0][0]) for r in resps]
        return str(int(np.argmax(lls)))
    if all(isinstance(r, list) and len(r) == 2 and isinstance(r[0], (int, float)) for r in resps):
        return str(int(np.argmax([r[0] for r in resps])))
    if isinstance(first, list) and first and isinstance(first[0], str):
        return first[0]
    if isinstance(first, str):
        return first
    raise DataError(source, where, "resps", f"cannot read a response from {first!r:.80}")


def _is_num(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, (int, float)):
        return True
    if isinstance(x, str):
        try:
            float(x)
        except ValueError:
            return False
        return x.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity", "+inf")
    return False


def _doc_key(doc: dict) -> tuple[str, str]:
    return (doc.get("input_field", ""), doc.get("task_name", ""))


def read_predictions(paths: Sequence[str | Path], records: Sequence[Record]) -> tuple[list[int], list[str]]:
    """Return (indices of the DATA rows scored, their responses)."""
    paths = [Path(p) for p in paths]
    first_obj = None
    text0 = read_text(paths[0])
    for line in text0.split("\n"):
        if line.strip():
            try:
                first_obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(str(paths[0]), "line 1", None, f"invalid JSON: {exc.msg}") from None
            break
    if isinstance(first_obj, dict) and "doc" in first_obj and "resps" in first_obj:
        return _read_lm_eval_samples(paths, records)
    if len(paths) != 1:
        raise DataError(str(paths[1]), "", None, "several prediction files are only accepted for lm-eval samples")
    return _read_response_jsonl(paths[0], text0, records)


def _read_response_jsonl(path: Path, text: str, records: Sequence[Record]) -> tuple[list[int], list[str]]:
    source = str(path)
    lines = [(n, ln) for n, ln in enumerate(text.split("\n"), 1) if ln.strip()]
    if len(lines) != len(records):
        raise DataError(
            source, "", None, f"{len(lines)} predictions for {len(records)} data rows: they must align line by line"
        )
    out = []
    for i, (n, line) in enumerate(lines):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(source, f"line {n}", None, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(source, f"line {n}", None, "expected an object with a 'response'")
        if "response" not in obj:
            raise DataError(source, f"line {n}", "response", "missing")
        if not isinstance(obj["response"], str):
            raise DataError(source, f"line {n}", "response", f"expected a string, got {type(obj['response']).__name__}")
        if "input_field" in obj and obj["input_field"] != records[i].input_field:
            raise DataError(
                source, f"line {n}", "input_field", f"does not match data row {i + 1}: predictions are misaligned"
            )
        out.append(obj["response"])
    return list(range(len(records))), out


def _read_lm_eval_samples(paths: Sequence[Path], records: Sequence[Record]) -> tuple[list[int], list[str]]:
    keys = [(r.input_field, r.task_name) for r in records]
    index: dict[tuple[str, str], int] = {}
    for i, k in enumerate(keys):
        index.setdefault(k, i)
    chosen: dict[int, str] = {}
    answered_by: dict[int, str] = {}
    for path in paths:
        source = str(path)
        seen_docs: set[tuple[str, Any]] = set()
        for n, line in enumerate(read_text(path).split("\n"), 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(source, f"line {n}", None, f"invalid JSON: {exc.msg}") from None
            doc = sample.get("doc")
            if not isinstance(doc, dict):
                raise DataError(source, f"line {n}", "doc", "missing: run lm-eval with --log_samples")
            key = (source, sample.get("doc_id"))
            if key in seen_docs:  # the same doc under another filter pipeline: same raw response
                continue
            seen_docs.add(key)
            # shop_* docs carry their DATA row: duplicate prompts (EC-Guide has ~1.3k) stay separate rows
            row = doc.get("row")
            if isinstance(row, int) and 0 <= row < len(keys) and keys[row] == _doc_key(doc):
                i: int | None = row
            else:
                i = index.get(_doc_key(doc))
            if i is None:
                raise DataError(
                    source,
                    f"line {n}",
                    "doc",
                    f"this sample's input_field/task_name is not in DATA (doc_id {sample.get('doc_id')})",
                )
            if i in answered_by and answered_by[i] != source:
                raise DataError(
                    source,
                    f"line {n}",
                    "doc",
                    f"DATA row {i + 1} is also answered by {answered_by[i]}: pass the samples of one task variant "
                    "at a time (e.g. not shop_multiple_choice and shop_multiple_choice_ll together)",
                )
            answered_by[i] = source
            chosen[i] = _response_from_sample(sample, source, f"line {n}")
    order = sorted(chosen)
    return order, [chosen[i] for i in order]


# --------------------------------------------------------------------------- scoring


def _stderr_mean(xs: Sequence[float]) -> float:
    n = len(xs)
    if n < 2:
        return 0.0
    return float(np.std(np.asarray(xs, dtype=float), ddof=1) / math.sqrt(n))


def _stderr_pooled_f1(counts: Sequence[tuple[int, int, int]], seed: int = 0) -> float:
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


def _combine(parts: list[dict]) -> dict:
    """Mean of several scored parts (tasks or tracks), their stderr combined as independent means."""
    ok = [p for p in parts if p.get("score") is not None]
    n = sum(p["n"] for p in parts)
    failed = sum(p.get("parse_failures", 0) for p in parts)
    out: dict[str, Any] = {
        "n": n,
        "score": float(np.mean([p["score"] for p in ok])) if ok else None,
        "stderr": float(math.sqrt(sum(p["stderr"] ** 2 for p in ok)) / len(ok)) if ok else None,
        "parse_failures": failed,
        "parse_failure_rate": failed / n if n else 0.0,
        "n_tasks": sum(p.get("n_tasks", 1) for p in parts),
    }
    if len(ok) != len(parts):
        out["incomplete"] = True
    return out


def label_sets(records: Sequence[Record]) -> dict[str, list[str]]:
    """Per classification task name, its label set: the distinct truths, in order of appearance.
    Build it from all of a data set's rows, so that scoring a subset (lm-eval ``--limit``) reads
    responses against the same labels."""
    out: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.task_type == "classification" and r.output_field not in out[r.task_name]:
            out[r.task_name].append(r.output_field)
    return dict(out)


def score_responses(
    records: Sequence[Record],
    responses: Sequence[str],
    extractors: Sequence[str] = EXTRACTORS,
    progress: bool = False,
    per_example: list[dict] | None = None,
    labels: dict[str, list[str]] | None = None,
) -> dict:
    """Score ``responses`` against ``records`` under each extractor; returns the result dict.
    When ``per_example`` is a list, one row per example is appended to it; ``labels`` gives the
    classification label sets (default: :func:`label_sets` of ``records``)."""
    if len(records) != len(responses):
        raise ValueError(f"{len(records)} records but {len(responses)} responses")
    labels_by_task = dict(labels) if labels is not None else label_sets(records)

    result: dict[str, Any] = {"schema": SCHEMA, "n": len(records), "extractors": {}, "unavailable_metrics": {}}
    rows: list[dict] = [
        {"row": i, "task_name": r.task_name, "task_type": r.task_type, "metric": r.metric, "track": r.track}
        for i, r in enumerate(records)
    ]
    for ext in extractors:
        t0 = time.perf_counter()
        values, failed = [], []
        for r, resp in zip(records, responses, strict=True):
            e = extract(r.task_type, resp, ext, prompt=r.input_field, labels=labels_by_task.get(r.task_name))
            values.append(e.value)
            failed.append(e.failed)
        scores: list[Any] = [None] * len(records)
        emb_rows: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(records):
            if r.metric in EMBEDDING_METRICS:
                emb_rows[r.metric].append(i)
            elif r.metric == "micro f1":
                scores[i] = ner_counts(values[i], r.output_field)
            else:
                scores[i] = example_score(r.metric, values[i], r.output_field, r.task_type)
        for metric, idx in emb_rows.items():
            try:
                emb = Embedder.for_metric(metric)
            except EmbeddingModelUnavailable as exc:
                result["unavailable_metrics"][metric] = str(exc).split("\n")[0][:300]
                log.warning("metric %s unavailable: %s", metric, exc)
                continue
            sims = emb.similarity([values[i] for i in idx], [records[i].output_field for i in idx], progress=progress)
            for i, s in zip(idx, sims, strict=True):
                scores[i] = s
        result["extractors"][ext] = _aggregate(records, scores, failed)
        result["extractors"][ext]["seconds"] = round(time.perf_counter() - t0, 3)
        for i, row in enumerate(rows):
            s = scores[i]
            row[ext] = {
                "extracted": values[i],
                "failed": failed[i],
                "score": (None if s is None else (s if not isinstance(s, tuple) else _f1_row(s))),
            }
            if isinstance(s, tuple):
                row[ext]["tp_fp_fn"] = list(s)
    if per_example is not None:
        per_example.extend(rows)
    return result


def _f1_row(c: tuple[int, int, int]) -> float:
    return f1_from_counts(*c)


def _aggregate(records: Sequence[Record], scores: Sequence[Any], failed: Sequence[bool]) -> dict:
    by_task: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_task[r.task_name].append(i)
    tasks: dict[str, dict] = {}
    for name, idx in sorted(by_task.items()):
        r0 = records[idx[0]]
        metrics = {records[i].metric for i in idx}
        if len(metrics) > 1:
            raise DataError(
                name, "", "metric", f"task {name!r} mixes metrics {sorted(metrics)}: one metric per task name"
            )
        xs = [scores[i] for i in idx]
        nfail = sum(failed[i] for i in idx)
        entry: dict[str, Any] = {
            "n": len(idx),
            "metric": r0.metric,
            "task_type": r0.task_type,
            "track": r0.track,
            "parse_failures": nfail,
            "parse_failure_rate": nfail / len(idx),
        }
        if any(x is None for x in xs):
            entry.update(score=None, stderr=None)
        else:
            entry["score"] = task_score(r0.metric, xs)
            entry["stderr"] = _stderr_pooled_f1(xs) if r0.metric == "micro f1" else _stderr_mean(xs)
        tasks[name] = entry

    def group(key) -> dict[str, dict]:
        groups: dict[str, list[dict]] = defaultdict(list)
        for t in tasks.values():
            groups[key(t)].append(t)
        return {k: _combine(v) for k, v in sorted(groups.items())}

    task_types = group(lambda t: t["task_type"])
    for ttype, entry in task_types.items():
        members = [t for t in tasks.values() if t["task_type"] == ttype]
        entry["metrics"] = sorted({t["metric"] for t in members})
        if len(entry["metrics"]) > 1:
            entry["by_metric"] = {m: _combine([t for t in members if t["metric"] == m]) for m in entry["metrics"]}
    tracks = group(lambda t: t["track"])
    overall = _combine(list(tracks.values()))
    overall["n_tracks"] = len(tracks)
    return {"overall": overall, "tracks": tracks, "task_types": task_types, "tasks": tasks}


# --------------------------------------------------------------------------- CLI


def register(sub) -> None:
    p = sub.add_parser("score", help="score model responses with the official and flexible extractors")
    p.add_argument("data", help="data file or folder (ShopBench JSONL, EC-Guide JSON, alpaca JSON)")
    p.add_argument(
        "predictions",
        nargs="+",
        help="JSONL of {'response': ...} aligned with DATA, or lm-eval samples_*.jsonl; "
        "the word 'truth' scores each row's own truth (a self-check of data and metrics)",
    )
    p.add_argument("--out", required=True, help="result JSON")
    p.add_argument("--per-example", help="write one JSON line per row: extracted answers and scores")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--skip-invalid", action="store_true", help="skip (and report) bad data rows instead of failing")
    p.add_argument("--extractors", default=",".join(EXTRACTORS), help="comma-separated (default: official,flexible)")
    p.add_argument("--no-embeddings", action="store_true", help="leave sentence-transformer metrics unscored (faster)")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    t0 = time.perf_counter()
    loaded = load_records(args.data, args.format, args.skip_invalid)
    if args.skip_invalid and loaded.skipped:
        # responses align with the rows as written: skipping rows would misalign JSONL predictions
        console.print(f"[yellow]{len(loaded.skipped)} invalid data rows skipped[/]")
    records = loaded.records
    if args.predictions == ["truth"]:
        # self-check: each row's truth written as the official parser expects it
        idx, responses = list(range(len(records))), [format_answer(r) for r in records]
    else:
        idx, responses = read_predictions(args.predictions, records)
    if len(idx) != len(records):
        console.print(f"scoring the {len(idx)} of {len(records)} data rows found in the lm-eval samples")
    sel = [records[i] for i in idx]
    extractors = [e.strip() for e in args.extractors.split(",") if e.strip()]
    t_load = time.perf_counter() - t0
    per_example: list[dict] | None = [] if args.per_example else None
    with _maybe_disable_embeddings(args.no_embeddings):
        result = score_responses(
            sel,
            responses,
            extractors,
            progress=sys.stderr.isatty(),
            per_example=per_example,
            labels=label_sets(records),
        )
    result["data"] = {"path": str(args.data), **loaded.report()}
    result["predictions"] = [str(p) for p in args.predictions]
    result["seconds"] = {"load": round(t_load, 3), "total": round(time.perf_counter() - t0, 3)}
    write_json(args.out, result)
    if per_example is not None:
        for row, i in zip(per_example, idx, strict=True):
            row["row"] = i
        write_jsonl(args.per_example, per_example)
    print_table(result, console)
    return 0


class _maybe_disable_embeddings:
    """Context manager: with --no-embeddings, embedding metrics report as unavailable."""

    def __init__(self, disable: bool):
        self.disable = disable

    def __enter__(self):
        if self.disable:
            self._orig = Embedder.for_metric

            def _off(metric):
                raise EmbeddingModelUnavailable("disabled by --no-embeddings")

            Embedder.for_metric = staticmethod(_off)  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc):
        if self.disable:
            Embedder.for_metric = self._orig  # type: ignore[method-assign]


def _fmt(x: Any) -> str:
    return "—" if x is None else f"{x:.4f}"


def print_table(result: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    exts = list(result["extractors"])
    table = Table(title=f"ShopBench scores ({result['n']} rows)")
    table.add_column("task / type / track")
    table.add_column("metric")
    table.add_column("n", justify="right")
    for e in exts:
        table.add_column(f"{e}", justify="right")
        table.add_column(f"{e} fail%", justify="right")
    first = result["extractors"][exts[0]]

    def add(label: str, section: str, key: str, metric: str, style: str | None = None):
        cells = []
        for e in exts:
            entry = (
                result["extractors"][e][section][key] if section != "overall" else result["extractors"][e]["overall"]
            )
            cells += [f"{_fmt(entry['score'])} ± {_fmt(entry['stderr'])}", f"{100 * entry['parse_failure_rate']:.1f}"]
        n = (first[section][key] if section != "overall" else first["overall"])["n"]
        table.add_row(label, metric, str(n), *cells, style=style)

    for name, t in first["tasks"].items():
        add(name, "tasks", name, t["metric"])
    table.add_section()
    for ttype, t in first["task_types"].items():
        add(ttype, "task_types", ttype, ", ".join(t["metrics"]), style="bold")
    table.add_section()
    for track in first["tracks"]:
        add(f"track {track}", "tracks", track, "")
    add("overall", "overall", "", "", style="bold")
    console.print(table)
    if result.get("unavailable_metrics"):
        for m, why in result["unavailable_metrics"].items():
            console.print(f"[yellow]unscored metric {m}: {why}[/]")
