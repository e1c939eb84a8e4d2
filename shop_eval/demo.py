"""The whole pipeline offline, on CPU, in minutes: ``shop-eval demo OUT`` (``make demo``).

Stages, all into one folder ``OUT``:

1. ``data``     sample data (:mod:`shop_eval.sample_data`): corpus, train/test ShopBench JSONL, SFT chat rows
2. ``base``     the tiny base model (:mod:`shop_eval.tiny`), tokenizer trained on the corpus
3. ``cpt``      ``axolotl preprocess`` + ``axolotl train`` recipes/tiny/cpt.yml, ``axolotl merge-lora``
4. ``sft``      the same with recipes/tiny/sft.yml, starting from the merged CPT model
5. ``eval``     lm-eval ``shop_*`` tasks on the held-out test split, base and fine-tuned (``shop-eval eval``)
6. ``leaderboard``  ``shop-eval leaderboard`` → JSON, Markdown, PNG; the table is printed

Axolotl and lm-eval run as subprocesses (their output goes to ``OUT/logs/<stage>.log``); the recipes are
copied to ``OUT/configs/`` with ``OUT``'s paths filled in.  ``OUT/demo.json`` records the time per stage,
the training losses and the base-vs-fine-tuned comparison per task type.

Also: ``shop-eval sample-data OUT`` and ``shop-eval tiny-model OUT``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .io import Outputs, write_json
from .resources import recipes_dir

log = logging.getLogger(__name__)

ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
    # One thread per process: the tiny model's matrices are too small for a second thread to pay, and on a
    # busy machine two spinning OpenMP threads made axolotl's steps ~10x slower (measured; docs/demo.md).
    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
}
STAGES = ("data", "base", "cpt", "sft", "eval", "leaderboard")

#: shortened runs: ``small`` is what tests/test_demo.py runs
PRESETS: dict[str, dict[str, Any]] = {
    "demo": dict(data="demo", quick_base=False, cpt_steps=None, sft_epochs=None, sft_steps=None),
    "small": dict(data="small", quick_base=True, cpt_steps=20, sft_epochs=None, sft_steps=30),
}


class StageError(RuntimeError):
    pass


# --------------------------------------------------------------------------- progress


class Progress:
    """One line per stage start/end with elapsed seconds; a live spinner (rich) while a stage runs."""

    def __init__(self, out: Path, quiet: bool = False):
        from rich.console import Console

        self.console = Console(stderr=True, quiet=quiet, highlight=False)
        self.out = out
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.t0 = time.time()

    def stage(self, i: int, name: str, what: str):
        self.console.rule(f"[bold]{i}/{len(STAGES)} {name}[/]: {what}", align="left")
        return _StageTimer(self, name)

    def note(self, text: str) -> None:
        self.console.print(f"  {text}")


class _StageTimer:
    def __init__(self, progress: Progress, name: str):
        self.p, self.name = progress, name

    def __enter__(self):
        self.t, self.cpu = time.time(), _cpu_seconds()
        return self

    def __exit__(self, exc_type, exc, tb):
        dt, cpu = time.time() - self.t, _cpu_seconds() - self.cpu
        self.p.timings[self.name] = round(dt, 1)
        self.p.cpu[self.name] = round(cpu, 1)
        status = "[green]done[/]" if exc_type is None else "[red]failed[/]"
        self.p.console.print(
            f"  {status} {self.name} in {dt:.1f}s wall, {cpu:.1f}s CPU (total {time.time() - self.p.t0:.1f}s)"
        )
        return False


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children: what a stage costs whatever else
    runs on the machine."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _run_logged(cmd: list[str], log_path: Path, progress: Progress, label: str, env: dict[str, str] | None = None):
    """Run ``cmd``, its output to ``log_path``; a spinner shows the latest ``n/N`` progress of the log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **ENV, **(env or {})}
    progress.note(f"$ {' '.join(cmd)}  [dim](log: {log_path})[/]")
    t = time.time()
    with open(log_path, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=full_env, cwd=log_path.parent.parent)
        with progress.console.status(label) as status:
            while proc.poll() is None:
                time.sleep(0.5)
                status.update(f"{label} {_latest_progress(log_path)} {time.time() - t:.0f}s")
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        progress.console.print("\n".join(tail), markup=False, highlight=False)
        raise StageError(f"{label} failed (exit {proc.returncode}); full log: {log_path}")
    return time.time() - t


