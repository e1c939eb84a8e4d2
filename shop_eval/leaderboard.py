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

import datetime as dt
import hashlib
import json
import logging
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import task_types
from .errors import DataError, UsageError
from .io import read_json
from .lm_eval_docs import doc_to_record
from .scoring import PROTOCOLS, ProtocolResult, score_rows
from .scoring.samples import ABSENT, read_samples
from .shoppingmmlu import SKILL_TITLES, skill_number

log = logging.getLogger(__name__)

SCHEMA = "shop-eval/leaderboard/v2"
#: lm-eval task-name prefixes of the families, longest first
FAMILIES = {"shopchat": "shopchat_", "shopmmlu": "shopmmlu_", "shop": "shop_"}
FAMILY_TITLES = {
    "shop": "ShopBench, the kit's decoding (`shop_*`)",
    "shopchat": "ShopBench, chat budget of 512 new tokens (`shopchat_*`)",
    "shopmmlu": "Shopping MMLU, the authors' decoding (`shopmmlu_*`)",
}
LL_SUFFIX = "_ll"
AGREEMENT_TOLERANCE = 1e-6


# --------------------------------------------------------------------------- the results


@dataclass
class TaskRun:
    """One lm-eval task of a run: what lm-eval reported and where its samples are."""

    family: str
    task_type: str | None
    n: int | None
    lm_eval: dict[str, dict[str, float | None]]
    samples: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"family": self.family, "task_type": self.task_type, "n": self.n, "lm_eval": self.lm_eval,
                "samples": self.samples}  # fmt: skip


@dataclass
class FamilyScores:
    """One family's scores: from the samples (every protocol, every view), or lm-eval's per-task numbers."""

    source: str  #: "samples" or "lm-eval"
    protocols: dict[str, ProtocolResult] = field(default_factory=dict)
    #: lm-eval's numbers when there are no samples: protocol -> task type -> {"score", "parse_failure_rate", "n"}
    lm_eval: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    unavailable_metrics: dict[str, str] = field(default_factory=dict)

    def type_score(self, protocol: str, ttype: str) -> tuple[float | None, float | None, bool]:
        """(score, stderr, absent) of a task type."""
        if self.source == "samples":
            res = self.protocols.get(protocol)
            cell = res.task_types.get(ttype) if res else None
            return (None, None, True) if cell is None or cell.absent else (cell.score, cell.stderr, False)
        entry = self.lm_eval.get(protocol, {}).get(ttype)
        return (None, None, True) if entry is None else (entry.get("score"), None, False)

    def present_types(self) -> set[str]:
        if self.source == "samples":
            res = next(iter(self.protocols.values()), None)
            return {t for t, c in (res.task_types.items() if res else ()) if not c.absent}
        return {t for types in self.lm_eval.values() for t in types}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.source == "samples":
            out["protocols"] = {k: v.to_json() for k, v in self.protocols.items()}
        else:
            out["protocols"] = self.lm_eval
        if self.unavailable_metrics:
            out["unavailable_metrics"] = dict(self.unavailable_metrics)
        return out


@dataclass
class ModelRun:
    """One leaderboard row: one lm-eval run of one model (and adapter)."""

    name: str
    results_file: str
    backend: str | None
    model_args: dict[str, Any]
    lm_eval_version: str | None
    git_hash: str | None
    date: str | None
    config_hash: str
    chat_template: bool
    system_instruction: Any
    limit: Any
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    scores: dict[str, FamilyScores] = field(default_factory=dict)
    data_hash: str | list[str] | None = None
    agreement: dict[str, Any] = field(default_factory=dict)
    contamination: dict[str, Any] | None = None

    @property
    def pretrained(self) -> Any:
        return self.model_args.get("pretrained")

    @property
    def adapter(self) -> Any:
        return self.model_args.get("peft") or self.model_args.get("lora_local_path")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "model_args": self.model_args,
            "pretrained": self.pretrained,
            "adapter": self.adapter,
            "lm_eval_version": self.lm_eval_version,
            "git_hash": self.git_hash,
            "date": self.date,
            "config_hash": self.config_hash,
            "chat_template": self.chat_template,
            "system_instruction": self.system_instruction,
            "limit": self.limit,
            "results_file": self.results_file,
            "tasks": {k: v.to_json() for k, v in self.tasks.items()},
            "scores": {k: v.to_json() for k, v in self.scores.items()},
            "data_hash": self.data_hash,
            "lm_eval_agreement": self.agreement,
            "contamination": self.contamination,
        }


