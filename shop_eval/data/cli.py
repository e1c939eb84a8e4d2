"""``shop-eval data corpus|sft|decontam``: the builders that feed recipes/cpt.yml and recipes/sft.yml.

    shop-eval data corpus PRODUCTS.jsonl --text-field title --text-field description --out data/corpus/corpus.jsonl
    shop-eval data sft ../shared/data/ec-guide --out data/sft
    shop-eval data decontam data/sft/train.jsonl --eval ../shared/data/seed-testsets --eval data/sft/validation.jsonl \\
        --out data/sft/train.clean.jsonl

Each writes its output atomically (temporary file + rename) and a JSON report beside it; bad rows are
counted and listed with file and line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from ..decontam import DEFAULT_N, decontaminate
from ..io import write_json, write_jsonl
from ..loaders import FORMATS, load_records


def register(sub) -> None:
    p = sub.add_parser("data", help="build training data: corpus (CPT), sft (chat JSONL), decontam")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="BUILDER")

    c = dsub.add_parser("corpus", help="clean + deduplicate product text into a continued-pretraining corpus")
    c.add_argument("inputs", nargs="+", help="JSON Lines / JSON-array files or folders")
    c.add_argument("--out", required=True, help="output .jsonl ({'text': ...} per line)")
    c.add_argument(
        "--text-field",
        action="append",
        dest="text_fields",
        metavar="FIELD",
        help="field(s) holding the text, joined by newlines when several (default: text)",
    )
    c.add_argument("--min-words", type=int, default=5, help="drop texts with fewer words (default 5)")
    c.add_argument(
        "--lang",
        action="append",
        dest="languages",
        metavar="CODE",
        help="keep only these languages (langdetect codes, e.g. en); repeatable; default: all",
    )
    c.add_argument("--near-dup-threshold", type=float, default=0.8, help="MinHash Jaccard threshold (default 0.8)")
    c.add_argument("--no-near-dup", action="store_true", help="exact deduplication only")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--report", help="report JSON (default: OUT with .report.json)")
    c.set_defaults(func=run_corpus)

    s = dsub.add_parser("sft", help="ShopBench records (any format) -> axolotl chat JSONL, stratified split")
    s.add_argument("inputs", nargs="+", help="files or folders in any supported format")
    s.add_argument("--out", required=True, help="output folder: train.jsonl, validation.jsonl, report.json")
    s.add_argument("--format", default="auto", choices=FORMATS)
    s.add_argument("--val-fraction", type=float, default=0.02, help="validation share per task (default 0.02)")
    s.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="TYPE=W",
        help="mixing weight per task type for the training side, e.g. generation=0.5 ranking=2",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--group-by",
        default="content",
        choices=("content", "prompt"),
        help="keep rows sharing content (default) or only identical prompts on one side of the split",
    )
    s.add_argument("--strict", action="store_true", help="fail on the first bad row instead of reporting it")
    s.set_defaults(func=run_sft)

    d = dsub.add_parser("decontam", help="remove training rows that overlap evaluation sets; write a report")
    d.add_argument("train", help="training data: chat/text JSONL (rows kept as they are) or any record format")
    d.add_argument(
        "--eval",
        action="append",
        required=True,
        dest="evals",
        metavar="[NAME=]PATH",
        help="an evaluation set (file or folder, any format); repeatable; NAME defaults to the stem",
    )
    d.add_argument("--out", required=True, help="kept training rows (.jsonl)")
    d.add_argument("--removed", help="also write the removed rows with their reason (.jsonl)")
    d.add_argument("--report", help="report JSON (default: OUT with .report.json)")
    d.add_argument("-n", type=int, default=DEFAULT_N, help=f"n-gram length in words (default {DEFAULT_N})")
    d.add_argument("--format", default="auto", choices=FORMATS, help="format of TRAIN when it is not chat/text JSONL")
    d.set_defaults(func=run_decontam)


def _report_path(out: str, given: str | None) -> Path:
    if given:
        return Path(given)
    out_p = Path(out)
    return out_p.with_name(out_p.name.removesuffix(".jsonl") + ".report.json")


def _print(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False), file=sys.stderr)


def run_corpus(args) -> int:
    from .corpus import build_corpus

    rows, report = build_corpus(
        args.inputs,
        text_fields=args.text_fields or ["text"],
        min_words=args.min_words,
        languages=args.languages,
        near_dup_threshold=None if args.no_near_dup else args.near_dup_threshold,
        seed=args.seed,
    )
    write_jsonl(args.out, rows)
    rep = {"output": args.out, **report.to_dict()}
    write_json(_report_path(args.out, args.report), rep)
    _print(
        {k: v for k, v in rep.items() if k != "bad_row_examples"} | {"bad_row_examples": rep["bad_row_examples"][:5]}
    )
    return 0


def run_sft(args) -> int:
    from .sft import build_sft, parse_weights

    t0 = time.perf_counter()
    try:
        weights = parse_weights(args.weight)
    except ValueError as exc:
        print(f"error: --weight: {exc}", file=sys.stderr)
        return 2
    records, skipped, quirks, files = [], [], {}, []
    for path in args.inputs:
        res = load_records(path, args.format, skip_invalid=not args.strict)
        records += res.records
        skipped += res.skipped
        files += res.files
        for k, v in res.quirks.items():
            quirks[k] = quirks.get(k, 0) + v
    t_load = time.perf_counter() - t0
    train, val, report = build_sft(
        records, val_fraction=args.val_fraction, weights=weights, seed=args.seed, group_by=args.group_by
    )
    out = Path(args.out)
    write_jsonl(out / "train.jsonl", train)
    write_jsonl(out / "validation.jsonl", val)
    total = time.perf_counter() - t0
    rows_in = len(records) + len(skipped)
    rep = {
        "inputs": args.inputs,
        "files": len(files),
        "rows_read": rows_in,
        "bad_rows": len(skipped),
        "bad_row_examples": [str(e) for e in skipped[:50]],
        "quirks": quirks,
        **report,
        "seconds_load": round(t_load, 3),
        "seconds_total": round(total, 3),
        "rows_per_minute": round(rows_in / total * 60) if total else None,
    }
    write_json(out / "report.json", rep)
    _print({k: v for k, v in rep.items() if k not in ("train_by_task", "validation_by_task", "bad_row_examples")})
    return 0


def _read_train(path: str, fmt: str) -> tuple[list[Any], list[str], str]:
    """Training rows: raw dicts for chat/text JSONL (written back unchanged), else validated Records."""
    p = Path(path)
    if p.is_file() and p.suffix == ".jsonl":
        with open(p, encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip()), "")
        try:
            head = json.loads(first) if first else {}
        except json.JSONDecodeError:
            head = {}
        if isinstance(head, dict) and ("messages" in head or ("text" in head and "input_field" not in head)):
            from .corpus import CorpusReport, iter_rows

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
    from ..decontam import text_of
    from .corpus import CorpusReport, iter_rows

    root = Path(path)
    files = (
        sorted(f for f in root.rglob("*") if f.suffix in (".json", ".jsonl") and f.is_file())
        if root.is_dir()
        else [root]
    )
    if not files or not files[0].exists():
        raise FileNotFoundError(f"{path}: no such file, or a folder without .json/.jsonl files")
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
            name = obj.get("task_name") if isinstance(obj.get("task_name"), str) else task
            rows.append({"input_field": text, "task_name": name})
    return rows, rep.bad_rows


def _task_of(item: Any) -> str:
    return getattr(item, "task_name", None) or (item.get("task_name") if isinstance(item, dict) else None) or "-"


def run_decontam(args) -> int:
    t0 = time.perf_counter()
    train, bad, kind = _read_train(args.train, args.format)
    eval_sets: dict[str, list[Any]] = {}
    eval_bad: dict[str, int] = {}
    for spec in args.evals:
        name, sep, path = spec.partition("=")
        if not sep or Path(spec).exists():
            name, path = Path(spec).stem, spec
        rows, bad_eval = read_eval_prompts(path)
        eval_sets.setdefault(name, []).extend(rows)
        eval_bad[name] = eval_bad.get(name, 0) + len(bad_eval)
    kept, removed, report = decontaminate(train, eval_sets, n=args.n)
    write_jsonl(args.out, kept)
    if args.removed:
        write_jsonl(
            args.removed,
            (
                {"match": str(m), "row": item.model_dump() if hasattr(item, "model_dump") else item}
                for item, m in removed
            ),
        )
    by_train_task: dict[str, int] = {}
    for item, _ in removed:
        by_train_task[_task_of(item)] = by_train_task.get(_task_of(item), 0) + 1
    seconds = time.perf_counter() - t0
    rep = {
        "train_file": args.train,
        "train_kind": kind,
        "output": args.out,
        "bad_rows": len(bad),
        "bad_row_examples": bad[:50],
        "eval_bad_rows": eval_bad,
        **report,
        "removed_by_train_task": dict(sorted(by_train_task.items())),
        "seconds": round(seconds, 3),
        "rows_per_second": round(len(train) / seconds, 1) if seconds else None,
    }
    write_json(_report_path(args.out, args.report), rep)
    _print({k: v for k, v in rep.items() if k not in ("examples", "bad_row_examples")})
    return 0
