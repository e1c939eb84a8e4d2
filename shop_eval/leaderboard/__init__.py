"""The leaderboard: collect lm-eval runs → score them → render.

* :func:`collect_run` reads one lm-eval run (``results_*.json``; a folder stands for the newest one under it)
  and re-scores its ``samples_*.jsonl`` files with the scoring core (:func:`shop_eval.scoring.score_rows`, the
  code of ``shop-eval score``), family by family: ``shop`` (the kit's decoding), ``shopchat`` (chat budget),
  ``shopmmlu`` (Shopping MMLU), and their log-likelihood multiple-choice variants.  lm-eval's own numbers are
  kept beside them and checked task by task.  Without samples only lm-eval's per-task numbers exist.
* :func:`build_leaderboard` collects several runs into a :class:`Board` (JSON: ``shop-eval/leaderboard/v2``,
  docs/evaluation.md), and checks that they are comparable (same task configs, data and task types).
* :func:`render_markdown` / :func:`render_png` draw it: one function per table.
"""

from __future__ import annotations

from .collect import build_leaderboard, collect_run, family_of, find_results, read_contamination, samples_files
from .markdown import render_markdown
from .model import FAMILIES, FAMILY_TITLES, LL_SUFFIX, SCHEMA, Board, FamilyScores, ModelRun, TaskRun
from .plot import render_png

__all__ = [
    "FAMILIES",
    "FAMILY_TITLES",
    "LL_SUFFIX",
    "SCHEMA",
    "Board",
    "FamilyScores",
    "ModelRun",
    "TaskRun",
    "build_leaderboard",
    "collect_run",
    "family_of",
    "find_results",
    "read_contamination",
    "render_markdown",
    "render_png",
    "samples_files",
]
