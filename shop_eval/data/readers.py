"""Reading the sets ``shop-eval data decontam`` compares: training rows (chat/text JSONL kept as they are, else
records) and every prompt of an evaluation set, whatever its truths look like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..decontam import text_of
from ..errors import DataError
from ..io import iter_json_lines, read_text
from ..loaders import load_records
from .corpus import CorpusReport, iter_rows


def read_train_rows(path: str, fmt: str) -> tuple[list[Any], list[str], str]:
    """Training rows: raw dicts for chat/text JSONL (written back unchanged), else validated Records."""
    p = Path(path)
    if p.is_file() and p.suffix == ".jsonl":
        first = next(iter_json_lines(read_text(p), str(p)), (None, {}))[1]
        head = first if isinstance(first, dict) else {}
        if isinstance(head, dict) and ("messages" in head or ("text" in head and "input_field" not in head)):
            rep = CorpusReport()
            rows: list[Any] = []
            for where, obj in iter_rows(p, rep):
                if isinstance(obj, dict) and ("messages" in obj or "text" in obj):
                    rows.append(obj)
                else:
                    rep.bad_rows.append(f"{where}: expected an object with 'messages' or 'text'")
            return rows, rep.bad_rows, "rows"
    res = load_records(p, fmt, skip_invalid=True)
    return res.records, [str(e) for e in res.skipped], "records"


def read_eval_prompts(path: str | Path) -> tuple[list[dict[str, str]], list[str]]:
    """Every prompt of an evaluation set, whatever its truths look like (a row with an unreadable truth
    is still a prompt the model must not have trained on): ``{"text", "task_name"}`` per row, from
    ShopBench / EC-Guide / alpaca / chat rows; the task is the row's ``task_name`` or the file's path."""
    root = Path(path)
    files = (
        sorted(f for f in root.rglob("*") if f.suffix in (".json", ".jsonl") and f.is_file())
        if root.is_dir()
        else [root]
    )
    if not root.exists():
        raise DataError(str(path), "", None, "no such file or folder")
    if not files:
        raise DataError(str(path), "", None, "a folder without .json/.jsonl files")
    rep = CorpusReport()
    rows: list[dict[str, str]] = []
    for f in files:
        task = f.relative_to(root).with_suffix("").as_posix() if root.is_dir() else f.stem
        for where, obj in iter_rows(f, rep):
            try:
                text = text_of(obj)
            except TypeError:
                rep.bad_rows.append(f"{where}: no prompt (input_field, instruction, messages or text)")
                continue
            name = obj["task_name"] if isinstance(obj, dict) and isinstance(obj.get("task_name"), str) else task
            rows.append({"input_field": text, "task_name": name})
    return rows, rep.bad_rows
