"""``shop-eval leaderboard RESULTS... --out leaderboard.json --md leaderboard.md --png leaderboard.png``

Turns lm-eval results files (``results_*.json`` from ``lm_eval --include_path lm_eval_tasks --tasks
'shop_*' --log_samples``; a folder stands for the newest results file under it) of several models into a
leaderboard: a JSON with the schema ``shop-eval/leaderboard/v1`` (docs/evaluation.md), a Markdown table
shaped like the seed project's comparison (rows = models, columns = task types with their metric) and a
bar chart.

Scores come from the run's ``samples_*.jsonl`` files (found next to the results file), re-scored with
:func:`shop_eval.scorer.score_responses` — the same code as ``shop-eval score`` — which gives per task name,
per task type, per track and overall scores with n, standard errors and parse-failure rates, for both
extractors.  The numbers lm-eval reported are kept beside them, and their agreement is checked.  Without
samples, only lm-eval's per-task-type numbers are available (no stderr, tracks or overall).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

from .io import atomic_write, read_text, write_json
from .lm_eval_bridge import doc_to_record
from .records import SHORT_NAMES, TASK_TYPES, DataError

log = logging.getLogger(__name__)

SCHEMA = "shop-eval/leaderboard/v1"
#: lm-eval task-name prefixes: the kit's decoding, and the chat-budget variants
FAMILIES = {"shop": "shop_", "shopchat": "shopchat_"}
TYPE_FOR_SHORT = {v: k for k, v in SHORT_NAMES.items()}
TYPE_LABELS = {
    "multiple-choice": "multiple choice",
    "retrieval": "retrieval",
    "ranking": "ranking",
    "named_entity_recognition": "NER",
    "generation": "generation",
    "classification": "classification",
}
AGREEMENT_TOLERANCE = 1e-6


# --------------------------------------------------------------------------- reading lm-eval output


def find_results(path: str | Path) -> Path:
    """A results file, or the newest ``results_*.json`` under a folder."""
    p = Path(path)
    if p.is_dir():
        found = sorted(p.rglob("results_*.json"), key=lambda f: (f.stat().st_mtime, f.name))
        if not found:
            raise DataError(str(p), "", None, "no lm-eval results_*.json under this folder")
        return found[-1]
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder")
    return p


def _stamp(results_path: Path) -> str:
    m = re.fullmatch(r"results_(.+)\.json", results_path.name)
    return m.group(1) if m else ""


def samples_files(results_path: Path, task: str) -> list[Path]:
    """The samples file lm-eval wrote for ``task`` in the same run (same timestamp)."""
    stamp = _stamp(results_path)
    exact = results_path.parent / f"samples_{task}_{stamp}.jsonl"
    return [exact] if exact.exists() else []


def _task_type_of(task: str) -> tuple[str, str] | None:
    """lm-eval task name -> (family, task type), e.g. shopchat_ner -> (shopchat, named_entity_recognition)."""
    for fam, prefix in sorted(FAMILIES.items(), key=lambda kv: -len(kv[1])):
        if task.startswith(prefix):
            short = task[len(prefix) :]
            if short in TYPE_FOR_SHORT:
                return fam, TYPE_FOR_SHORT[short]
    return None


_ADDR = re.compile(r" at 0x[0-9a-f]+")


def config_hash(configs: dict[str, Any]) -> str:
    """sha256 of the shop task configs (model-specific metadata and memory addresses left out), so two
    runs with the same hash used the same prompts, decoding, filters and metrics."""
    clean = {}
    for name, cfg in sorted(configs.items()):
        if not (name.startswith("shop") and isinstance(cfg, dict)):
            continue
        c = {k: v for k, v in cfg.items() if k != "metadata"}
        clean[name] = _ADDR.sub("", json.dumps(c, sort_keys=True, default=str))
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]


def _read_samples(paths: list[Path], labels: dict[str, list[str]] | None = None) -> tuple[list, list[str]]:
    """One (record, response) per evaluated doc: a doc appears once per filter pipeline in its samples
    file (same raw response), so each (file, doc_id) is read once; duplicate prompts in the data stay
    separate rows, as lm-eval scored them.  The response is read as ``shop-eval score`` reads it."""
    from .scorer import _response_from_sample

    records, responses = [], []
    for path in paths:
        seen: set = set()
        for n, line in enumerate(read_text(path).split("\n"), 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
                doc = sample["doc"]
                doc_id = sample["doc_id"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(str(path), f"line {n}", "doc", f"not an lm-eval shop_* sample ({exc})") from None
            if doc_id in seen:
                continue
            seen.add(doc_id)
            if labels is not None and doc.get("labels"):  # the label set of the whole data file
                labels.setdefault(doc.get("task_name", ""), list(doc["labels"]))
            try:
                records.append(doc_to_record(doc))
            except Exception as exc:  # noqa: BLE001 - report any malformed doc with its place
                raise DataError(str(path), f"line {n}", "doc", f"cannot rebuild the record: {exc}") from None
            responses.append(_response_from_sample(sample, str(path), f"line {n}"))
    return records, responses


def _data_hash(records) -> str:
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: (r.task_name, r.input_field)):
        h.update(json.dumps([r.task_name, r.input_field, r.output_field], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def _score_samples(paths: list[Path], extractors: tuple[str, ...]) -> tuple[dict, list]:
    from .scorer import score_responses

    labels: dict[str, list[str]] = {}
    records, responses = _read_samples(paths, labels)
    return score_responses(records, responses, extractors, labels=labels or None), records


def _lm_eval_numbers(results: dict, task: str) -> dict[str, dict[str, float]]:
    """``{filter: {metric: value}}`` for one lm-eval task (stderr entries left out, NaN as None)."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for key, v in results.get("results", {}).get(task, {}).items():
        if "," not in key or "_stderr" in key:
            continue
        metric, filt = key.split(",", 1)
        out[filt][metric] = None if (isinstance(v, float) and math.isnan(v)) else v
    return dict(out)


