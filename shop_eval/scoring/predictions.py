"""Which response answers which data row.

Two kinds of predictions:

* JSON Lines of ``{"response": "..."}`` (optionally with the row's ``input_field``), one per data row *as
  written* — also the rows ``--skip-invalid`` skipped, so line N answers row N whatever was skipped;
* lm-eval ``samples_*.jsonl`` files: each sample is matched to its data row by the doc's ``row`` (when that row
  has the same ``input_field`` and ``task_name``), else by ``input_field`` and ``task_name`` (the kit pairs
  responses by prompt); only the matched rows are scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError, UsageError
from ..io import iter_json_lines, read_text
from ..loaders import LoadResult
from .samples import looks_like_samples, read_samples


def read_predictions(paths: Sequence[str | Path], loaded: LoadResult) -> tuple[list[int], list[str]]:
    """(indices of ``loaded.records`` that are answered, their responses)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise UsageError("no predictions given")
    text0 = read_text(paths[0])
    first = next(iter_json_lines(text0, str(paths[0])), (None, None))[1]
    if isinstance(first, DataError):
        raise first
    if looks_like_samples(first):
        return _from_samples(paths, loaded)
    if len(paths) != 1:
        raise UsageError(f"{paths[1]}: several prediction files are only accepted for lm-eval samples")
    return _from_jsonl(paths[0], text0, loaded)


def _from_jsonl(path: Path, text: str, loaded: LoadResult) -> tuple[list[int], list[str]]:
    source = str(path)
    records = loaded.records
    lines = list(iter_json_lines(text, source))
    if not lines:
        raise DataError(source, "", None, "no predictions (an empty file)")
    where0, first = lines[0]
    if not isinstance(first, (dict, DataError)):
        raise DataError(source, where0, None, f"expected an object with a 'response', got {type(first).__name__}")
    total = loaded.rows_read
    if total is None:
        raise DataError(
            source, "", None, "the data file's rows could not all be counted (a JSON syntax error ended it), "
            "so line-aligned predictions cannot be matched to its rows: fix the data file",
        )  # fmt: skip
    if len(lines) != total:
        skipped = f" ({len(loaded.skipped)} of them invalid and skipped)" if loaded.skipped else ""
        raise DataError(
            source, "", None,
            f"{len(lines)} predictions for {total} data rows{skipped}: line N must answer data row N",
        )  # fmt: skip
    out = []
    for pos, rec in zip(loaded.positions, records, strict=True):
        where, obj = lines[pos]
        if isinstance(obj, DataError):
            raise obj
        if not isinstance(obj, dict):
            raise DataError(source, where, None, f"expected an object with a 'response', got {type(obj).__name__}")
        if "response" not in obj:
            raise DataError(source, where, "response", "missing")
        if not isinstance(obj["response"], str):
            raise DataError(source, where, "response", f"expected a string, got {type(obj['response']).__name__}")
        if "input_field" in obj and obj["input_field"] != rec.input_field:
            raise DataError(
                source, where, "input_field", f"does not match data row {pos + 1}: predictions are misaligned"
            )
        out.append(obj["response"])
    return list(range(len(records))), out


def _from_samples(paths: Sequence[Path], loaded: LoadResult) -> tuple[list[int], list[str]]:
    records = loaded.records
    keys = [(r.input_field, r.task_name) for r in records]
    index: dict[tuple[str, str], int] = {}
    for i, k in enumerate(keys):
        index.setdefault(k, i)
    chosen: dict[int, str] = {}
    answered_by: dict[int, str] = {}
    for s in read_samples(list(paths)):
        key = (s.doc.get("input_field", ""), s.doc.get("task_name", ""))
        row = s.doc.get("row")
        # shop_* docs carry their DATA row: duplicate prompts (EC-Guide has ~1.3k) stay separate rows
        if isinstance(row, int) and not isinstance(row, bool) and 0 <= row < len(keys) and keys[row] == key:
            i: int | None = row
        else:
            i = index.get(key)
        if i is None:
            raise DataError(
                s.source, s.where, "doc", f"this sample's input_field/task_name is not in DATA (doc_id {s.doc_id})"
            )
        if i in answered_by and answered_by[i] != s.source:
            raise DataError(
                s.source, s.where, "doc",
                f"DATA row {i + 1} is also answered by {answered_by[i]}: pass the samples of one task variant "
                "at a time (e.g. not shop_multiple_choice and shop_multiple_choice_ll together)",
            )  # fmt: skip
        answered_by[i] = s.source
        chosen[i] = s.response
    order = sorted(chosen)
    return order, [chosen[i] for i in order]
