"""``shop-eval leaderboard RESULTS... --out leaderboard.json [--md F] [--png F]``: lm-eval runs of several models
(``results_*.json`` files, or folders: the newest results file under each) → a leaderboard JSON, a Markdown
table (rows = models, columns = task types; tracks or skills side by side) and a bar chart.  The library:
:mod:`shop_eval.leaderboard`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..io import Outputs
from ..leaderboard import build_leaderboard, render_markdown, render_png
from .args import add_command, option


def _names(text: str) -> list[str]:
    import argparse

    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError("expected comma-separated, non-empty names")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"each model needs its own name, got {text!r}")
    return names


@dataclass
class LeaderboardOptions:
    results: list[str] = option(help="lm-eval results_*.json files (or folders: the newest results file in each)",
                                positional=True)  # fmt: skip
    out: str = option(help="leaderboard JSON")
    md: str | None = option(None, help="Markdown table")
    png: str | None = option(None, help="bar chart")
    names: list[str] | None = option(None, help="comma-separated display names, one per results file", type=_names,
                                     repeat=False)  # fmt: skip
    contamination: list[str] = option(
        [], help="a `shop-eval data decontam` report: for one model (MODEL=path) or for all (path); repeatable",
        metavar="[MODEL=]REPORT.json",
    )  # fmt: skip

    def __post_init__(self):
        if self.names is not None and len(self.names) != len(self.results):
            raise UsageError(f"--names gives {len(self.names)} names for {len(self.results)} results")


def register(sub) -> None:
    help_ = "lm-eval results of several models -> leaderboard JSON / Markdown / PNG"
    add_command(sub, "leaderboard", LeaderboardOptions, run, help_, __doc__)


def run(opts: LeaderboardOptions) -> int:
    cont: dict[str | None, str] = {}
    for c in opts.contamination:
        key, sep, path = c.partition("=")
        if sep and not Path(c).exists():
            cont[key] = path
        else:
            cont[None] = c
    inputs = [*opts.results, *cont.values()]
    with Outputs(inputs=inputs, out=opts.out, md=opts.md, png=opts.png) as out:
        board = build_leaderboard(opts.results, opts.names, cont)
        md = render_markdown(board)
        out.write_json("out", board.to_json())
        if "md" in out:
            out.write_text("md", md)
        if "png" in out:
            with out.open("png", "wb") as fh:
                render_png(board, fh)
    print(md)
    return 0
