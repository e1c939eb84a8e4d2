"""Evaluation as a user runs it: each setting's ``lm_eval`` commands (``eval_throughput.task_commands``, the
commands the docs give), each a fresh process started from a shell, the model loaded from a checkpoint on disk,
timed end to end — Python's start, imports, model loading, lm-eval's per-run work and the model's own time.
``bench/eval_throughput.py`` times the same settings in one process around an in-memory model; this adds what a
command pays every time it starts.

The checkpoint is a folder (``--model``), or random weights of ``--shape`` saved first with the stand-in
tokenizer (``--work``; written just before, so it is read back from the host's page cache).  Random weights never
emit EOS: every answer decodes its whole ``max_gen_toks``, in every setting alike.  Every command gets
``--limit --per-type``, ``--device``, ``--log_samples`` and its own ``--output_path`` (emptied first); the result
has each command's wall clock and exit status, each setting's total and its speed-up over the first setting
(``ratio_vs_FIRST``: the first's seconds over this one's), the tasks' scores, and the responses of every setting
compared with the first's (``identical`` of ``compared``; telling only for a trained model: random weights'
next-token scores are near ties, which bf16 kernels and batch shapes flip).  ``lm_eval_seconds`` is lm-eval's
own timer, from its evaluation tracker's start to just before it saves the results: it counts the hf model class's
imports for ``lm_eval --model hf`` (imported once the run starts) but not for ``python -m shop_eval.hf_fast``
(imported before), so only the process times compare across backends.
``--probe-startup`` also times, each in a fresh process, lm-eval's imports and those plus loading the checkpoint.

    python bench/eval_commands.py --shape yi9b --work /tmp/ckpt --settings ours,ours_group,fast_group \\
        --out bench/results/eval_commands_h200.json
    python bench/eval_commands.py --model TINY_DIR --device cpu --per-type 2 --settings ours_group,fast_group \\
        --data lm_eval_tasks/data/sample.jsonl --out /tmp/eval_commands.json       # CPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402
from bench.eval_throughput import SAMPLE, compare_responses, task_commands  # noqa: E402
from shop_eval.errors import DataError  # noqa: E402
from shop_eval.leaderboard.collect import find_results, samples_files  # noqa: E402
from shop_eval.options import choice_list, int_in  # noqa: E402
from shop_eval.scoring.samples import read_samples  # noqa: E402

TAIL = 2000  # characters of a failed command's output kept in the result
MAX_PER_TYPE = 1_000_000  # --limit beyond any task's size


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="a saved model folder (weights, config, tokenizer)")
    src.add_argument("--shape", choices=["yi9b", "tiny"], help="random weights of this shape, saved under --work")
    ap.add_argument(
        "--work", help="folder for the --shape checkpoint and the commands' outputs (default: beside --out)"
    )
    settings = choice_list(list(task_commands(1)))
    ap.add_argument(
        "--settings", type=settings, default="ours,ours_group,fast_group", help="comma list; the first is the baseline"
    )
    ap.add_argument("--data", default=str(SAMPLE), help="the tasks' data (SHOP_EVAL_DATA)")
    ap.add_argument("--per-type", type=int_in(1, MAX_PER_TYPE), default=100, help="--limit of every command")
    ap.add_argument("--batch-size", type=int_in(1, 4096), default=128)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--timeout", type=int_in(1, 86400), default=900, help="seconds one command may take")
    ap.add_argument("--probe-startup", action="store_true", help="time the imports and the model load on their own")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error(f"--device {args.device}: no GPU here (--device cpu)")
    if args.shape and not args.work:
        ap.error("--shape needs --work (the folder the checkpoint is saved in)")
    if args.model and not (Path(args.model) / "config.json").is_file():
        ap.error(f"--model {args.model}: no config.json there")
    if not Path(args.data).is_file():
        ap.error(f"--data {args.data}: not a file")
    common.check_out(ap, args.out)
    args.work = Path(args.work) if args.work else Path(args.out).parent / "eval_commands_runs"
    try:  # written to long after the first command: refused now rather than at the first save
        args.work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        ap.error(f"--work {args.work}: cannot be written ({exc.strerror or exc})")
    return args


def commands(setting: str, model: str, args, out_dir: Path) -> list[list[str]]:
    """The setting's commands as argument lists: ``MODEL`` replaced, ``lm_eval`` / ``python`` run by this
    interpreter, each with the bench's ``--limit``, ``--device``, ``--log_samples`` and its own output folder."""
    out = []
    for i, text in enumerate(task_commands(args.batch_size)[setting].split(" ; ")):
        argv = [a.replace("pretrained=MODEL", f"pretrained={model}") for a in shlex.split(text)]
        head = [sys.executable, "-m", "lm_eval"] if argv[0] == "lm_eval" else [sys.executable]
        out.append(
            head + argv[1:] + ["--limit", str(args.per_type), "--device", args.device, "--log_samples"]
            + ["--output_path", str(out_dir / setting / str(i))]
        )  # fmt: skip
    return out