_PROG = re.compile(r"(\d+)/(\d+) \[")


def _latest_progress(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4000))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    found = _PROG.findall(tail)
    return f"{found[-1][0]}/{found[-1][1]}" if found else ""


# --------------------------------------------------------------------------- recipes


def resolve_recipe(recipe: Path, out: Path, stage: str, base_model: Path, data: Path, overrides: dict) -> Path:
    """A copy of ``recipe`` with OUT's paths (and ``overrides``) written to ``OUT/configs/<stage>.yml``."""
    cfg = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    cfg["base_model"] = str(base_model)
    cfg["datasets"][0]["path"] = str(data)
    cfg["dataset_prepared_path"] = str(out / "prepared" / stage)
    cfg["output_dir"] = str(out / stage)
    cfg["lora_model_dir"] = None
    for k, v in overrides.items():
        if v is not None:
            cfg[k] = v
    if cfg.get("max_steps"):  # keep the one end-of-training checkpoint (trainer_state.json) at the last step
        cfg["save_steps"] = cfg["max_steps"]
        cfg["save_strategy"] = "steps"
        cfg.pop("saves_per_epoch", None)
    path = out / "configs" / f"{stage}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# resolved from recipes/tiny/{recipe.name} by shop-eval demo\n" + yaml.safe_dump(cfg, sort_keys=False),
        encoding="utf-8",
    )
    return path


def read_losses(output_dir: Path) -> list[float]:
    """The training loss per logged step, from the last checkpoint's ``trainer_state.json``."""
    states = sorted(output_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[-1]))
    if not states:
        raise StageError(f"{output_dir}: no checkpoint-*/trainer_state.json (did training save a checkpoint?)")
    hist = json.loads(states[-1].read_text(encoding="utf-8"))["log_history"]
    return [float(h["loss"]) for h in hist if "loss" in h]


def _loss_summary(losses: list[float]) -> dict:
    k = max(1, len(losses) // 5)
    return {
        "steps": len(losses),
        "first": losses[0],
        "last": losses[-1],
        "first_mean": round(sum(losses[:k]) / k, 4),
        "last_mean": round(sum(losses[-k:]) / k, 4),
    }


def seeded_module_argv(seed: int, module: str, *args: str) -> list[str]:
    """``python -m MODULE ARGS`` with torch/numpy/random seeded first.  Axolotl creates the LoRA weights
    before the trainer sets ``seed``, from the unseeded global RNG, so without this two runs of the same
    recipe differ (measured: different grad norms from the first step)."""
    return [sys.executable, "-m", "shop_eval.demo", "--seeded", str(seed), module, *args]


def _seeded_main(argv: list[str]) -> None:
    import runpy

    from transformers import set_seed

    seed, module, *args = argv
    set_seed(int(seed))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


def _fresh(*paths: Path) -> None:
    """Remove a previous run's stage output (checkpoints, prepared data, lm-eval results) before redoing it,
    so that nothing stale is read back (axolotl reuses a prepared dataset by its config hash, not by content)."""
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)


