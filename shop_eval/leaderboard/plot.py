"""The leaderboard as a bar chart."""

from __future__ import annotations

import math
import textwrap

from .. import task_types
from ..errors import UsageError
from ..scoring import PROTOCOLS
from .model import FAMILY_TITLES, LL_SUFFIX, Board


def render_png(board: Board, out) -> None:
    """Grouped bars, one panel per protocol: one group per task type (+ both overall numbers), one bar per
    model, standard errors as whiskers, the value on each bar; absent types are left empty and labelled.
    ``out`` is a binary file object."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    family = next((f for f in board.families() if not f.endswith(LL_SUFFIX)), None)
    if family is None:
        raise UsageError("no generative shop task in these runs: nothing to plot")
    types = board.types(family)
    cols = [*types, "all-around", "kit overall"]
    labels = [
        task_types.get(t).label + "\n" + "\n".join(textwrap.wrap(f"({board.metric_label(family, t)})", 18))
        for t in types
    ] + ["all-around\n(mean of tracks)", "kit overall\n(mean of tasks)"]
    models = [m for m in board.models if family in m.scores]
    fig, axes = plt.subplots(len(PROTOCOLS), 1, figsize=(max(8, 1.6 * len(cols) + 0.5 * len(models)),
                                                          3.8 * len(PROTOCOLS)))  # fmt: skip
    cmap = plt.get_cmap("tab10")
    width = 0.8 / max(1, len(models))
    for ax, protocol in zip(axes, PROTOCOLS, strict=True):
        for j, m in enumerate(models):
            fs = m.scores[family]
            res = fs.protocols.get(protocol) if fs.source == "samples" else None
            vals, errs = [], []
            for c in cols:
                if c in ("all-around", "kit overall"):
                    cell = None if res is None else (res.mean_of_tracks if c == "all-around" else res.mean_of_tasks)
                    v, se = (None, None) if cell is None else (cell.score, cell.stderr)
                else:
                    v, se, _ = fs.type_score(protocol, c)
                vals.append(float("nan") if v is None else v)
                errs.append(0.0 if se is None else se)
            xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(cols))]
            bars = ax.bar(xs, vals, width * 0.95, yerr=errs, capsize=3, color=cmap(j % 10), label=m.name)
            for b, v in zip(bars, vals, strict=True):
                if not math.isnan(v):
                    ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), xytext=(0, 3),
                                textcoords="offset points", ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(labels, fontsize=9)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("score")
        ax.axvline(len(types) - 0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{protocol}")
        ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    ncol = min(len(models), 6) or 1
    rows = math.ceil(len(models) / ncol)
    top = 1 - (0.035 + 0.025 * rows) * 8.4 / fig.get_figheight()
    fig.suptitle(f"{FAMILY_TITLES.get(family, family)}: scores by task type (± standard error)", fontsize=12, y=0.995)
    fig.legend(handles, names, loc="upper center", ncol=ncol, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.965))
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
