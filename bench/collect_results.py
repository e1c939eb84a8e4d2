"""Merge the JSON files the device runs brought back into bench/results/*.json (the committed results).

The device allows 10 minutes a command, so one benchmark is measured over several calls: the main
training comparison (padded, fixed, ours), then lever runs; the evaluation settings likewise.  This script
merges them, keeps the headline fields the issue asks for, and re-derives the axolotl runs' peak memory
from their logs: axolotl resets torch's peak counters each time it logs, so runs measured before
bench/axolotl_plugin.py took that into account reported the peak since the last log only; the logged
``memory/max_allocated (GiB)`` values give the true peak.

    python bench/collect_results.py train --main D2/train_h100.json --levers D3/train_levers_h100.json \
        --logs D2 D3 --out bench/results/train_h100.json     (D2, D3: the folders the device calls returned)
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
    ours, fixed = paths.get("ours", {}), paths.get("fixed", {})
    for v in paths.values():
        if "overrides" in v and v.get("tok_s") and v is not ours:
            v["vs_ours"] = common.ratio(v["tok_s"], ours.get("tok_s"))
            v["vs_best_plain"] = common.ratio(v["tok_s"], fixed.get("tok_s"))
    out.update(common.train_headline(paths))
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
    else:
        res = merge_eval([json.loads(Path(p).read_text()) for p in args.runs], tuple(args.headline.split(":")))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print({k: res[k] for k in (common.TRAIN_FIELDS if args.kind == "train" else common.EVAL_FIELDS)[3:]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