@dataclass
class Board:
    models: list[ModelRun]
    generated: str
    contamination: dict[str, Any] | None = None
    comparable: dict[str, bool] = field(default_factory=dict)

    def families(self) -> list[str]:
        seen = {f for m in self.models for f in m.scores}
        order = [*FAMILY_TITLES, *(f + LL_SUFFIX for f in FAMILY_TITLES)]
        return [f for f in order if f in seen]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generated": self.generated,
            "models": [m.to_json() for m in self.models],
            "contamination": self.contamination,
            "comparable": self.comparable,
        }


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
        raise DataError(str(p), "", None, "no such file or folder")
    return p


def samples_files(results_path: Path, task: str) -> list[Path]:
    """The samples file lm-eval wrote for ``task`` in the same run (same timestamp)."""
    m = re.fullmatch(r"results_(.+)\.json", results_path.name)
    exact = results_path.parent / f"samples_{task}_{m.group(1) if m else ''}.jsonl"
    return [exact] if exact.exists() else []


def family_of(task: str) -> tuple[str, str | None] | None:
    """lm-eval task name → (family, task type or None), e.g. ``shopchat_ner`` → (shopchat, NER),
    ``shop_multiple_choice_ll`` → (shop_ll, multiple-choice), ``shopmmlu_concept_ranking`` → (shopmmlu, ranking)."""
    for fam, prefix in FAMILIES.items():
        if task.startswith(prefix):
            rest = task[len(prefix) :]
            if rest.endswith(LL_SUFFIX):
                return fam + LL_SUFFIX, "multiple-choice"
            for t in task_types.REGISTRY.values():
                if rest == t.short or rest.endswith("_" + t.short):
                    return fam, t.name
            return None
    return None


_ADDR = re.compile(r" at 0x[0-9a-f]+")


def config_hash(configs: dict[str, Any]) -> str:
    """sha256 of the shop task configs (model-specific metadata and memory addresses left out), so two runs
    with the same hash used the same prompts, decoding, filters and metrics."""
    clean = {}
    for name, cfg in sorted(configs.items()):
        if not (name.startswith("shop") and isinstance(cfg, dict)):
            continue
        c = {k: v for k, v in cfg.items() if k != "metadata"}
        clean[name] = _ADDR.sub("", json.dumps(c, sort_keys=True, default=str))
    return hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()[:16]


