"""``shop-eval score DATA PREDICTIONS... --out result.json [--per-example F]``

DATA is any loader format (ShopBench JSONL such as the kit's development set, an EC-Guide folder, seed alpaca
JSON, a Shopping MMLU ``data/`` folder or file).  PREDICTIONS is JSON Lines aligned with DATA line by line,
each ``{"response": "..."}``, or one or more lm-eval ``samples_*.jsonl`` files (``--log_samples``), or the word
``truth`` (each row's truth written as the official parser reads it: a self-check of data and metrics).

The result holds, for each protocol (``official``, ``flexible``, ``shoppingmmlu``): per task name, per task
type (absent types marked), per metric, per track, and both overall numbers — ``mean_of_tracks`` (the
all-around score) and ``mean_of_tasks`` (the kit's printed Overall Score) — each with n, the score, a standard
error and the parse-failure rate.  docs/scoring.md has the definitions and the schema.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from ..errors import DataError
from ..io import Outputs
from ..loaders import FORMATS, load_records
from ..prompts import format_answer
from ..scoring import DEFAULT_PROTOCOLS, PROTOCOLS, ScoreResult, label_sets, score_rows
from ..scoring.predictions import read_predictions
from .args import add_command, choice_list, option


@dataclass
class ScoreOptions:
    data: str = option(help="data file or folder (ShopBench JSONL, EC-Guide, alpaca, Shopping MMLU)", positional=True)
    predictions: list[str] = option(
        help="JSONL of {'response': ...} aligned with DATA, or lm-eval samples_*.jsonl; 'truth' scores each "
        "row's own truth (a self-check)",
        positional=True,
    )
    out: str = option(help="result JSON")
    per_example: str | None = option(None, help="also write one JSON line per row: extracted answers and scores")
    format: str = option("auto", help="data format (default: detected)", choices=FORMATS)
    skip_invalid: bool = option(False, help="skip (and report) bad data rows instead of failing")
    protocols: list[str] = option(
        list(DEFAULT_PROTOCOLS),
        help=f"comma-separated protocols (default: {','.join(DEFAULT_PROTOCOLS)})",
        flags=["--protocols", "--extractors"],
        type=choice_list(PROTOCOLS),
        repeat=False,
    )
    no_embeddings: bool = option(False, help="leave the sentence-transformer metrics unscored (faster)")


def register(sub) -> None:
    help_ = "score model responses under the official, flexible and shoppingmmlu protocols"
    add_command(sub, "score", ScoreOptions, run, help_, __doc__)


def run(opts: ScoreOptions) -> int:
    from rich.console import Console

    console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
    t0 = time.perf_counter()
    self_check = opts.predictions == ["truth"]
    inputs = [opts.data] + ([] if self_check else opts.predictions)
    with Outputs(inputs=inputs, out=opts.out, per_example=opts.per_example) as out:
        loaded = load_records(opts.data, opts.format, opts.skip_invalid)
        if not loaded.records:
            raise DataError(opts.data, "", None, f"no valid rows to score ({len(loaded.skipped)} skipped)")
        if loaded.skipped:
            console.print(f"[yellow]{len(loaded.skipped)} invalid data rows skipped[/]")
        records = loaded.records
        if self_check:
            idx, responses = list(range(len(records))), [format_answer(r) for r in records]
        else:
            idx, responses = read_predictions(opts.predictions, loaded)
        if len(idx) != len(records):
            console.print(f"scoring the {len(idx)} of {len(records)} data rows found in the lm-eval samples")
        t_load = time.perf_counter() - t0
        per_example: list[dict] | None = [] if opts.per_example else None
        result = score_rows(
            [records[i] for i in idx],
            responses,
            opts.protocols,
            labels=label_sets(records),
            embeddings=not opts.no_embeddings,
            progress=sys.stderr.isatty(),
            per_example=per_example,
        )
        scored_types = {records[i].task_type for i in idx}
        not_evaluated = sorted({r.task_type for r in records} - scored_types)
        result.info = {
            "data": {"path": str(opts.data), **loaded.report()},
            "not_evaluated_task_types": not_evaluated,
            "predictions": list(opts.predictions),
            "seconds": {"load": round(t_load, 3), "total": round(time.perf_counter() - t0, 3)},
        }
        out.write_json("out", result.to_json())
        if per_example is not None:
            for row, i in zip(per_example, idx, strict=True):
                row["row"] = i
            out.write_jsonl("per_example", per_example)
    print_table(result, console)
    return 0


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4f}"


def print_table(result: ScoreResult, console=None) -> None:
    """The terminal table: tasks, task types (absent ones marked), tracks and both overall numbers."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    names = list(result.protocols)
    first = result.protocols[names[0]]
    table = Table(title=f"ShopBench scores ({result.n} rows)")
    table.add_column("task / type / track")
    table.add_column("metric")
    table.add_column("n", justify="right")
    for p in names:
        table.add_column(p, justify="right")
        table.add_column(f"{p} fail%", justify="right")

    def add(label: str, metric: str, cells: list, style: str | None = None) -> None:
        row = []
        for c in cells:
            if c.absent:
                row += ["absent", ""]
            else:
                row += [f"{_fmt(c.score)} ± {_fmt(c.stderr)}", f"{100 * c.parse_failure_rate:.1f}"]
        table.add_row(label, metric, str(cells[0].n), *row, style=style)

    for name, t in first.tasks.items():
        add(name, ", ".join(t.metrics), [result.protocols[p].tasks[name] for p in names])
    table.add_section()
    for ttype, t in first.task_types.items():
        add(ttype, ", ".join(t.metrics), [result.protocols[p].task_types[ttype] for p in names], style="bold")
    table.add_section()
    for track in first.tracks:
        add(f"track {track}", "", [result.protocols[p].tracks[track] for p in names])
    add("all-around (mean of tracks)", "", [result.protocols[p].mean_of_tracks for p in names], style="bold")
    add("kit overall (mean of tasks)", "", [result.protocols[p].mean_of_tasks for p in names], style="bold")
    console.print(table)
    not_evaluated = result.info.get("not_evaluated_task_types") or []
    absent = [t for t, c in first.task_types.items() if c.absent and t not in not_evaluated]
    if absent:
        console.print(f"absent task types (no rows in the data, n = 0): {', '.join(absent)}")
    if not_evaluated:
        console.print(
            f"[yellow]not evaluated (in the data, but no predictions for their rows): {', '.join(not_evaluated)}[/]"
        )
    for m, why in result.unavailable_metrics.items():
        console.print(f"[yellow]unscored metric {m}: {why}[/]")
