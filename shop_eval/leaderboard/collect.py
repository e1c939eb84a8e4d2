"""Collect lm-eval runs: read a results file and its samples, score each family of tasks with the scoring core,
check lm-eval's numbers against them, and build the :class:`~.model.Board`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from .. import task_types
from ..errors import DataError, UsageError
from ..io import read_json
from ..lm_eval_docs import doc_to_record
from ..scoring import PROTOCOLS, score_rows
from ..scoring.samples import ABSENT, read_samples
from .model import AGREEMENT_TOLERANCE, FAMILIES, LL_SUFFIX, Board, FamilyScores, ModelRun, TaskRun

log = logging.getLogger(__name__)


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
        rows.append((s.source, doc_to_record(s.doc, s.source, s.where), s.response))
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
    if not diffs and not problems:
        problems.append("nothing checked: no samples (run lm-eval with --log_samples)")
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