def _parse_model_args(args: Any) -> dict[str, Any]:
    if isinstance(args, dict):
        return args
    if isinstance(args, str):
        return dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)
    return {}


def _default_name(model_args: dict[str, Any], results: dict) -> str:
    base = str(model_args.get("pretrained") or results.get("model_name") or "model")
    parts = [Path(base.rstrip("/")).name or base]
    adapter = model_args.get("peft") or model_args.get("lora_local_path")
    if adapter:
        parts.append(Path(str(adapter).rstrip("/")).name)
    if results.get("chat_template"):
        parts.append("chat")
    return "+".join(parts)


def model_entry(results_path: str | Path, name: str | None = None) -> dict[str, Any]:
    """One leaderboard row from one lm-eval run."""
    path = find_results(results_path)
    try:
        results = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"line {exc.lineno}", None, f"invalid JSON: {exc.msg}") from None
    if not isinstance(results, dict) or "results" not in results:
        raise DataError(str(path), "", "results", "not an lm-eval results file")
    cfg = results.get("config", {}) or {}
    margs = _parse_model_args(cfg.get("model_args"))
    date = results.get("date")
    entry: dict[str, Any] = {
        "name": name or _default_name(margs, results),
        "backend": cfg.get("model"),
        "model_args": margs,
        "pretrained": margs.get("pretrained"),
        "adapter": margs.get("peft") or margs.get("lora_local_path"),
        "lm_eval_version": results.get("lm_eval_version"),
        "git_hash": results.get("git_hash"),
        "date": (
            dt.datetime.fromtimestamp(float(date), dt.UTC).isoformat(timespec="seconds")
            if isinstance(date, int | float)
            else date
        ),
        "config_hash": config_hash(results.get("configs", {})),
        "chat_template": bool(results.get("chat_template")),
        "system_instruction": results.get("system_instruction"),
        "limit": cfg.get("limit"),
        "results_file": str(path),
        "tasks": {},
        "scores": {},
        "contamination": None,
    }
    tasks = sorted(t for t in results.get("results", {}) if _task_type_of(t) or t == "shop_multiple_choice_ll")
    if not tasks:
        raise DataError(str(path), "", "results", "no shop_* tasks in this results file")
    n_samples = results.get("n-samples", {})
    by_family: dict[str, list[str]] = defaultdict(list)
    for t in tasks:
        fam_type = _task_type_of(t)
        entry["tasks"][t] = {
            "task_type": fam_type[1] if fam_type else "multiple-choice",
            "n": (n_samples.get(t) or {}).get("effective"),
            "lm_eval": _lm_eval_numbers(results, t),
            "samples": [str(p) for p in samples_files(path, t)],
        }
        if fam_type:
            by_family[fam_type[0]].append(t)

    agreement: list[float] = []
    data_hashes = set()
    for fam, fam_tasks in sorted(by_family.items()):
        paths = [p for t in fam_tasks for p in samples_files(path, t)]
        if paths and all(entry["tasks"][t]["samples"] for t in fam_tasks):
            scored, recs = _score_samples(paths, ("official", "flexible"))
            data_hashes.add(_data_hash(recs))
            fam_scores = {ext: _trim(res) for ext, res in scored["extractors"].items()}
            if scored.get("unavailable_metrics"):
                fam_scores["unavailable_metrics"] = scored["unavailable_metrics"]
            for t in fam_tasks:
                ttype = entry["tasks"][t]["task_type"]
                for ext in ("official", "flexible"):
                    lm = entry["tasks"][t]["lm_eval"].get(ext, {}).get("shop_score")
                    ours = scored["extractors"][ext]["task_types"].get(ttype, {}).get("score")
                    if lm is not None and ours is not None:
                        agreement.append(abs(lm - ours))
            fam_scores["source"] = "samples"
        else:
            fam_scores = _from_lm_eval(entry, fam_tasks)
        entry["scores"][fam] = fam_scores
    if "shop_multiple_choice_ll" in tasks:
        paths = samples_files(path, "shop_multiple_choice_ll")
        if paths:
            scored, recs = _score_samples(paths, ("official",))
            ll = _trim(scored["extractors"]["official"])
            entry["scores"]["mc_loglikelihood"] = {**ll["task_types"].get("multiple-choice", {}), "source": "samples"}
            lm = entry["tasks"]["shop_multiple_choice_ll"]["lm_eval"].get("none", {}).get("shop_score")
            if lm is not None and entry["scores"]["mc_loglikelihood"].get("score") is not None:
                agreement.append(abs(lm - entry["scores"]["mc_loglikelihood"]["score"]))
        else:
            lm = entry["tasks"]["shop_multiple_choice_ll"]["lm_eval"].get("none", {})
            entry["scores"]["mc_loglikelihood"] = {
                "score": lm.get("shop_score"),
                "stderr": None,
                "n": entry["tasks"]["shop_multiple_choice_ll"]["n"],
                "source": "lm-eval",
            }
    entry["data_hash"] = next(iter(data_hashes)) if len(data_hashes) == 1 else (sorted(data_hashes) or None)
    entry["lm_eval_agreement"] = {
        "checked": len(agreement),
        "max_abs_diff": max(agreement) if agreement else None,
        "ok": all(d <= AGREEMENT_TOLERANCE for d in agreement),
    }
    if not entry["lm_eval_agreement"]["ok"]:
        log.warning("%s: lm-eval's numbers differ from shop-eval score's by up to %g", path, max(agreement))
    return entry