def train_stage(stage, recipe, out, base_model, data, overrides, progress, preprocess=True, seed=0) -> dict:
    _fresh(out / stage, out / "prepared" / stage)
    cfg = resolve_recipe(recipe, out, stage, base_model, data, overrides)
    progress.note(f"config: {cfg}")
    times = {}
    if preprocess:
        times["preprocess"] = _run_logged(
            seeded_module_argv(seed, "axolotl.cli.preprocess", str(cfg)), out / "logs" / f"{stage}_preprocess.log",
            progress, f"{stage}: axolotl preprocess",
        )  # fmt: skip
    times["train"] = _run_logged(
        seeded_module_argv(seed, "axolotl.cli.train", str(cfg)), out / "logs" / f"{stage}_train.log", progress,
        f"{stage}: axolotl train",
    )  # fmt: skip
    losses = read_losses(out / stage)
    summary = _loss_summary(losses)
    progress.note(
        f"loss {summary['first']:.3f} -> {summary['last']:.3f} over {summary['steps']} steps "
        f"(mean of first/last fifth {summary['first_mean']:.3f} -> {summary['last_mean']:.3f})"
    )
    times["merge"] = _run_logged(
        seeded_module_argv(seed, "axolotl.cli.merge_lora", str(cfg), f"--lora-model-dir={out / stage}"),
        out / "logs" / f"{stage}_merge.log", progress, f"{stage}: axolotl merge-lora",
    )  # fmt: skip
    merged = out / stage / "merged"
    if not (merged / "config.json").is_file():
        raise StageError(f"{merged}: merge-lora wrote no model")
    return {"config": str(cfg), "merged": str(merged), "loss": summary, "losses": losses, "seconds": times}


# --------------------------------------------------------------------------- evaluation


def eval_stage(model: Path, name: str, test: Path, out: Path, progress: Progress, limit: float | None) -> Path:
    from .eval_launch import EvalSpec, build_command

    _fresh(out / "eval" / name)
    spec = EvalSpec(model=str(model), output=str(out / "eval" / name), data=str(test), batch_size="32", limit=limit)
    cmd, env = build_command(spec)
    if cmd[0] == "lm_eval":  # the venv's lm_eval, whatever PATH says
        cmd = [sys.executable, "-m", "lm_eval", *cmd[1:]]
    _run_logged(cmd, out / "logs" / f"eval_{name}.log", progress, f"eval: lm-eval {name}", env=env)
    return out / "eval" / name


def compare(board, base: str, tuned: str) -> dict:
    """Per task type, official protocol: fine-tuned minus base, and whether the gain exceeds the stderr of
    the difference (and of each score)."""
    models = {m.name: m.scores["shop"].protocols["official"].task_types for m in board.models}
    out = {}
    for ttype, bo in models[base].items():
        to = models[tuned].get(ttype)
        if to is None or bo.absent or to.absent or bo.score is None or to.score is None:
            continue
        se_b, se_t = bo.stderr or 0.0, to.stderr or 0.0
        diff = to.score - bo.score
        se = math.sqrt(se_b**2 + se_t**2)
        out[ttype] = {
            "base": bo.score,
            "base_stderr": se_b,
            "fine_tuned": to.score,
            "fine_tuned_stderr": se_t,
            "gain": round(diff, 6),
            "beats_by_more_than_stderr": bool(diff > max(se, se_b, se_t)),
        }
    return out


# --------------------------------------------------------------------------- the demo