def read_run(folder: Path) -> tuple[dict, dict, float | None]:
    """One command's output folder, by the project's readers of lm-eval's files (``shop_eval.leaderboard.collect``
    finds the results file and each task's samples file, ``shop_eval.scoring.samples`` reads the responses: the
    text, or the option a log-likelihood task chose): task -> {metric: value}, task -> {doc_id: response}, and
    lm-eval's own ``total_evaluation_time_seconds`` (see the module's docstring).  No results file: a DataError."""
    results_path = find_results(folder)
    data = json.loads(results_path.read_text())
    scores: dict = {}
    for task, metrics in data.get("results", {}).items():
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:  # a group's own entry has none; NaN (a metric with no rows) is written as null
            scores[task] = {k: None if math.isnan(v) else v for k, v in numbers.items()}
    responses = {
        task: {str(s.doc_id): s.response for s in read_samples(samples_files(results_path, task))} for task in scores
    }
    own = float(data.get("total_evaluation_time_seconds") or 0) or None
    return scores, {t: r for t, r in responses.items() if r}, own


def compare(base: dict, other: dict) -> dict:
    """Responses of two settings on the tasks and docs both have (``eval_throughput.compare_responses``), and how
    many docs only one of them has (``unmatched``: a task or doc the other lacks)."""
    tasks = {t: compare_responses(base[t], other[t]) for t in sorted(set(base) & set(other))}
    n = sum(c["compared"] for c in tasks.values())
    same = sum(c["identical"] for c in tasks.values())
    docs = {(t, d) for t in base for d in base[t]} ^ {(t, d) for t in other for d in other[t]}
    return {"compared": n, "identical": same, "unmatched": len(docs), "tasks": tasks}


def _text(out) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else (out or "")


