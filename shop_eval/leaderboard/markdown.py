"""The leaderboard as Markdown: one function per table, :func:`render_markdown` puts them together."""

from __future__ import annotations

import math
import re
from typing import Any

from .. import task_types
from ..scoring import PROTOCOLS
from ..shoppingmmlu import SKILL_TITLES, skill_number
from .model import FAMILY_TITLES, LL_SUFFIX, Board


def _fmt(x: Any, se: Any = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    s = f"{x:.4f}"
    if se is not None and not (isinstance(se, float) and math.isnan(se)):
        s += f" ± {se:.3f}"
    return s


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _head(cells: list[str]) -> list[str]:
    return [_row(cells), _row(["---"] + ["---:"] * (len(cells) - 1))]


def table_task_types(board: Board, family: str, protocol: str) -> list[str]:
    """Rows = models; columns = task types (with their metrics), both overall numbers, parse failures."""
    types = board.types(family)
    lines = [f"## {protocol} — {FAMILY_TITLES.get(family, family)}", ""]
    lines += _head(
        ["model", *[f"{task_types.get(t).label} ({board.metric_label(family, t)})" for t in types],
         "all-around (mean of tracks)", "kit overall (mean of tasks)", "parse failures"]
    )  # fmt: skip
    for m in board.models:
        fs = m.scores.get(family)
        if fs is None:
            continue
        cells = [f"`{m.name}`"]
        for t in types:
            score, se, absent = fs.type_score(protocol, t)
            cells.append("absent" if absent else _fmt(score, se))
        res = fs.protocols.get(protocol) if fs.source == "samples" else None
        if res is not None:
            cells += [_fmt(res.mean_of_tracks.score, res.mean_of_tracks.stderr),
                      _fmt(res.mean_of_tasks.score, res.mean_of_tasks.stderr),
                      f"{100 * res.mean_of_tasks.parse_failure_rate:.1f}%"]  # fmt: skip
        else:
            cells += ["—", "—", "—"]
        lines.append(_row(cells))
    return [*lines, ""]


def table_tracks(board: Board, family: str, protocol: str) -> list[str]:
    """Rows = models; columns = tracks side by side — for Shopping MMLU its four skills, as the authors'
    leaderboard shows them (a skill the data lacks is marked absent)."""
    res_of = {
        m.name: m.scores[family].protocols.get(protocol)
        for m in board.models
        if family in m.scores and m.scores[family].source == "samples"
    }
    found = sorted({t for r in res_of.values() if r for t in r.tracks})
    if not found:
        return []
    if family.startswith("shopmmlu"):
        by_number = {n: [t for t in found if skill_number(t) == n] for n in SKILL_TITLES}
        columns = [
            (f"skill {n}: {title}", by_number[n][0] if by_number[n] else None) for n, title in SKILL_TITLES.items()
        ]
        columns += [(t, t) for t in found if skill_number(t) is None]
        what = "skills"
    else:
        columns = [(re.sub(r"^amazon-kdd-cup-24-", "", t), t) for t in found]
        what = "tracks"
    lines = [f"### {what} ({protocol}) — {FAMILY_TITLES.get(family, family)}", ""]
    lines += _head(["model", *[label for label, _ in columns]])
    for name, r in res_of.items():
        if r is None:
            continue
        cells = [f"`{name}`"]
        for _, track in columns:
            cell = r.tracks.get(track) if track else None
            cells.append("absent" if cell is None else _fmt(cell.score, cell.stderr))
        lines.append(_row(cells))
    return [*lines, ""]


def table_generation_metrics(board: Board, family: str) -> list[str]:
    """Generation scored per metric (official)."""
    per_model = {}
    for m in board.models:
        fs = m.scores.get(family)
        res = fs.protocols.get("official") if fs and fs.source == "samples" else None
        cell = res.task_types.get("generation") if res else None
        if cell is not None and cell.by_metric:
            per_model[m.name] = cell.by_metric
    metrics = sorted({k for bm in per_model.values() for k in bm})
    if not metrics:
        return []
    lines = [f"### generation by metric (official) — {FAMILY_TITLES.get(family, family)}", ""]
    lines += _head(["model", *metrics])
    for name, bm in per_model.items():
        lines.append(_row([f"`{name}`", *[_fmt(getattr(bm.get(k), "score", None), getattr(bm.get(k), "stderr", None))
                                            for k in metrics]]))  # fmt: skip
    return [*lines, ""]


def table_loglikelihood(board: Board, family: str) -> list[str]:
    """Multiple choice by log-likelihood: accuracy per model (and per track/skill)."""
    rows = []
    for m in board.models:
        fs = m.scores.get(family)
        if fs is None:
            continue
        score, se, absent = fs.type_score("official", "multiple-choice")
        rows.append(_row([f"`{m.name}`", "absent" if absent else _fmt(score, se)]))
    if not rows:
        return []
    base = family.removesuffix(LL_SUFFIX)
    return [f"## multiple choice by log-likelihood — {FAMILY_TITLES.get(base, base)}", "",
            *_head(["model", "accuracy"]), *rows, ""]  # fmt: skip


def table_runs(board: Board) -> list[str]:
    """What was run: model, adapter, versions, hashes, chat template, contamination."""
    lines = ["## runs", ""]
    lines += _head(["model", "adapter", "lm-eval", "git", "date", "config hash", "data hash", "chat template",
                    "lm-eval agreement", "contamination"])  # fmt: skip
    for m in board.models:
        cont = m.contamination or board.contamination
        frac = cont and cont.get("max_eval_fraction_found")
        lines.append(_row([
            f"`{m.name}`",
            f"`{m.adapter}`" if m.adapter else "—",
            str(m.lm_eval_version or "—"),
            (m.git_hash or "—")[:10],
            str(m.date or "—"),
            m.config_hash,
            str(m.data_hash or "—"),
            "yes" if m.chat_template else "no",
            "ok" if m.agreement.get("ok") else "**differs**",
            "—" if cont is None else f"{100 * (frac or 0):.1f}% of eval rows found in training data",
        ]))  # fmt: skip
    return [*lines, ""]


def render_markdown(board: Board) -> str:
    lines = ["# Leaderboard", ""]
    lines.append(
        "Scores ± standard error, in [0, 1] (the authors' NDCG can exceed 1 on repeated indices). Protocols: `official` (the KDD Cup kit's parsers and metrics), `flexible` "
        "(a robust extractor on the same responses), `shoppingmmlu` (the Shopping MMLU authors' scorer). A task "
        "type's score is the mean over its task names; *all-around* is the mean of the track (skill) scores, *kit "
        "overall* the mean over all task names (the kit's printed Overall Score); *absent*: no rows of that type in "
        "the data. See docs/evaluation.md."
    )
    lines.append("")
    for family in board.families():
        if family.endswith(LL_SUFFIX):
            lines += table_loglikelihood(board, family)
            continue
        for protocol in PROTOCOLS:
            lines += table_task_types(board, family, protocol)
            lines += table_tracks(board, family, protocol)
        lines += table_generation_metrics(board, family)
    lines += table_runs(board)
    warnings = {
        "same_config": "the models were not evaluated with the same task configs",
        "same_data": "the models were not evaluated on the same data",
        "same_task_types": "the models were not scored on the same task types (see `absent`)",
        "lm_eval_agreement": "for some model, lm-eval's numbers and its samples disagree (see `lm_eval_agreement`)",
    }
    for key, text in warnings.items():
        if not board.comparable.get(key, True):
            lines += [f"**Warning:** {text}.", ""]
    return "\n".join(lines)