def _trim(res: dict) -> dict:
    """The scorer's per-extractor result without timing."""
    return {k: v for k, v in res.items() if k != "seconds"}


def _from_lm_eval(entry: dict, fam_tasks: list[str]) -> dict:
    out: dict[str, Any] = {"source": "lm-eval"}
    for ext in ("official", "flexible"):
        types = {}
        for t in fam_tasks:
            nums = entry["tasks"][t]["lm_eval"].get(ext, {})
            types[entry["tasks"][t]["task_type"]] = {
                "n": entry["tasks"][t]["n"],
                "score": nums.get("shop_score"),
                "stderr": None,
                "parse_failure_rate": nums.get("parse_failure"),
            }
        out[ext] = {"overall": None, "tracks": None, "task_types": types, "tasks": None}
    return out


# --------------------------------------------------------------------------- building


def build_leaderboard(
    results: list[str | Path],
    names: list[str] | None = None,
    contamination: dict[str | None, str | Path] | None = None,
) -> dict[str, Any]:
    if names and len(names) != len(results):
        raise ValueError(f"{len(names)} names for {len(results)} results files")
    models = []
    seen: dict[str, int] = defaultdict(int)
    for i, r in enumerate(results):
        e = model_entry(r, names[i] if names else None)
        seen[e["name"]] += 1
        if seen[e["name"]] > 1:
            e["name"] = f"{e['name']}#{seen[e['name']]}"
        models.append(e)
    board: dict[str, Any] = {
        "schema": SCHEMA,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "models": models,
        "contamination": None,
    }
    for key, cpath in (contamination or {}).items():
        report = _read_contamination(cpath)
        if key is None:
            board["contamination"] = report
            continue
        match = [m for m in models if m["name"] == key]
        if not match:
            raise ValueError(
                f"--contamination {key}=...: no model named {key!r} (names: {[m['name'] for m in models]})"
            )
        match[0]["contamination"] = report
    hashes = {m["config_hash"] for m in models}
    data = {json.dumps(m.get("data_hash")) for m in models}
    board["comparable"] = {"same_config": len(hashes) == 1, "same_data": len(data) == 1}
    if len(hashes) > 1 or len(data) > 1:
        log.warning("models were evaluated with different task configs or data: compare with care")
    return board