def _data_hash(records) -> str:
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: (r.task_name, r.input_field)):
        h.update(json.dumps([r.task_name, r.input_field, r.output_field], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def _lm_eval_numbers(results: dict, task: str) -> dict[str, dict[str, float | None]]:
    """``{filter: {metric: value}}`` for one lm-eval task (stderr entries left out, NaN as None)."""
    out: dict[str, dict[str, float | None]] = {}
    block = results.get("results", {}).get(task, {})
    if not isinstance(block, dict):
        return out
    for key, v in block.items():
        if "," not in key or "_stderr" in key:
            continue
        metric, filt = key.split(",", 1)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        out.setdefault(filt, {})[metric] = float(v) if ok else None
    return out


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


def _read_family(paths: list[Path]) -> tuple[list[tuple[str, Any, str]], dict[str, list[str]]]:
    """(samples file, record, response) of every doc in a family's samples, and the classification label sets
    of the data file."""
    rows, labels = [], {}
    for s in read_samples(paths, keep_absent=True):
        if s.doc.get("origin") == ABSENT:
            rows.append((s.source, None, s.response))
            continue
        if s.doc.get("labels"):
            labels.setdefault(s.doc.get("task_name", ""), list(s.doc["labels"]))
        try:
            rows.append((s.source, doc_to_record(s.doc), s.response))
        except Exception as exc:  # noqa: BLE001 - a malformed doc, named with its place
            raise DataError(s.source, s.where, "doc", f"not a shop task sample: {exc}") from None
    return rows, labels


def collect_run(results_path: str | Path, name: str | None = None) -> ModelRun:
    """One leaderboard row from one lm-eval run."""
    path = find_results(results_path)
    results = read_json(path)
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise DataError(str(path), "", "results", "not an lm-eval results file")
    cfg = results.get("config") if isinstance(results.get("config"), dict) else {}
    margs = _parse_model_args(cfg.get("model_args"))
    date = results.get("date")
    configs = results.get("configs") if isinstance(results.get("configs"), dict) else {}
    run = ModelRun(
        name=name or _default_name(margs, results),
        results_file=str(path),
        backend=cfg.get("model"),
        model_args=margs,
        lm_eval_version=results.get("lm_eval_version"),
        git_hash=results.get("git_hash"),
        date=(
            dt.datetime.fromtimestamp(float(date), dt.UTC).isoformat(timespec="seconds")
            if isinstance(date, int | float) and math.isfinite(date)
            else date
        ),
        config_hash=config_hash(configs),
        chat_template=bool(results.get("chat_template")),
        system_instruction=results.get("system_instruction"),
        limit=cfg.get("limit"),
    )
    n_samples = results.get("n-samples") if isinstance(results.get("n-samples"), dict) else {}
    for t in sorted(results["results"]):
        fam = family_of(t)
        if fam is None:
            continue
        n = (n_samples.get(t) or {}).get("effective") if isinstance(n_samples.get(t), dict) else None
        run.tasks[t] = TaskRun(
            fam[0], fam[1], n, _lm_eval_numbers(results, t), [str(p) for p in samples_files(path, t)]
        )
    if not run.tasks:
        raise DataError(str(path), "", "results", "no shop_* / shopchat_* / shopmmlu_* tasks in this results file")

    diffs: list[float] = []
    problems: list[str] = []
    hashes: set[str] = set()
    for fam in sorted({t.family for t in run.tasks.values()}):
        fam_tasks = {k: v for k, v in run.tasks.items() if v.family == fam}
        protocols = ("official",) if fam.endswith(LL_SUFFIX) else PROTOCOLS
        if not all(t.samples or t.n == 0 for t in fam_tasks.values()):
            run.scores[fam] = _from_lm_eval(fam_tasks, protocols)
            continue
        rows, labels = _read_family([Path(p) for t in fam_tasks.values() for p in t.samples])
        for t in fam_tasks.values():  # a task whose samples are only placeholders is absent: n = 0
            mine = [r for src, r, _ in rows if src in t.samples]
            if mine and all(r is None for r in mine):
                t.n = 0
        rows = [x for x in rows if x[1] is not None]
        records = [r for _, r, _ in rows]
        if records and not fam.endswith(LL_SUFFIX):  # an ll task holds a subset (multiple choice) of the same data
            hashes.add(_data_hash(records))
        scored = score_rows(records, [x for _, _, x in rows], protocols, labels=labels or None)
        run.scores[fam] = FamilyScores("samples", scored.protocols, unavailable_metrics=scored.unavailable_metrics)
        for tname, t in fam_tasks.items():
            mine = [(r, x) for src, r, x in rows if src in t.samples]
            diffs += _check_task(tname, t, mine, protocols, labels, problems)
    run.data_hash = next(iter(hashes)) if len(hashes) == 1 else (sorted(hashes) or None)
    run.agreement = {
        "checked": len(diffs),
        "max_abs_diff": max(diffs) if diffs else None,
        "problems": problems,
        "ok": all(d <= AGREEMENT_TOLERANCE for d in diffs) and not problems,
    }
    if not run.agreement["ok"]:
        log.warning("%s: lm-eval's numbers and the samples disagree: %s", path, problems or f"up to {max(diffs):g}")
    return run


def _check_task(tname: str, t: TaskRun, rows: list, protocols, labels, problems: list[str]) -> list[float]:
    """Re-score one lm-eval task's samples alone and compare with what lm-eval reported for it."""
    if t.n is not None and t.n != len(rows):
        problems.append(f"{tname}: lm-eval evaluated {t.n} docs, its samples file holds {len(rows)}")
    if not rows:
        return []
    scored = score_rows([r for r, _ in rows], [x for _, x in rows], protocols, labels=labels or None)
    diffs = []
    for p in protocols:
        filt = "none" if tname.endswith(LL_SUFFIX) else p
        lm = t.lm_eval.get(filt, {}).get("shop_score")
        cell = scored.protocols[p].task_types.get(t.task_type or "")
        ours = None if cell is None else cell.score
        if lm is not None and ours is not None:
            diffs.append(abs(lm - ours))
        elif (lm is None) != (ours is None) and not scored.unavailable_metrics:
            problems.append(f"{tname} ({filt}): lm-eval reported {lm}, the samples give {ours}")
    return diffs


def _from_lm_eval(fam_tasks: dict[str, TaskRun], protocols) -> FamilyScores:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for tname, t in fam_tasks.items():
        for p in protocols:
            nums = t.lm_eval.get("none" if tname.endswith(LL_SUFFIX) else p, {})
            if t.n == 0 or t.task_type is None:
                continue
            out.setdefault(p, {})[t.task_type] = {
                "n": t.n, "score": nums.get("shop_score"), "parse_failure_rate": nums.get("parse_failure"),
            }  # fmt: skip
    return FamilyScores("lm-eval", lm_eval=out)


# --------------------------------------------------------------------------- building


def read_contamination(path: str | Path) -> dict[str, Any]:
    report = read_json(path)
    if not isinstance(report, dict) or not isinstance(report.get("eval_sets", {}), dict):
        raise DataError(str(path), "", None, "expected a `shop-eval data decontam` report (a JSON object)")
    fractions = {}
    for name, s in report.get("eval_sets", {}).items():
        f = s.get("eval_fraction_found") if isinstance(s, dict) else None
        fractions[name] = f if isinstance(f, (int, float)) and not isinstance(f, bool) else None
    return {
        "path": str(path),
        "max_eval_fraction_found": max((f for f in fractions.values() if f is not None), default=None),
        "eval_fraction_found": fractions,
        "report": report,
    }


def build_leaderboard(
    results: list[str | Path], names: list[str] | None = None, contamination: dict[str | None, str | Path] | None = None
) -> Board:
    if names is not None and len(names) != len(results):
        raise UsageError(f"--names gives {len(names)} names for {len(results)} results")
    models: list[ModelRun] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(results):
        m = collect_run(r, names[i] if names else None)
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name}#{seen[m.name]}"
        models.append(m)
    board = Board(models=models, generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    for key, cpath in (contamination or {}).items():
        report = read_contamination(cpath)
        if key is None:
            board.contamination = report
            continue
        match = [m for m in models if m.name == key]
        if not match:
            raise UsageError(f"--contamination {key}=...: no model named {key!r} (names: {[m.name for m in models]})")
        match[0].contamination = report
    types = {
        fam: {json.dumps(sorted(m.scores[fam].present_types())) for m in models if fam in m.scores}
        for fam in board.families()
    }
    board.comparable = {
        "same_config": len({m.config_hash for m in models}) == 1,
        "same_data": len({json.dumps(m.data_hash) for m in models}) == 1,
        "same_task_types": all(len(v) == 1 for v in types.values()),
        "lm_eval_agreement": all(m.agreement.get("ok") for m in models),
    }
    if not all(board.comparable.values()):
        log.warning("models are not comparable as evaluated (%s): compare with care", board.comparable)
    return board


# --------------------------------------------------------------------------- Markdown: one function per table


def _fmt(x: Any, se: Any = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    s = f"{x:.4f}"
    if se is not None and not (isinstance(se, float) and math.isnan(se)):
        s += f" ± {se:.3f}"
    return s


def _types(board: Board, family: str) -> list[str]:
    present = set()
    for m in board.models:
        if family in m.scores:
            present |= m.scores[family].present_types()
    return [t for t in task_types.TASK_TYPES if t in present]


def _metric_label(board: Board, family: str, ttype: str) -> str:
    metrics: set[str] = set()
    for m in board.models:
        fs = m.scores.get(family)
        res = fs.protocols.get("official") if fs and fs.source == "samples" else None
        cell = res.task_types.get(ttype) if res else None
        if cell is not None and not cell.absent:
            metrics |= set(cell.metrics)
    tt = task_types.get(ttype)
    return ", ".join(sorted(metrics)) if metrics else (tt.default_metric if len(tt.metrics) == 1 else "per-row metric")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _head(cells: list[str]) -> list[str]:
    return [_row(cells), _row(["---"] + ["---:"] * (len(cells) - 1))]


def table_task_types(board: Board, family: str, protocol: str) -> list[str]:
    """Rows = models; columns = task types (with their metrics), both overall numbers, parse failures."""
    types = _types(board, family)
    lines = [f"## {protocol} — {FAMILY_TITLES.get(family, family)}", ""]
    lines += _head(
        ["model", *[f"{task_types.get(t).label} ({_metric_label(board, family, t)})" for t in types],
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
        "Scores in [0, 1] ± standard error. Protocols: `official` (the KDD Cup kit's parsers and metrics), `flexible` "
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


# --------------------------------------------------------------------------- PNG


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
    types = _types(board, family)
    cols = [*types, "all-around", "kit overall"]
    labels = [
        task_types.get(t).label + "\n" + "\n".join(textwrap.wrap(f"({_metric_label(board, family, t)})", 18))
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