def run_demo(
    out: str | Path,
    seed: int = 0,
    preset: str = "demo",
    preprocess: bool = True,
    quiet: bool = False,
    limit: float | None = None,
) -> dict:
    from . import leaderboard as lb
    from .sample_data import build_sample_data
    from .tiny import build_tiny_model

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    p = PRESETS[preset]
    for noisy in ("torchao", "torch.utils._pytree"):  # import-time warnings irrelevant on CPU
        logging.getLogger(noisy).setLevel(logging.ERROR)
    progress = Progress(out, quiet=quiet)
    report: dict[str, Any] = {"out": str(out), "seed": seed, "preset": preset, "stages": {}}

    with progress.stage(1, "data", "sample catalogue -> corpus, train/test ShopBench JSONL, SFT chat rows"):
        info = build_sample_data(out / "data", seed=seed, preset=p["data"])
        progress.note(
            f"corpus {info['corpus']} texts; train {info['train']} / test {info['test']} examples "
            f"({info['train_products']} / {info['test_products']} disjoint products)"
        )
        report["stages"]["data"] = info

    with progress.stage(2, "base", "tiny Llama from scratch (tokenizer + pretraining on the corpus)"):
        base = build_tiny_model(out / "base", seed=seed, quick=p["quick_base"], corpus=out / "data" / "corpus.jsonl")
        binfo = json.loads((base / "tiny_build.json").read_text())
        binfo.pop("losses")
        progress.note(f"{binfo['parameters']:,} parameters; loss {binfo['loss_first']:.3f} -> {binfo['loss_last']:.3f}")
        report["stages"]["base"] = binfo

    cpt_over = {"max_steps": p["cpt_steps"], "seed": seed}
    with progress.stage(3, "cpt", "LoRA continued pretraining on the corpus (axolotl), then merge"):
        report["stages"]["cpt"] = train_stage(
            "cpt",
            recipes_dir() / "tiny" / "cpt.yml",
            out,
            base,
            out / "data" / "corpus.jsonl",
            cpt_over,
            progress,
            preprocess,
            seed,
        )
    sft_over = {"max_steps": p["sft_steps"], "num_epochs": p["sft_epochs"], "seed": seed}
    with progress.stage(4, "sft", "LoRA SFT, answer-only loss, on the train split (axolotl), then merge"):
        report["stages"]["sft"] = train_stage(
            "sft", recipes_dir() / "tiny" / "sft.yml", out, out / "cpt" / "merged", out / "data" / "sft_train.jsonl", sft_over,
            progress, preprocess, seed,
        )  # fmt: skip

    test = out / "data" / "test.jsonl"
    with progress.stage(5, "eval", "lm-eval shop_* on the held-out test split: base and fine-tuned"):
        runs = {
            "base": eval_stage(base, "base", test, out, progress, limit),
            "fine-tuned": eval_stage(out / "sft" / "merged", "fine-tuned", test, out, progress, limit),
        }
        report["stages"]["eval"] = {k: str(v) for k, v in runs.items()}

    with progress.stage(6, "leaderboard", "shop-eval leaderboard -> JSON, Markdown, PNG"):
        board = lb.build_leaderboard([str(v) for v in runs.values()], list(runs), {})
        md = lb.render_markdown(board)
        with Outputs(out=out / "leaderboard.json", md=out / "leaderboard.md", png=out / "leaderboard.png") as o:
            o.write_json("out", board.to_json())
            o.write_text("md", md)
            with o.open("png", "wb") as fh:
                lb.render_png(board, fh)
        cmp_ = compare(board, "base", "fine-tuned")
        report["comparison"] = cmp_
        report["wins"] = sum(v["beats_by_more_than_stderr"] for v in cmp_.values())

    report["timings"] = progress.timings
    report["cpu_seconds"] = progress.cpu
    report["total_seconds"] = round(sum(progress.timings.values()), 1)
    report["total_cpu_seconds"] = round(sum(progress.cpu.values()), 1)
    write_json(out / "demo.json", report)
    print(md)
    print(
        f"fine-tuned beats base by more than the stderr on {report['wins']} of {len(cmp_)} task types "
        "(official extractor)"
    )
    print("time per stage (wall): " + ", ".join(f"{k} {v:.0f}s" for k, v in progress.timings.items()))
    print("CPU per stage:         " + ", ".join(f"{k} {v:.0f}s" for k, v in progress.cpu.items()))
    print(
        f"total {report['total_seconds']:.0f}s wall, {report['total_cpu_seconds']:.0f}s CPU; "
        f"everything is in {out} (demo.json, leaderboard.*, logs/)"
    )
    return report


if __name__ == "__main__":  # python -m shop_eval.demo --seeded SEED MODULE ARGS...: see seeded_module_argv
    if sys.argv[1:2] != ["--seeded"]:
        sys.exit("usage: python -m shop_eval.demo --seeded SEED MODULE [ARGS...]  (the CLI is `shop-eval demo`)")
    _seeded_main(sys.argv[2:])
