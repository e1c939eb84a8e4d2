"""Merge the JSON files the device runs brought back into bench/results/*.json (the committed results).

The device allows 10 minutes a command, so one benchmark is measured over several calls: the main
training comparison (padded, fixed, ours), then lever runs; the evaluation settings likewise.  This script
merges them, keeps the headline fields the issue asks for, and re-derives the axolotl runs' peak memory
from their logs: axolotl resets torch's peak counters each time it logs, so runs measured before
bench/axolotl_plugin.py took that into account reported the peak since the last log only; the logged
``memory/max_allocated (GiB)`` values give the true peak.

    python bench/collect_results.py train --main D2/train_h100.json --levers D3/train_levers_h100.json \
        --logs D2 D3 --out bench/results/train_h100.json     (D2, D3: the folders of the runs' files)
    python bench/collect_results.py eval --runs D4/eval_h100.json D5/eval_h100b.json \
        --headline ours_stop:defaults_stop --out bench/results/eval_h100.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

_MEM = re.compile(r"'memory/(max_allocated|device_reserved) \(GiB\)': '?([0-9.]+)'?")


def peaks_from_log(text: str) -> dict[str, float]:
    """Largest logged ``memory/max_allocated`` and ``memory/device_reserved`` (GiB) in an axolotl log."""
    out: dict[str, float] = {}
    for key, value in _MEM.findall(text):
        name = "peak_allocated_gib" if key == "max_allocated" else "peak_reserved_gib"
        out[name] = max(out.get(name, 0.0), float(value))
    return out


def fix_peaks(path_name: str, res: dict, log_dirs: list[Path]) -> dict:
    for d in log_dirs:
        log = d / f"axolotl_{path_name}_train.log"
        if log.exists():
            for k, v in peaks_from_log(log.read_text(errors="replace")).items():
                if v > (res.get(k) or 0):
                    res[k] = round(v, 2)
                    res.setdefault("peak_from_log", True)
    return res


_LOGGED = re.compile(r"\{'(loss|eval_loss)': [^}]*\}")


def partial_from_log(label: str, run: str, recipe: str, text: str, cap: float | None) -> dict:
    """A row for a recipe run cut off before it reported (a call's time limit): what its axolotl log shows —
    the optimizer steps and evaluation passes it logged, and the largest logged memory peaks."""
    steps = sum(1 for m in _LOGGED.finditer(text) if m.group(1) == "loss")
    evals = sum(1 for m in _LOGGED.finditer(text) if m.group(1) == "eval_loss")
    row = {"path": label, "run": run, "kind": "recipe", "recipe": recipe, "memory_cap_gib": cap}
    row.update({"steps_run": steps, "eval_included": evals > 0, "eval_passes": evals, "save_included": False})
    row.update({"max_steps": None, "timed_steps": 0, "tok_s": None, "error": "cut off by the call's time limit"})
    row.update(peaks_from_log(text))
    for key in ("max_steps", "lora_r", "micro_batch_size", "gradient_accumulation_steps"):  # axolotl's config dump
        found = re.search(rf'"{key}": (\d+)', text)
        row[key] = int(found.group(1)) if found else row.get(key)
    row["peak_from_log"] = True
    return row


def merge_train(main: dict, levers: list[tuple[str, dict]], log_dirs: list[Path]) -> dict:
    """``levers``: (label, result) of the lever calls.  A lever call that also re-ran ``ours`` gives its levers
    a same-machine ratio (``vs_ours_same_call``); a name seen twice is kept as ``name@label``."""
    out = dict(main)
    paths = {k: {**v, "source": "main"} for k, v in main["paths"].items()}
    for k, v in paths.items():
        if "overrides" in v:  # an axolotl run
            fix_peaks(k, v, [log_dirs[0]] if log_dirs else [])
    for (label, lev), logs in zip(levers, log_dirs[1:] + [None] * len(levers), strict=False):
        same_call = lev["paths"].get("ours", {}).get("tok_s")
        for k, v in lev["paths"].items():
            v = {**v, "source": label}
            if logs is not None:
                fix_peaks(k, v, [logs])
            if same_call and k != "ours":
                v["vs_ours_same_call"] = common.ratio(v.get("tok_s"), same_call)
            paths[k if k not in paths else f"{k}@{label}"] = v
    out.update(relabel_and_compare(paths, {}, set()))
    common.check_result(out, "train")
    return out


def relabel_and_compare(paths: dict, renames: dict, unenforced: set) -> dict:
    """Rename runs (``renames``: old label -> (new label, new run name)), mark the calls whose recipe runs ran
    without the cap enforced (``unenforced``: source labels), and add each recipe run's ratio to the recipe
    row of its kind and to the best plain loop under the same cap; returns the headline fields."""
    out = {}
    for old, (new, run) in renames.items():
        if old in paths:
            row = paths.pop(old)
            row.update({"path": new, "run": run, "label_in_call": old})
            out[new] = row
    paths.update(out)
    for v in paths.values():
        enforced = not (v.get("kind") == "recipe" and v.get("source") in unenforced)
        v["cap_enforced"] = bool(v.get("memory_cap_gib")) and enforced
    ours = paths.get("sft") or paths.get("ours") or {}
    for v in paths.values():
        if "overrides" in v and v.get("tok_s") and v is not ours:
            base = common.best_plain(paths, v.get("memory_cap_gib"), v.get("lora_r"))
            v["vs_best_plain"] = common.ratio(v["tok_s"], base.get("tok_s"))
            v["best_plain"] = base.get("path")
    return common.train_headline(paths)


def merge_calls(
    calls: list[tuple[str, dict]], log_dirs: list[Path], renames: dict, unenforced: set, partial: list
) -> dict:
    """Several calls' results (label, result) into one; axolotl runs' peaks re-derived from their logs."""
    out = dict(calls[0][1])
    paths: dict[str, dict] = {}
    for (label, res), logs in zip(calls, log_dirs, strict=True):
        for k, v in res["paths"].items():
            v = {**v, "source": label}
            if v.get("kind") == "recipe":
                fix_peaks(k, v, [logs])
            paths[f"{k}@{label}" if k in paths else k] = v
    for label, name, run, recipe, log, cap in partial:
        paths[name] = {
            **partial_from_log(name, run, recipe, Path(log).read_text(errors="replace"), cap),
            "source": label,
        }
    out["settings"] = {**calls[0][1]["settings"], "calls": {lab: r["settings"] for lab, r in calls}}
    out.update(relabel_and_compare(paths, renames, unenforced))
    common.check_result(out, "train")
    return out


def merge_eval(runs: list[dict], headline: tuple[str, str]) -> dict:
    out = dict(runs[0])
    tasks: dict[str, dict] = {}
    rates: dict[str, dict] = {}
    settings = []
    from bench.eval_throughput import setting_rates

    for r in runs:
        tasks.update(r["tasks"])
        rates.update(r.get("rates") or setting_rates(r["tasks"]))  # runs before `rates` existed: derive them
        settings.append(r["settings"])
    ours, base = headline
    out.update(
        {
            "tasks": tasks,
            "rates": rates,
            "settings": {**settings[0], "runs": settings, "headline": {"ours": ours, "baseline": base}},
            "eval_ratio": common.ratio(rates[ours]["examples_s"], rates[base]["examples_s"]),
            "baseline_examples_s": rates[base]["examples_s"],
            "ours_examples_s": rates[ours]["examples_s"],
            "ratios": {
                f"{a}/{b}": common.ratio(rates[a]["examples_s"], rates[b]["examples_s"])
                for a in rates
                for b in rates
                if a.startswith("ours") and b.startswith("defaults") and ("_stop" in a) == ("_stop" in b)
            },  # same stopping regime only
        }
    )
    common.check_result(out, "eval")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="kind", required=True)
    t = sub.add_parser("train")
    t.add_argument("--main", required=True)
    t.add_argument("--levers", nargs="*", default=[])
    t.add_argument("--logs", nargs="*", default=[], help="log folders: the main run's, then one per --levers file")
    t.add_argument("--out", required=True)
    c = sub.add_parser("calls", help="several calls of bench/train_throughput.py --runs into one result")
    c.add_argument("--call", nargs=3, action="append", metavar=("LABEL", "JSON", "LOGDIR"), required=True)
    c.add_argument("--rename", nargs=3, action="append", default=[], metavar=("OLD", "NEW", "RUN"))
    c.add_argument("--cap-not-enforced", nargs="*", default=[], help="call labels whose recipe runs ran uncapped")
    c.add_argument(
        "--partial", nargs=6, action="append", default=[], metavar=("LABEL", "NAME", "RUN", "RECIPE", "LOG", "CAP")
    )
    c.add_argument("--out", required=True)
    e = sub.add_parser("eval")
    e.add_argument("--runs", nargs="+", required=True)
    e.add_argument("--headline", default="ours:defaults", help="OURS:BASELINE setting names")
    e.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.kind == "train":
        res = merge_train(
            json.loads(Path(args.main).read_text()),
            [(Path(p).parent.name + "/" + Path(p).stem, json.loads(Path(p).read_text())) for p in args.levers],
            [Path(d) for d in args.logs],
        )
    elif args.kind == "calls":
        res = merge_calls(
            [(lab, json.loads(Path(p).read_text())) for lab, p, _ in args.call],
            [Path(d) for _, _, d in args.call],
            {old: (new, run) for old, new, run in args.rename},
            set(args.cap_not_enforced),
            [(a, b, c_, d, e_, float(f) or None) for a, b, c_, d, e_, f in args.partial],
        )
    else:
        res = merge_eval([json.loads(Path(p).read_text()) for p in args.runs], tuple(args.headline.split(":")))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print({k: res[k] for k in (common.EVAL_FIELDS if args.kind == "eval" else common.TRAIN_FIELDS)[3:]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
