"""``shop-eval data corpus|sft|decontam``: the builders that feed recipes/cpt.yml and recipes/sft.yml.

    shop-eval data corpus PRODUCTS.jsonl --text-field title --text-field description --out data/corpus/corpus.jsonl
    shop-eval data sft ../shared/data/ec-guide --out data/sft
    shop-eval data decontam data/sft/train.jsonl --eval ../shared/data/seed-testsets \\
        --eval heldout=data/sft/validation.jsonl --out data/sft/train.clean.jsonl

Each run's outputs (the data and its JSON report) change together or not at all; bad rows are counted and
listed with file and line; a run that would keep nothing is an error and leaves the previous outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.readers import read_eval_prompts, read_train_rows
from ..decontam import (
    DEFAULT_K,
    DEFAULT_MIN_ITEM,
    DEFAULT_N,
    DEFAULT_TEMPLATE_DF,
    DEFAULT_TEMPLATE_TRAIN_DF,
    decontaminate,
)
from ..errors import DataError, UsageError
from ..io import Outputs
from ..loaders import FORMATS, LoadResult, load_records
from ..options import float_in, int_in, option
from ..records import TASK_TYPES
from .args import add_command


def _language(code: str) -> str:
    from ..data.corpus import language_codes

    known = language_codes()
    if code.lower() not in known:
        raise argparse.ArgumentTypeError(f"unknown language code {code!r} (langdetect knows: {', '.join(known)})")
    return code.lower()


def _weight(text: str) -> str:
    name, sep, value = text.partition("=")
    if not sep or name.strip() not in TASK_TYPES:
        raise argparse.ArgumentTypeError(f"expected TASK_TYPE=WEIGHT with TASK_TYPE one of {', '.join(TASK_TYPES)}")
    float_in(0, 1000)(value)
    return text


@dataclass
class CorpusOptions:
    inputs: list[str] = option(help="JSON Lines / JSON-array files or folders", positional=True)
    out: str = option(help="output .jsonl ({'text': ...} per line)")
    text_fields: list[str] = option(["text"], help="field(s) holding the text, joined by newlines when several",
                                    flags=["--text-field"], metavar="FIELD")  # fmt: skip
    min_words: int = option(5, help="drop texts with fewer words (default 5)", type=int_in(0, 100_000))
    languages: list[str] = option([], help="keep only these languages (langdetect codes, e.g. en); repeatable",
                                  flags=["--lang"], metavar="CODE", type=_language)  # fmt: skip
    near_dup_threshold: float = option(0.8, help="MinHash Jaccard threshold (default 0.8)",
                                       type=float_in(0, 1, lo_open=True))  # fmt: skip
    no_near_dup: bool = option(False, help="exact deduplication only")
    seed: int = option(0, help="seed", type=int_in(0, 2**32 - 1))
    report: str | None = option(None, help="report JSON (default: OUT with .report.json)")


@dataclass
class SftOptions:
    inputs: list[str] = option(help="files or folders in any supported format", positional=True)
    out: str = option(help="output folder: train.jsonl, validation.jsonl, report.json")
    format: str = option("auto", help="input format (default: detected)", choices=FORMATS)
    val_fraction: float = option(0.02, help="validation share per task (default 0.02)",
                                 type=float_in(0, 1, hi_open=True))  # fmt: skip
    weight: list[str] = option([], help="mixing weight per task type for the training side, e.g. generation=0.5",
                               metavar="TYPE=W", type=_weight)  # fmt: skip
    seed: int = option(0, help="seed", type=int_in(0, 2**32 - 1))
    group_by: str = option("content", help="keep rows sharing content (default) or only identical prompts on one "
                           "side of the split", choices=("content", "prompt"))  # fmt: skip
    strict: bool = option(False, help="fail on the first bad row instead of reporting it")


@dataclass
class DecontamOptions:
    train: str = option(help="training data: chat/text JSONL (rows kept as they are) or any record format",
                        positional=True)  # fmt: skip
    evals: list[str] = option(help="an evaluation set (file or folder, any format); repeatable; NAME defaults to "
                              "the stem", flags=["--eval"], metavar="[NAME=]PATH")  # fmt: skip
    out: str = option(help="kept training rows (.jsonl)")
    removed: str | None = option(None, help="also write the removed rows with their reason (.jsonl)")
    report: str | None = option(None, help="report JSON (default: OUT with .report.json)")
    n: int = option(DEFAULT_N, help=f"words a shared content run needs (default {DEFAULT_N})", flags=["-n"],
                    type=int_in(1, 1000))  # fmt: skip
    min_item_words: int = option(DEFAULT_MIN_ITEM, help="a whole content run (title, query) of at least this many "
                                 f"words found in a training row is an overlap (default {DEFAULT_MIN_ITEM})",
                                 type=int_in(1, 1000))  # fmt: skip
    template_words: int = option(DEFAULT_K, help=f"length of the word runs that tell template from content "
                                 f"(default {DEFAULT_K})", type=int_in(1, 100))  # fmt: skip
    template_eval_df: int = option(DEFAULT_TEMPLATE_DF, help="a run in this many prompts of one evaluation task is "
                                   f"template (default {DEFAULT_TEMPLATE_DF})", type=int_in(2, 10**9))  # fmt: skip
    template_train_df: int = option(DEFAULT_TEMPLATE_TRAIN_DF, help="a run in this many distinct training prompts "
                                    f"is template (default {DEFAULT_TEMPLATE_TRAIN_DF})",
                                    type=int_in(2, 10**9))  # fmt: skip
    remove_template_overlap: bool = option(False, help="also remove rows that share only instruction text")
    format: str = option("auto", help="format of TRAIN when it is not chat/text JSONL", choices=FORMATS)


def register(sub) -> None:
    p = sub.add_parser("data", help="build training data: corpus (CPT), sft (chat JSONL), decontam",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="BUILDER")
    for name, cls, fn, help_ in (
        ("corpus", CorpusOptions, run_corpus, "clean + deduplicate product text into a continued-pretraining corpus"),
        ("sft", SftOptions, run_sft, "ShopBench records (any format) -> axolotl chat JSONL, stratified split"),
        ("decontam", DecontamOptions, run_decontam, "remove training rows that overlap evaluation sets; report"),
    ):
        add_command(dsub, name, cls, fn, help_)


def _report_path(out: str, given: str | None) -> Path:
    if given:
        return Path(given)
    out_p = Path(out)
    return out_p.with_name(out_p.name.removesuffix(".jsonl") + ".report.json")


def _print(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False), file=sys.stderr)


def run_corpus(opts: CorpusOptions) -> int:
    from ..data.corpus import build_corpus

    with Outputs(inputs=opts.inputs, out=opts.out, report=_report_path(opts.out, opts.report)) as out:
        rows, report = build_corpus(
            opts.inputs,
            text_fields=opts.text_fields,
            min_words=opts.min_words,
            languages=opts.languages or None,
            near_dup_threshold=None if opts.no_near_dup else opts.near_dup_threshold,
            seed=opts.seed,
        )
        if not rows:
            missing = any("no text field" in b for b in report.bad_rows)
            why = f" (no row has the field(s) --text-field {', '.join(opts.text_fields)})" if missing else ""
            raise DataError(", ".join(opts.inputs), "", None, f"the corpus keeps no text{why}: nothing written")
        out.write_jsonl("out", rows)
        rep = {"output": opts.out, **report.to_dict()}
        out.write_json("report", rep)
    _print(
        {k: v for k, v in rep.items() if k != "bad_row_examples"} | {"bad_row_examples": rep["bad_row_examples"][:5]}
    )
    return 0


def _load_all(paths: list[str], fmt: str, skip_invalid: bool) -> LoadResult:
    res = LoadResult()
    for path in paths:
        res.extend(load_records(path, fmt, skip_invalid))
    return res


def run_sft(opts: SftOptions) -> int:
    from ..data.sft import build_sft, parse_weights

    t0 = time.perf_counter()
    weights = parse_weights(opts.weight)
    folder = Path(opts.out)
    with Outputs(
        inputs=opts.inputs,
        options={"train": "--out", "validation": "--out", "report": "--out"},
        train=folder / "train.jsonl",
        validation=folder / "validation.jsonl",
        report=folder / "report.json",
    ) as out:
        res = _load_all(opts.inputs, opts.format, skip_invalid=not opts.strict)
        if not res.records:
            raise DataError(
                ", ".join(opts.inputs), "", None, f"no valid rows ({len(res.skipped)} bad): nothing written"
            )
        t_load = time.perf_counter() - t0
        train, val, report = build_sft(
            res.records, val_fraction=opts.val_fraction, weights=weights, seed=opts.seed, group_by=opts.group_by
        )
        if not train:
            raise UsageError("the training side keeps no rows (--weight 0 for every type present?): nothing written")
        out.write_jsonl("train", train)
        out.write_jsonl("validation", val)
        total = time.perf_counter() - t0
        rows_in = len(res.records) + len(res.skipped)
        rep = {
            "inputs": opts.inputs,
            "files": len(res.files),
            "rows_read": rows_in,
            "bad_rows": len(res.skipped),
            "bad_row_examples": [str(e) for e in res.skipped[:50]],
            "quirks": dict(res.quirks),
            **report,
            "seconds_load": round(t_load, 3),
            "seconds_total": round(total, 3),
            "rows_per_minute": round(rows_in / total * 60) if total else None,
        }
        out.write_json("report", rep)
    _print({k: v for k, v in rep.items() if k not in ("train_by_task", "validation_by_task", "bad_row_examples")})
    return 0


def _eval_sets(specs: list[str]) -> tuple[dict[str, list[Any]], dict[str, int], list[str]]:
    sets: dict[str, list[Any]] = {}
    bad: dict[str, int] = {}
    paths: list[str] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or Path(spec).exists():
            name, path = Path(spec).stem, spec
        if name in sets:
            raise UsageError(
                f"--eval {spec!r}: the name {name!r} is already used by another --eval; "
                "name each set (--eval NAME=PATH) so their reports stay apart"
            )
        rows, bad_rows = read_eval_prompts(path)
        if not rows:
            raise DataError(
                path, "", None, f"no evaluation prompts ({len(bad_rows)} bad rows): nothing to check against"
            )
        sets[name] = rows
        bad[name] = len(bad_rows)
        paths.append(path)
    return sets, bad, paths


def _task_of(item: Any) -> str:
    return getattr(item, "task_name", None) or (item.get("task_name") if isinstance(item, dict) else None) or "-"


def run_decontam(opts: DecontamOptions) -> int:
    if opts.min_item_words < opts.template_words:
        raise UsageError(
            f"--min-item-words ({opts.min_item_words}) must be at least --template-words ({opts.template_words})"
        )
    t0 = time.perf_counter()
    eval_paths = [s.partition("=")[2] if ("=" in s and not Path(s).exists()) else s for s in opts.evals]
    with Outputs(
        inputs=[opts.train, *eval_paths],
        out=opts.out,
        removed=opts.removed,
        report=_report_path(opts.out, opts.report),
    ) as out:
        train, bad, kind = read_train_rows(opts.train, opts.format)
        if not train:
            raise DataError(opts.train, "", None, f"no training rows ({len(bad)} bad): nothing to decontaminate")
        eval_sets, eval_bad, _ = _eval_sets(opts.evals)
        kept, removed, report = decontaminate(
            train,
            eval_sets,
            n=opts.n,
            k=opts.template_words,
            template_df=opts.template_eval_df,
            template_train_df=opts.template_train_df,
            min_item=opts.min_item_words,
            remove_template=opts.remove_template_overlap,
        )
        if not kept:
            print(f"warning: every one of the {len(train)} training rows overlaps an evaluation set", file=sys.stderr)
        out.write_jsonl("out", kept)
        if "removed" in out:
            out.write_jsonl(
                "removed",
                (
                    {"match": str(m), "shared": m.shared, "row": it.model_dump() if hasattr(it, "model_dump") else it}
                    for it, m in removed
                ),
            )
        by_train_task: dict[str, int] = {}
        for item, _ in removed:
            by_train_task[_task_of(item)] = by_train_task.get(_task_of(item), 0) + 1
        seconds = time.perf_counter() - t0
        rep = {
            "train_file": opts.train,
            "train_kind": kind,
            "output": opts.out,
            "bad_rows": len(bad),
            "bad_row_examples": bad[:50],
            "eval_bad_rows": eval_bad,
            **report,
            "removed_by_train_task": dict(sorted(by_train_task.items())),
            "seconds": round(seconds, 3),
            "rows_per_second": round(len(train) / seconds, 1) if seconds else None,
        }
        out.write_json("report", rep)
    _print({k: v for k, v in rep.items() if k not in ("examples", "bad_row_examples")})
    return 0
