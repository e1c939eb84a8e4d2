"""Loaders for the input formats, all producing :class:`~shop_eval.records.Record`.

* ``shopbench``: ShopBench JSON Lines (the official development format; the kit names it ``.json``
  but it is one object a line).  Every field but ``is_multiple_choice`` and ``track`` is required.
* ``ec-guide``: EC-Guide style JSON arrays (a file, or a folder searched recursively).  ``task_name``
  is filled from the file (``MCQ/ACR``).  Its quirks are kept visible as *quirks* in the result:

  - a row whose ``task_type`` differs from its folder's (generation rows in ``MCQ/ACR.json``) keeps
    its own type and gets the task name ``MCQ/ACR#generation``;
  - the non-official metric ``bool`` (yes/no truths in ``MCQ/PRP.json``, ``MCQ/QPRJ.json``) becomes a
    ``classification`` row scored by accuracy on the normalised label, task ``MCQ/PRP#bool``;
  - a multiple-choice truth written as a digit string (``"3"``) becomes the int.

* ``alpaca``: LLaMA-Factory alpaca JSON (``instruction``/``input``/``output``/``task_type``), the
  seed project's test sets.  Noisy task-type labels are mapped (:func:`canonical_task_type`); truths
  are converted:

  - multiple choice ``"1"`` → ``1``; retrieval ``"1, 4, 5"`` → ``[1, 4, 5]``;
  - ranking: an ordering of 1-based candidate indices, best first (``"4, 2, 1, 3"``) becomes one
    relevance weight per candidate in prompt order: with ``n`` ranked items, the item at rank ``r``
    (1-based) gets weight ``n - r + 1``; candidates not named get 0.  So ``"4, 2, 1, 3"`` →
    ``[2, 3, 1, 4]``: a response that repeats the ordering scores NDCG 1, and any other order less;
  - NER: the official NER parser applied to the output text (so the truth is exactly what the
    official extractor would read from it);
  - generation and classification: the stripped text (metric ``rougel`` / ``accuracy``).

* ``shoppingmmlu``: a Shopping MMLU ``data/`` folder or one of its files (:mod:`shop_eval.shoppingmmlu`).

Bad input raises :class:`~shop_eval.records.DataError` naming file, line/row and field; with
``skip_invalid=True`` the row is counted and reported in :attr:`LoadResult.skipped` instead.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import shoppingmmlu, task_types
from .errors import DataError
from .io import iter_json_array, iter_json_lines, json_kind, missing_message, read_text
from .records import Record, make_record

FORMATS = ("auto", "shopbench", "ec-guide", "alpaca", "shoppingmmlu")

_FOLDER_TYPES = {
    "generation": "generation",
    "mcq": "multiple-choice",
    "multiple-choice": "multiple-choice",
    "ner": "named_entity_recognition",
    "retrieval": "retrieval",
    "ranking": "ranking",
    "classification": "classification",
}


def canonical_task_type(label: str) -> str | None:
    """Map a noisy task-type label ("Multiple Choice", "rank", "named-entity-recognition") to a canonical one."""
    return task_types.canonical(label)


@dataclass
class LoadResult:
    records: list[Record] = field(default_factory=list)
    #: rows that failed validation (only with ``skip_invalid=True``)
    skipped: list[DataError] = field(default_factory=list)
    #: counted quirks, e.g. ``{"MCQ/ACR: task_type 'generation' in a multiple-choice file": 5828}``
    quirks: Counter = field(default_factory=Counter)
    #: per record, "file:line" where it came from
    origins: list[str] = field(default_factory=list)
    #: per record, its position among all rows read (valid and skipped), in file order
    positions: list[int] = field(default_factory=list)
    #: rows read, valid and skipped (None when a syntax error ended a file before its end)
    rows_read: int | None = 0
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def extend(self, other: LoadResult) -> None:
        base = self.rows_read or 0
        self.records += other.records
        self.skipped += other.skipped
        self.quirks.update(other.quirks)
        self.origins += other.origins
        self.positions += [base + p for p in other.positions]
        self.rows_read = None if self.rows_read is None or other.rows_read is None else base + other.rows_read
        self.files += other.files

    def report(self) -> dict[str, Any]:
        by_reason = Counter(f"{e.field or 'row'}: {e.message[:80]}" for e in self.skipped)
        return {
            "files": len(self.files),
            "records": len(self.records),
            "skipped": len(self.skipped),
            "skipped_by_reason": dict(by_reason.most_common()),
            "skipped_examples": [str(e) for e in self.skipped[:10]],
            "quirks": dict(self.quirks),
        }


# --------------------------------------------------------------------------- converters


def _shopbench_row(obj: Any, source: str, where: str, result: LoadResult) -> Record:
    if isinstance(obj, dict):
        missing = [k for k in ("input_field", "output_field", "task_name", "task_type", "metric") if k not in obj]
        if missing:
            raise DataError(source, where, missing[0], "missing")
        obj = {k: v for k, v in obj.items() if k != "id"}
    return make_record(obj, source, where)


def _ec_guide_row(obj: Any, source: str, where: str, task_name: str, folder_type: str | None, result: LoadResult):
    if not isinstance(obj, dict):
        raise DataError(source, where, None, f"expected a JSON object, got {type(obj).__name__}")
    for k in ("input_field", "output_field", "task_type", "metric"):
        if k not in obj:
            raise DataError(source, where, k, "missing")
    row = dict(obj)
    name = row.get("task_name") or task_name
    ttype, metric, truth = row["task_type"], row["metric"], row["output_field"]
    if folder_type and ttype != folder_type and isinstance(ttype, str):
        result.quirks[f"{task_name}: task_type {ttype!r} in a {folder_type} file"] += 1
        name = f"{name}#{ttype}"
    if metric == "bool" and ttype == "multiple-choice":
        if not isinstance(truth, str) or not truth.strip():
            raise DataError(source, where, "output_field", f"metric 'bool' expects a yes/no label, got {truth!r:.60}")
        result.quirks[f"{task_name}: non-official metric 'bool' read as classification/accuracy"] += 1
        row.update(task_type="classification", metric="accuracy")
        name = f"{name}#bool"
    elif ttype == "multiple-choice" and isinstance(truth, str) and truth.strip().isdigit():
        result.quirks[f"{task_name}: multiple-choice truth given as a string"] += 1
        row["output_field"] = int(truth.strip())
    row["task_name"] = name
    return make_record(row, source, where)


def record_from_alpaca(obj: Any, source: str, where: str, task_name: str, result: LoadResult | None = None) -> Record:
    """One alpaca row (instruction/input/output/task_type) → a Record: the one place where an answer
    written as text becomes a typed truth (used by the loader and by ``shop-eval synth``)."""
    result = result if result is not None else LoadResult()

    if not isinstance(obj, dict):
        raise DataError(source, where, None, f"expected a JSON object, got {type(obj).__name__}")
    known = {"instruction", "input", "output", "task_type", "system", "history"}
    for k in obj:
        if k not in known:
            raise DataError(source, where, k, f"unknown field (known: {', '.join(sorted(known))})")
    for k in ("instruction", "output", "task_type"):
        if k not in obj:
            raise DataError(source, where, k, "missing")
        if not isinstance(obj[k], str):
            raise DataError(source, where, k, f"expected a string, got {type(obj[k]).__name__}")
    ttype = canonical_task_type(obj["task_type"])
    if ttype is None:
        raise DataError(source, where, "task_type", f"unknown task type {obj['task_type']!r}")
    if ttype != obj["task_type"]:
        result.quirks[f"{task_name}: task_type {obj['task_type']!r} read as {ttype!r}"] += 1
    prompt = obj["instruction"]
    if isinstance(obj.get("input"), str) and obj["input"].strip():
        prompt = f"{prompt}\n{obj['input']}"
    out = obj["output"].strip()
    tt = task_types.get(ttype)
    if tt.index_answers and len(out) > 1 and out[0] == out[-1] and out[0] in "\"'":
        result.quirks[f"{task_name}: quoted {ttype} truth read without its quotes"] += 1
        out = out[1:-1].strip()  # '"2"' -> '2'
    try:
        truth = tt.truth_from_text(out, prompt)
    except ValueError as exc:
        raise DataError(source, where, "output", str(exc)) from None
    return make_record(
        {
            "input_field": prompt,
            "output_field": truth,
            "task_name": task_name,
            "task_type": ttype,
            "metric": tt.default_metric,
            "is_multiple_choice": ttype == "multiple-choice",
        },
        source,
        where,
    )


# --------------------------------------------------------------------------- public API


def detect_format(path: str | Path, text: str | None = None) -> str:
    path = Path(path)
    if path.is_dir():
        return "shoppingmmlu" if shoppingmmlu.is_shoppingmmlu_folder(path) else "ec-guide"
    if path.suffix == ".jsonl":
        return "shopbench"
    if shoppingmmlu.is_shoppingmmlu_file(path):
        return "shoppingmmlu"
    text = read_text(path) if text is None else text
    kind = json_kind(text)
    if kind == "lines":
        return "shopbench"
    if kind == "array":
        head = text[:4096]
        return "alpaca" if re.search(r'"instruction"\s*:', head) and '"input_field"' not in head else "ec-guide"
    raise DataError(str(path), "line 1", None, "cannot tell the format: expected JSON Lines or a JSON array")


def _load_file(path: Path, fmt: str, skip_invalid: bool, root: Path | None, skill_map=None) -> LoadResult:
    source = str(path)
    result = LoadResult(files=[source])
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "shoppingmmlu":
        rows = shoppingmmlu.iter_file(path, result.quirks, skill_map)
        text = ""
    else:
        text = read_text(path)
        if not text.strip():
            empty = DataError(source, "", None, "empty file: no rows")
            if not skip_invalid:
                raise empty
            result.skipped.append(empty)
            return result
        if fmt == "auto":
            fmt = detect_format(path, text)
    rel = path.relative_to(root) if root else Path(path.parent.name) / path.name
    task_name = rel.with_suffix("").as_posix()
    folder_type = _FOLDER_TYPES.get(rel.parts[0].lower()) if len(rel.parts) > 1 else None
    if fmt == "shoppingmmlu":
        pass
    elif fmt == "shopbench":
        rows = iter_json_lines(text, source) if json_kind(text) == "lines" else iter_json_array(text, source)
    elif fmt in ("ec-guide", "alpaca"):
        rows = iter_json_array(text, source)
    else:
        raise ValueError(f"unknown format {fmt!r} (one of {FORMATS})")
    try:
        for where, obj in rows:
            result.rows_read += 1
            try:
                if isinstance(obj, DataError):
                    raise obj
                if fmt == "shoppingmmlu":
                    rec = obj
                elif fmt == "shopbench":
                    rec = _shopbench_row(obj, source, where, result)
                elif fmt == "ec-guide":
                    rec = _ec_guide_row(obj, source, where, task_name, folder_type, result)
                else:
                    rec = record_from_alpaca(obj, source, where, Path(path).stem, result)
            except DataError as err:
                if not skip_invalid:
                    raise
                result.skipped.append(err)
                continue
            result.records.append(rec)
            result.origins.append(f"{source}:{where}")
            result.positions.append(result.rows_read - 1)
    except DataError as err:
        # a JSON syntax error ends the file: rows already read are kept when skipping
        if not skip_invalid or err in result.skipped:
            raise
        result.skipped.append(err)
        result.rows_read = None
    if fmt == "ec-guide":
        _split_mixed_metrics(result)
    return result


def _split_mixed_metrics(result: LoadResult) -> None:
    """A task is scored with one metric: in a file that mixes metrics under one task name
    (EC-Guide's Generation/PKS: bleu and sent-transformer rows), rows of the less common metrics get
    the task name ``NAME#metric`` — reported as a quirk."""
    per_task: dict[str, Counter] = {}
    for r in result.records:
        per_task.setdefault(r.task_name, Counter())[r.metric] += 1
    for name, counts in per_task.items():
        if len(counts) < 2:
            continue
        main = counts.most_common(1)[0][0]
        for r in result.records:
            if r.task_name == name and r.metric != main:
                r.task_name = f"{name}#{r.metric}"
        for metric, n in counts.items():
            if metric != main:
                result.quirks[f"{name}: {n} rows with metric {metric!r} beside {main!r} (task {name}#{metric})"] += n


def load_records(path: str | Path, fmt: str = "auto", skip_invalid: bool = False) -> LoadResult:
    """Load a file or a folder of files in any supported format (see module docstring)."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "", None, missing_message(path))
    if fmt not in FORMATS:
        raise DataError(str(path), "", None, f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if path.is_dir() and (fmt == "shoppingmmlu" or (fmt == "auto" and shoppingmmlu.is_shoppingmmlu_folder(path))):
        files = shoppingmmlu.files_of(path)
        if not files:
            raise DataError(str(path), "", None, "a Shopping MMLU folder without data files")
        skills = path / "skills"
        skill_map = shoppingmmlu.skill_tasks(skills) if skills.is_dir() else {}
        result = LoadResult()
        for f in files:
            result.extend(_load_file(f, "shoppingmmlu", skip_invalid, root=path, skill_map=skill_map))
        return result
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file())
        if not files:
            raise DataError(str(path), "", None, "folder holds no .json or .jsonl files")
        result = LoadResult()
        for f in files:
            result.extend(_load_file(f, fmt, skip_invalid, root=path))
        return result
    return _load_file(path, fmt, skip_invalid, root=None)


def load(path: str | Path, fmt: str = "auto", skip_invalid: bool = False) -> list[Record]:
    """Shorthand: just the records."""
    return load_records(path, fmt, skip_invalid).records