def _run(argv: list[str], env: dict, timeout: int) -> tuple[int | None, str, float]:
    """One command in a fresh process from the repository root: exit status (None: timed out), its output
    (what it wrote before a time-out too) and its wall clock."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, output = None, f"{_text(exc.output)}{_text(exc.stderr)}\ntimed out after {timeout} s"
    return rc, output, round(time.perf_counter() - t0, 2)


def run_setting(setting: str, model: str, args, out_dir: Path, env: dict, res: dict, save) -> None:
    """The setting's commands one after another into ``res`` (each one's output in ``OUT_DIR/SETTING/I.log``, its
    output folder emptied first, so nothing an earlier run left there is read); ``save`` is called after each, so
    a run cut short keeps what it measured.  A command that fails, times out or writes no results file ends the
    setting (``failed``); ``done`` once every command has run."""
    res.update({"runs": [], "scores": {}, "_resp": {}})
    argvs = commands(setting, model, args, out_dir)
    for i, argv in enumerate(argvs):
        folder = out_dir / setting / str(i)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rc, output, wall = _run(argv, env, args.timeout)
        (out_dir / setting / f"{i}.log").write_text(output)
        run = {"tasks": argv[argv.index("--tasks") + 1], "seconds": wall, "rc": rc}
        found = False
        if rc == 0:
            try:
                scores, responses, own = read_run(folder)
                found = True
            except DataError as exc:  # exit 0 without a results file (or unreadable samples)
                output += f"\nexit 0 but {exc}"
        if found:
            res["scores"].update(scores)
            res["_resp"].update(responses)
            run["lm_eval_seconds"] = round(own, 2) if own else None
        run["command"] = shlex.join(["python"] + argv[1:])
        print(json.dumps({"setting": setting, **{k: run[k] for k in ("tasks", "seconds", "rc")}}), flush=True)
        res["runs"].append(run)
        res["seconds"] = round(sum(r["seconds"] for r in res["runs"]), 2)
        if not found:
            run["output_tail"] = output[-TAIL:]
            res["failed"] = True
        elif i == len(argvs) - 1:
            res["done"] = True
        save()
        if not found:
            return


def probe_startup(model: str, args, env: dict) -> dict:
    """What every command pays before it evaluates, each in a fresh process: importing lm-eval's command line
    and its hf model class, and that plus loading the checkpoint onto the device."""
    imports = "import lm_eval.__main__, lm_eval.models.huggingface"
    load = (
        f"{imports}; import torch; from transformers import AutoModelForCausalLM; "
        f"m = AutoModelForCausalLM.from_pretrained({model!r}, dtype=torch.bfloat16).to({args.device!r}); "
        "torch.cuda.synchronize() if torch.cuda.is_available() else None"
    )
    out = {}
    for name, code in (("imports_seconds", imports), ("imports_and_load_seconds", load)):
        rc, output, wall = _run([sys.executable, "-c", code], env, args.timeout)
        out[name] = wall if rc == 0 else None
        if rc != 0:
            out[name.replace("seconds", "error")] = output[-TAIL:]
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    work = args.work
    env = {**os.environ, "SHOP_EVAL_DATA": str(Path(args.data).resolve()), "HF_HUB_OFFLINE": "1"}
    env.update({"HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    result: dict = {
        "device": common.device_name(),
        "versions": common.versions(),
        "settings": {"per_type": args.per_type, "batch_size": args.batch_size, "device": args.device},
    }
    model = args.model
    if args.shape:
        from bench.train_throughput import save_model_dir

        cfg = common.shape(args.shape)
        device = "cuda" if args.device.startswith("cuda") else "cpu"
        result["save_seconds"] = round(save_model_dir(cfg, device, work / "model"), 1)
        result["settings"]["shape"] = args.shape
        model = str(work / "model")
    result["checkpoint_bytes"] = sum(f.stat().st_size for f in Path(model).glob("*.safetensors"))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    per: dict = {}

    def save():
        base = per.get(args.settings[0], {})
        for setting, res in per.items():
            if setting == args.settings[0] or not base.get("runs"):
                continue
            if base.get("done") and res.get("done"):
                res["ratio_vs_" + args.settings[0]] = common.ratio(base["seconds"], res["seconds"])
            res["responses_vs_" + args.settings[0]] = compare(base["_resp"], res["_resp"])
            both = sorted(set(base["scores"]) & set(res["scores"]))
            res["scores_vs_" + args.settings[0]] = {
                "tasks": len(both), "differ": [t for t in both if base["scores"][t] != res["scores"][t]]
            }  # fmt: skip
        clean = {s: {k: v for k, v in r.items() if k != "_resp"} for s, r in per.items()}
        Path(args.out).write_text(json.dumps({**result, "runs": clean}, indent=1) + "\n")

    if args.probe_startup:
        result["startup"] = probe_startup(model, args, env)
        save()
    for setting in args.settings:
        per[setting] = {}
        run_setting(setting, model, args, work / "runs", env, per[setting], save)
    save()
    return 1 if any(r.get("failed") for r in per.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
