"""Evaluation throughput: lm-eval's hf backend at its defaults vs the project's recommended settings.

The ``shop_*`` tasks (lm_eval_tasks/) on a fixed mixed sample (bench/_carry/eval_sample.jsonl: real
EC-Guide rows for five task types, templated ``shop_eval.sample_data`` rows for ranking, which EC-Guide
lacks), the same model as the training benchmark (Yi-9B's shape, random bf16 weights built on the device):

* ``defaults`` — ``lm_eval --model hf`` as it comes: batch size 1, the kit's decoding as the tasks state it
  (``shop_multiple_choice`` generates 1 token, every other task up to 100);
* ``ours`` — batched (``--batch-size``), multiple choice by log-likelihood (``shop_multiple_choice_ll``:
  one forward pass, no decoding), and a per-task ``max_gen_toks`` set from the real answers' lengths
  (``MAX_GEN_TOKS``: the 99th percentile of the SFT answers' token counts, rounded up, with room; generation
  keeps the kit's 100).

Both run through ``lm_eval.simple_evaluate`` with an ``HFLM`` wrapping the in-memory model — the same code
path as the CLI's ``--model hf``.  Each task is timed on its own (wall clock, scoring included).  Random
weights never emit EOS, so every generation runs to its ``max_gen_toks``: an upper bound on decoding work
for both settings.  The defaults are slow enough (one sequence at a time) that they are timed on the first
``--default-per-type`` examples of each task, and their time for the whole sample is that per-task rate
times the task's size (stated in the result as ``baseline_extrapolated``).

Generated tokens/s are compared with the decode bandwidth limit: each decoding step must read every weight
once (2 bytes x N_linear), so a batch of B sequences generates at most B / (weight bytes / HBM bandwidth)
tokens/s (KV-cache reads make the real limit lower); the bandwidth is measured in the same run.

    python bench/eval_throughput.py --out bench/results/eval_h100.json
    python bench/eval_throughput.py --tiny --dry-run     # CPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402

TASKS_DIR = REPO / "lm_eval_tasks"
SAMPLE = common.BENCH / "_carry" / "eval_sample.jsonl"
TOKENIZER = common.BENCH / "_carry" / "tokenizer"
TASK_TYPES = ["multiple-choice", "retrieval", "ranking", "named_entity_recognition", "generation", "classification"]
DEFAULT_TASKS = {
    "multiple-choice": "shop_multiple_choice",
    "retrieval": "shop_retrieval",
    "ranking": "shop_ranking",
    "named_entity_recognition": "shop_ner",
    "generation": "shop_generation",
    "classification": "shop_classification",
}
OURS_TASKS = {**DEFAULT_TASKS, "multiple-choice": "shop_multiple_choice_ll"}
#: Per-task decoding budget of the recommended settings.  Answers' token counts in the SFT data
#: (bench/data/sft_lengths.json, EOS included): retrieval p99 10, NER p99 13 (max 18), classification 2;
#: ranking answers are five to ten indices ("4, 2, 1, 3, 5"); generation keeps the kit's 100 (p99 137).
MAX_GEN_TOKS = {"retrieval": 16, "ranking": 32, "named_entity_recognition": 32, "generation": 100, "classification": 8}
KIT_MAX_GEN_TOKS = 100


def task_commands(batch_size: int) -> dict[str, str]:
    """The equivalent lm_eval CLI of each setting (for the docs; the script calls the same API)."""
    base = "lm_eval --model hf --model_args pretrained=MODEL,dtype=bfloat16 --include_path lm_eval_tasks"
    ours = " ; ".join(
        f"{base} --tasks {OURS_TASKS[t]} --batch_size {batch_size}"
        + (f" --gen_kwargs max_gen_toks={MAX_GEN_TOKS[t]}" if t in MAX_GEN_TOKS else "")
        for t in TASK_TYPES
    )
    return {"defaults": f"{base} --tasks {','.join(DEFAULT_TASKS[t] for t in TASK_TYPES)}", "ours": ours}


def measure_bandwidth(device: str) -> float:
    """Device-to-device copy of 2 GiB, bytes read + written per second (median of 10); 0 on CPU."""
    if device != "cuda":
        return 0.0
    import torch

    n = 2**30
    src = torch.empty(n, dtype=torch.uint8, device="cuda").random_()
    dst = torch.empty_like(src)
    times = []
    for i in range(13):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        dst.copy_(src)
        e.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(s.elapsed_time(e) / 1e3)
    del src, dst
    return 2 * n / statistics.median(times)


def answer_lengths(path: Path, tok) -> dict[str, int]:
    """prompt text (as lm-eval renders it) -> tokens of the true answer + EOS: where a trained model stops."""
    from shop_eval.loaders import load_records
    from shop_eval.prompts import format_answer, official_prompt

    out = {}
    for r in load_records(path).records:
        out[official_prompt(r.input_field).strip()] = (
            len(tok(format_answer(r), add_special_tokens=False)["input_ids"]) + 1
        )
    return out


class ForcedStop:
    """Wraps ``model.generate`` so that row i emits EOS after its true answer's length (a LogitsProcessor):
    random weights never stop by themselves, a trained model stops after its answer.  Rows whose prompt is
    not found are left alone (counted in ``misses``)."""

    def __init__(self, model, tok, lengths: dict[str, int], eos_id: int):
        self.model, self.tok, self.lengths, self.eos_id = model, tok, lengths, eos_id
        self.original = model.generate
        self.misses = 0
        self.active = False

    def __enter__(self):
        self.active = True
        self.model.generate = self.generate
        return self

    def __exit__(self, *exc):
        self.model.generate = self.original
        self.active = False

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        stops = []
        for row, mask in zip(input_ids, attention_mask if attention_mask is not None else input_ids, strict=True):
            ids = row[mask.bool()] if attention_mask is not None else row
            n = self.lengths.get(self.tok.decode(ids, skip_special_tokens=True).strip())
            if n is None:
                self.misses += 1
            stops.append(n if n is not None else 10**9)
        stop_at = torch.tensor(stops, device=input_ids.device)
        start, eos = input_ids.shape[1], self.eos_id

        class _Stop(LogitsProcessor):
            def __call__(self, seq, scores):
                done = (seq.shape[1] - start + 1) >= stop_at  # the step that writes the answer's last token
                if done.any():
                    scores[done] = float("-inf")
                    scores[done, eos] = 0.0
                return scores

        procs = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        procs.append(_Stop())
        return self.original(input_ids=input_ids, attention_mask=attention_mask, logits_processor=procs, **kwargs)


def count_counts(path: Path) -> dict[str, int]:
    n: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            t = json.loads(line)["task_type"]
            n[t] = n.get(t, 0) + 1
    return n


def run_task(lm, task: str, tm, limit: int | None, gen_kwargs: str | None) -> dict:
    import lm_eval

    counter = {"tokens": 0, "calls": 0, "steps": 0}
    if not hasattr(lm, "_bench_original_generate"):
        lm._bench_original_generate = lm._model_generate
    original = lm._bench_original_generate

    def counted(context, max_length, stop, **kwargs):
        out = original(context, max_length, stop, **kwargs)
        new = out[:, context.shape[1] :]
        counter["tokens"] += int((new != common.PAD_ID).sum())
        counter["steps"] += int(new.shape[1])
        counter["calls"] += 1
        return out

    lm._model_generate = counted
    t0 = time.perf_counter()
    res = lm_eval.simple_evaluate(
        model=lm,
        tasks=[task],
        task_manager=tm,
        limit=limit,
        gen_kwargs=gen_kwargs,
        log_samples=True,
        bootstrap_iters=0,
    )
    secs = time.perf_counter() - t0
    # one logged sample per document *and filter pipeline*: keep one per document
    samples = list({s["doc_id"]: s for s in res["samples"][task]}.values())
    gen = counter["tokens"]  # new tokens the model generated (pads after an early stop not counted)
    metrics = {k: v for k, v in res["results"][task].items() if isinstance(v, int | float)}
    return {
        "task": task,
        "examples": len(samples),
        "seconds": round(secs, 3),
        "examples_s": round(len(samples) / secs, 3),
        "generated_tokens": gen,
        "generated_tok_s": round(gen / secs, 1),
        "decode_steps": counter["steps"],
        "generate_calls": counter["calls"],
        "gen_kwargs": gen_kwargs,
        "metrics": metrics,
    }


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=["yi9b", "tiny"], default="yi9b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--data", default=str(SAMPLE))
    ap.add_argument("--per-type", type=int, default=100, help="examples of each task type (ours)")
    ap.add_argument("--default-per-type", type=int, default=12, help="examples of each type timed at defaults")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--settings", default="defaults,ours")
    ap.add_argument("--out")
    ap.add_argument("--dry-run", action="store_true", help="CPU: a few examples, tiny model")
    args = ap.parse_args(argv)
    if args.tiny:
        args.shape = "tiny"
    if args.dry_run:
        args.per_type, args.default_per_type, args.batch_size = min(args.per_type, 4), 2, 4
    return args


def setting_rates(per_setting: dict) -> dict:
    """examples/s and generated tokens/s of every setting; a defaults setting's time is its per-task rate
    times the number of examples the other settings ran of that task (see ``baseline_extrapolated``)."""
    full = {}
    for tasks in per_setting.values():
        for t, r in tasks.items():
            full[t] = max(full.get(t, 0), r["examples"])
    out = {}
    for name, tasks in per_setting.items():
        if not tasks:
            continue
        secs = sum(full[t] / r["examples_s"] for t, r in tasks.items() if r["examples_s"])
        gen = sum(r["generated_tok_s"] * full[t] / r["examples_s"] for t, r in tasks.items() if r["examples_s"])
        n = sum(full[t] for t in tasks)
        out[name] = {"examples": n, "seconds": round(secs, 1), "examples_s": round(n / secs, 3) if secs else None}
        out[name]["generated_tok_s"] = round(gen / secs, 1) if secs else None
    return out


def build_result(args, cfg, per_setting: dict, counts: dict, extra: dict) -> dict:
    ours, base = per_setting.get("ours", {}), per_setting.get("defaults", {})
    ours_s = sum(r["seconds"] for r in ours.values()) if ours else None
    ours_n = sum(r["examples"] for r in ours.values()) if ours else None
    # defaults: each task's measured rate applied to the same number of examples as ours ran
    base_s = None
    if base:
        n_for = {t: (ours[t]["examples"] if t in ours else counts.get(t, 0)) for t in base}
        base_s = sum(n_for[t] / base[t]["examples_s"] for t in base if base[t]["examples_s"])
        base_n = sum(n_for.values())
    ours_rate = ours_n / ours_s if ours_s else None
    base_rate = base_n / base_s if base_s else None
    return {
        "device": common.device_name(),
        "versions": common.versions(),
        "rates": setting_rates(per_setting),
        "settings": {
            "shape": args.shape,
            "model": cfg,
            "data": os.path.relpath(args.data, REPO),
            "per_type": args.per_type,
            "default_per_type": args.default_per_type,
            "batch_size": args.batch_size,
            "max_gen_toks": MAX_GEN_TOKS,
            "kit_max_gen_toks": KIT_MAX_GEN_TOKS,
            "commands": task_commands(args.batch_size),
            **extra,
        },
        "eval_ratio": common.ratio(ours_rate, base_rate),
        "baseline_examples_s": round(base_rate, 3) if base_rate else None,
        "ours_examples_s": round(ours_rate, 3) if ours_rate else None,
        "baseline_extrapolated": {
            "how": "per-task rate measured on --default-per-type examples x the task's example count in ours",
            "seconds": round(base_s, 1) if base_s else None,
        },
        "ours_seconds": round(ours_s, 1) if ours_s else None,
        "tasks": per_setting,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.dry_run and args.shape == "yi9b":
        sys.exit("no GPU: use --tiny --dry-run on a CPU")
    os.environ["SHOP_EVAL_DATA"] = str(Path(args.data).resolve())
    cfg = common.shape(args.shape, args.layers)
    bw = measure_bandwidth(device)
    from bench.train_throughput import build_model

    model = build_model(cfg, device).eval()
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    p = common.count_params(cfg)
    weight_bytes = 2 * p.linear if device == "cuda" else 4 * p.linear
    extra = {
        "hbm_bytes_s_measured": round(bw / 1e9, 1) if bw else None,
        "weight_bytes_per_decode_step": weight_bytes,
        "decode_step_floor_s": round(weight_bytes / bw, 6) if bw else None,
    }
    tm = TaskManager(include_path=str(TASKS_DIR))
    counts = count_counts(Path(args.data))
    per_setting: dict[str, dict] = {}

    def save():
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(build_result(args, cfg, per_setting, counts, extra), indent=1) + "\n")

    settings = [s for s in args.settings.split(",") if s]
    # warm-up (module loads, task building, CUDA kernels): one short untimed call
    HFLM_kw = {"pretrained": model, "tokenizer": tok, "max_length": 4096, "backend": "causal"}
    warm = HFLM(batch_size=1, **HFLM_kw)
    run_task(warm, DEFAULT_TASKS["retrieval"], tm, 1, "max_gen_toks=4")
    forced = ForcedStop(model, tok, answer_lengths(Path(args.data), tok), common.EOS_ID)
    for setting in settings:
        per_setting[setting] = {}
        if device == "cuda":  # "..._nocudnn": the same with torch's cuDNN SDPA backend disabled
            torch.backends.cuda.enable_cudnn_sdp("_nocudnn" not in setting)
        if "_stop" in setting:  # "..._stop": each generation stops after its true answer's length
            forced.__enter__()
        else:
            forced.__exit__()
        if setting.startswith("defaults"):
            lm, limit = HFLM(batch_size=1, **HFLM_kw), args.default_per_type
        else:
            lm, limit = HFLM(batch_size=args.batch_size, **HFLM_kw), args.per_type
        for t in TASK_TYPES:
            if not counts.get(t):
                continue
            default = setting.startswith("defaults")
            task = DEFAULT_TASKS[t] if default else OURS_TASKS[t]
            gen = None if default or t not in MAX_GEN_TOKS else f"max_gen_toks={MAX_GEN_TOKS[t]}"
            r = run_task(lm, task, tm, limit, gen)
            if bw and r["generated_tokens"]:
                b = 1 if default else args.batch_size
                r["decode_limit_tok_s_at_batch"] = round(b * bw / weight_bytes, 1)
            per_setting[setting][t] = r
            print(json.dumps({"setting": setting, **{k: v for k, v in r.items() if k != "metrics"}}), flush=True)
            save()
    forced.__exit__()
    extra["forced_stop_misses"] = forced.misses
    res = build_result(args, cfg, per_setting, counts, extra)
    save()
    print(
        f"eval_ratio {res['eval_ratio']}  defaults {res['baseline_examples_s']} ex/s  ours {res['ours_examples_s']} ex/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