def _read_contamination(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        report = json.loads(read_text(p))
    except json.JSONDecodeError as exc:
        raise DataError(str(p), f"line {exc.lineno}", None, f"invalid JSON: {exc.msg}") from None
    if not isinstance(report, dict):
        raise DataError(str(p), "", None, "expected a JSON object (a `shop-eval data decontam` report)")
    fractions = {
        name: s.get("eval_fraction_found") for name, s in (report.get("eval_sets") or {}).items() if isinstance(s, dict)
    }
    return {
        "path": str(p),
        "max_eval_fraction_found": max((f for f in fractions.values() if f is not None), default=None),
        "eval_fraction_found": fractions,
        "report": report,
    }


# --------------------------------------------------------------------------- Markdown


def _fmt(x: Any, se: Any = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    s = f"{x:.4f}"
    if se is not None and not (isinstance(se, float) and math.isnan(se)):
        s += f" ± {se:.3f}"
    return s


def _types_present(board: dict, family: str) -> list[str]:
    present = set()
    for m in board["models"]:
        for ext in ("official", "flexible"):
            present |= set(((m["scores"].get(family) or {}).get(ext) or {}).get("task_types") or {})
    return [t for t in TASK_TYPES if t in present]


def _metric_label(board: dict, family: str, ttype: str) -> str:
    metrics: set[str] = set()
    for m in board["models"]:
        entry = (((m["scores"].get(family) or {}).get("official") or {}).get("task_types") or {}).get(ttype) or {}
        metrics |= set(entry.get("metrics") or [])
    if not metrics:
        from .records import DEFAULT_METRIC

        metrics = {DEFAULT_METRIC[ttype]} if ttype != "generation" else {"per-row metric"}
    return ", ".join(sorted(metrics))


def render_markdown(board: dict) -> str:
    lines = ["# ShopBench leaderboard", ""]
    lines.append(
        "Scores in [0, 1] ± standard error. `official`: the protocol's extraction on the kit's decoding "
        "(system text, greedy, 1 new token for multiple choice, 100 otherwise); `flexible`: the robust "
        "extractor on the same responses. Task-type scores are the mean over their task names; overall is "
        "the mean over tracks. See docs/evaluation.md."
    )
    lines.append("")
    families = [f for f in FAMILIES if any(f in m["scores"] for m in board["models"])]
    for family in families:
        types = _types_present(board, family)
        title = "kit decoding (`shop_*`)" if family == "shop" else "chat budget, 512 new tokens (`shopchat_*`)"
        for ext in ("official", "flexible"):
            lines += [f"## {ext} extraction — {title}", ""]
            head = ["model", *[f"{TYPE_LABELS[t]} ({_metric_label(board, family, t)})" for t in types]]
            head += ["overall", "parse failures"]
            lines.append("| " + " | ".join(head) + " |")
            lines.append("| " + " | ".join(["---"] + ["---:"] * (len(head) - 1)) + " |")
            for m in board["models"]:
                res = (m["scores"].get(family) or {}).get(ext) or {}
                tt = res.get("task_types") or {}
                cells = [f"`{m['name']}`"]
                cells += [_fmt((tt.get(t) or {}).get("score"), (tt.get(t) or {}).get("stderr")) for t in types]
                overall = res.get("overall") or {}
                cells.append(_fmt(overall.get("score"), overall.get("stderr")))
                rate = overall.get("parse_failure_rate")
                if rate is None and tt:
                    rates = [
                        v.get("parse_failure_rate") for v in tt.values() if v.get("parse_failure_rate") is not None
                    ]
                    ns = [v.get("n") or 0 for v in tt.values() if v.get("parse_failure_rate") is not None]
                    rate = sum(r * n for r, n in zip(rates, ns, strict=True)) / sum(ns) if sum(ns) else None
                cells.append("—" if rate is None else f"{100 * rate:.1f}%")
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        gen = [m for m in board["models"] if ((m["scores"].get(family) or {}).get("official") or {}).get("task_types")]
        by_metric = sorted(
            {
                k
                for m in gen
                for k in (
                    ((m["scores"][family]["official"]["task_types"].get("generation") or {}).get("by_metric")) or {}
                )
            }
        )
        if by_metric:
            lines += [f"### generation by metric (official) — {title}", ""]
            lines.append("| model | " + " | ".join(by_metric) + " |")
            lines.append("| --- | " + " | ".join(["---:"] * len(by_metric)) + " |")
            for m in gen:
                bm = m["scores"][family]["official"]["task_types"].get("generation", {}).get("by_metric") or {}
                cells = [_fmt((bm.get(k) or {}).get("score"), (bm.get(k) or {}).get("stderr")) for k in by_metric]
                lines.append(f"| `{m['name']}` | " + " | ".join(cells) + " |")
            lines.append("")
        tracks = sorted(
            {
                t
                for m in board["models"]
                for t in (((m["scores"].get(family) or {}).get("official") or {}).get("tracks") or {})
            }
        )
        if tracks:
            lines += [f"### tracks (official) — {title}", ""]
            short = [re.sub(r"^amazon-kdd-cup-24-", "", t) for t in tracks]
            lines.append("| model | " + " | ".join(short) + " |")
            lines.append("| --- | " + " | ".join(["---:"] * len(tracks)) + " |")
            for m in board["models"]:
                tr = ((m["scores"].get(family) or {}).get("official") or {}).get("tracks") or {}
                cells = [_fmt((tr.get(t) or {}).get("score"), (tr.get(t) or {}).get("stderr")) for t in tracks]
                lines.append(f"| `{m['name']}` | " + " | ".join(cells) + " |")
            lines.append("")
    if any("mc_loglikelihood" in m["scores"] for m in board["models"]):
        lines += ["## multiple choice by log-likelihood (`shop_multiple_choice_ll`)", ""]
        lines += ["| model | accuracy |", "| --- | ---: |"]
        for m in board["models"]:
            ll = m["scores"].get("mc_loglikelihood") or {}
            lines.append(f"| `{m['name']}` | {_fmt(ll.get('score'), ll.get('stderr'))} |")
        lines.append("")
    lines += ["## runs", ""]
    lines.append("| model | adapter | lm-eval | git | date | config hash | data hash | chat template | contamination |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in board["models"]:
        cont = m.get("contamination") or board.get("contamination")
        frac = cont and cont.get("max_eval_fraction_found")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"`{m['name']}`",
                    f"`{m['adapter']}`" if m.get("adapter") else "—",
                    str(m.get("lm_eval_version") or "—"),
                    (m.get("git_hash") or "—")[:10],
                    str(m.get("date") or "—"),
                    m["config_hash"],
                    str(m.get("data_hash") or "—"),
                    "yes" if m.get("chat_template") else "no",
                    "—" if cont is None else f"{100 * (frac or 0):.1f}% of eval rows found in training data",
                ]
            )
            + " |"
        )
    lines.append("")
    if not board.get("comparable", {}).get("same_config", True) or not board.get("comparable", {}).get(
        "same_data", True
    ):
        lines += ["**Warning:** the models were not evaluated with the same task configs and data.", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- PNG


def render_png(board: dict, path: str | Path) -> None:
    """Grouped bars: one group per task type (+ overall), one bar per model, official and flexible side by
    side in two panels, standard errors as whiskers and the value on each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    family = "shop" if any("shop" in m["scores"] for m in board["models"]) else "shopchat"
    types = _types_present(board, family)
    cols = [*types, "overall"]
    labels = [
        TYPE_LABELS[t] + "\n" + "\n".join(textwrap.wrap(f"({_metric_label(board, family, t)})", 18)) for t in types
    ] + ["overall\n(mean of tracks)"]
    models = board["models"]
    exts = ("official", "flexible")
    fig, axes = plt.subplots(len(exts), 1, figsize=(max(8, 1.6 * len(cols) + 0.5 * len(models)), 4.2 * len(exts)))
    cmap = plt.get_cmap("tab10")
    width = 0.8 / max(1, len(models))
    for ax, ext in zip(axes, exts, strict=True):
        for j, m in enumerate(models):
            res = (m["scores"].get(family) or {}).get(ext) or {}
            tt = res.get("task_types") or {}
            vals, errs = [], []
            for c in cols:
                e = (res.get("overall") or {}) if c == "overall" else (tt.get(c) or {})
                v, se = e.get("score"), e.get("stderr")
                vals.append(float("nan") if v is None else v)
                errs.append(0.0 if se is None else se)
            xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(cols))]
            bars = ax.bar(xs, vals, width * 0.95, yerr=errs, capsize=3, color=cmap(j % 10), label=m["name"])
            for b, v in zip(bars, vals, strict=True):
                if not math.isnan(v):
                    ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, v), xytext=(0, 3),
                                textcoords="offset points", ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels(labels, fontsize=9)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("score")
        ax.axvline(len(types) - 0.5, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{ext} extraction" + (" (the protocol)" if ext == "official" else " (robust extractor)"))
        ax.grid(axis="y", alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    ncol = min(len(models), 6)
    rows = math.ceil(len(models) / ncol)
    top = 1 - (0.035 + 0.025 * rows) * 8.4 / fig.get_figheight()
    fig.suptitle("ShopBench scores by task type (± standard error)", fontsize=12, y=0.995)
    fig.legend(handles, names, loc="upper center", ncol=ncol, fontsize=9, frameon=False, bbox_to_anchor=(0.5, 0.965))
    fig.tight_layout(rect=(0, 0, 1, top))
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- CLI


def register(sub) -> None:
    p = sub.add_parser("leaderboard", help="lm-eval results of several models -> leaderboard JSON / Markdown / PNG")
    p.add_argument("results", nargs="+", help="lm-eval results_*.json files (or folders: newest results file in each)")
    p.add_argument("--out", required=True, help="leaderboard JSON")
    p.add_argument("--md", help="Markdown table")
    p.add_argument("--png", help="bar chart")
    p.add_argument("--names", help="comma-separated display names, one per results file")
    p.add_argument(
        "--contamination",
        action="append",
        default=[],
        metavar="[MODEL=]REPORT.json",
        help="a `shop-eval data decontam` report: for one model (MODEL=path) or for all (path); repeatable",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    cont: dict[str | None, str] = {}
    for c in args.contamination:
        key, sep, path = c.partition("=")
        if sep and not Path(c).exists():
            cont[key] = path
        else:
            cont[None] = c
    board = build_leaderboard(args.results, names, cont)
    write_json(args.out, board)
    md = render_markdown(board)
    if args.md:
        with atomic_write(args.md) as fh:
            fh.write(md)
    if args.png:
        render_png(board, args.png)
    print(md)
    return 0
