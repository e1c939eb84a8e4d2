"""Evaluation throughput: lm-eval's hf backend at its defaults, at the project's recommended settings, and
the ``hf-fast`` backend (shop_eval/hf_fast.py) at the same settings.

The ``shop_*`` tasks (lm_eval_tasks/) on a fixed mixed sample (bench/_carry/eval_sample.jsonl: real
EC-Guide rows for five task types, templated ``shop_eval.sample_data`` rows for ranking, which EC-Guide
lacks), the same model as the training benchmark (Yi-9B's shape, random bf16 weights built on the device):

* ``defaults`` — ``lm_eval --model hf`` as it comes: batch size 1, the kit's decoding as the tasks state it
  (``shop_multiple_choice`` generates 1 token, every other task up to 100);
* ``ours`` — the recommended settings: batched (``--batch-size``), multiple choice by log-likelihood
  (``shop_multiple_choice_ll``: one forward pass, no decoding), and a per-task ``max_gen_toks`` set from the
  real answers' lengths (``MAX_GEN_TOKS``: the 99th percentile of the SFT answers' token counts, rounded up,
  with room; generation keeps the kit's 100);
* ``fast`` — the same settings through ``--model hf-fast`` (static KV cache, one CUDA graph per decode step).

Suffixes: ``_nocudnn`` (torch's cuDNN SDPA backend disabled in the process), ``_stop`` (each generation stops
after its true answer's length, as a trained model would: random weights never emit EOS), ``_eager``
(``hf-fast`` without CUDA graphs), ``_nonorm`` (``hf-fast`` with ``fused_norm=false``), ``_effdec``
(``hf-fast`` with ``cudnn_decode=false``: the decode step's attention by the memory-efficient kernel), ``_group`` (the same settings as one run of the ``shopbench_budget`` group,
``lm_eval --tasks shopbench_budget``, instead of one run a task: lm-eval's per-run costs paid once; the whole
run is timed, ``one_run`` and ``whole_sample`` in the result).

All run through ``lm_eval.simple_evaluate`` with an ``HFLM`` (or ``FastHFLM``) wrapping the in-memory model —
the same code path as the CLI's ``--model hf``.  Each task is timed on its own (wall clock, scoring and
lm-eval's per-run bookkeeping included); inside it, the time in the model calls is split into prefill
(the first forward of each generate call, or the log-likelihood forwards) and decoding, and decoding is
reported per step (``decode_ms_per_step``: decode time / decode forwards, batch of ``mean_batch`` rows)
beside the floor: every weight read once per step plus the batch's KV cache (``decode_floor_ms``).  The
defaults are slow enough (one sequence at a time) that they are timed on the first ``--default-per-type``
examples of each task, and their time for the whole sample is that per-task rate times the task's size
(stated in the result as ``baseline_extrapolated``).

``--profile``: one batch of the generation task's prompts (``--profile-batch`` rows, ``--profile-tokens`` new
tokens) through each variant of the hf path (cuDNN SDPA on/off, lm-eval's stop-sequence check removed, a
static cache through lm-eval's ``gen_kwargs``, plain ``model.generate``) and of ``hf-fast``, plus a
``torch.profiler`` table of the recommended setting's decode.  ``--equiv-tiny``: the trained tiny model
(``shop_eval.tiny``) on the GPU, ``hf`` vs ``hf-fast`` on every ``shop_*`` task of the sample: responses and
scores compared.  ``--cb-probe``: the same profile batch through transformers' continuous batching
(``generate_batch``, paged attention).  Responses of every pair of settings run are compared
(``equivalence``).

    python bench/eval_throughput.py --settings ours_stop,fast_stop --profile --out bench/results/eval_h200.json
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
#: the recommended settings as one lm-eval run: the group of the same tasks with the same budgets
BUDGET_GROUP = "shopbench_budget"
KIT_MAX_GEN_TOKS = 100


def budget_group_max_gen_toks() -> dict[str, int]:
    """Per-task decoding budget of the recommended settings, task type -> max_gen_toks, read from their one
    definition, the ``shopbench_budget`` group (lm_eval_tasks/_shopbench_budget.yaml).  Answers' token counts
    in the SFT data (bench/data/sft_lengths.json, EOS included): retrieval p99 10, NER p99 13 (max 18),
    classification 2; ranking answers are five to ten indices; generation keeps the kit's 100 (p99 137)."""
    import yaml

    group = yaml.safe_load((TASKS_DIR / f"_{BUDGET_GROUP}.yaml").read_text())
    task_type = {v: k for k, v in OURS_TASKS.items()}
    out = {}
    for entry in group["task"]:
        if isinstance(entry, dict):
            out[task_type[entry["task"]]] = int(entry["generation_kwargs"]["max_gen_toks"])
    return out


MAX_GEN_TOKS = budget_group_max_gen_toks()


def task_commands(batch_size: int) -> dict[str, str]:
    """The equivalent lm_eval CLI of each setting (for the docs; the script calls the same API)."""
    base = "lm_eval --model hf --model_args pretrained=MODEL,dtype=bfloat16 --include_path lm_eval_tasks"
    fast = "python -m shop_eval.hf_fast --model hf-fast --model_args pretrained=MODEL,dtype=bfloat16"
    fast += " --include_path lm_eval_tasks"

    def per_task(prefix: str) -> str:
        return " ; ".join(
            f"{prefix} --tasks {OURS_TASKS[t]} --batch_size {batch_size}"
            + (f" --gen_kwargs max_gen_toks={MAX_GEN_TOKS[t]}" if t in MAX_GEN_TOKS else "")
            for t in TASK_TYPES
        )

    return {
        "defaults": f"{base} --tasks {','.join(DEFAULT_TASKS[t] for t in TASK_TYPES)}",
        "ours": per_task(base),
        "fast": per_task(fast),
        "ours_group": f"{base} --tasks {BUDGET_GROUP} --batch_size {batch_size}",
        "fast_group": f"{fast} --tasks {BUDGET_GROUP} --batch_size {batch_size}",
    }


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
    not found are left alone (counted in ``misses``).  ``FastForcedStop`` does the same for ``hf-fast``."""

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

    def stops_for(self, input_ids, attention_mask) -> list[int]:
        """Per row: the number of new tokens after which it must have emitted EOS (10**9: not found)."""
        stops = []
        for row, mask in zip(input_ids, attention_mask if attention_mask is not None else input_ids, strict=True):
            ids = row[mask.bool()] if attention_mask is not None else row
            n = self.lengths.get(self.tok.decode(ids, skip_special_tokens=True).strip())
            if n is None:
                self.misses += 1
            stops.append(n if n is not None else 10**9)
        return stops

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        stop_at = torch.tensor(self.stops_for(input_ids, attention_mask), device=input_ids.device)
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


def bench_fast_class():
    """``FastHFLM`` with ``ForcedStop``'s rule applied on the device, inside the captured step: the row's
    EOS logit is the only finite one once ``step + 1 >= its stop``."""
    import torch

    from shop_eval.hf_fast import FastHFLM

    class BenchFastHFLM(FastHFLM):
        forced: ForcedStop | None = None

        def _model_generate(self, context, max_length, stop, **kwargs):
            if not hasattr(self, "_stop_buf"):
                self._stop_buf = torch.full((8192,), 10**9, dtype=torch.long, device=context.device)
            self._stop_buf.fill_(10**9)
            if self.forced is not None and self.forced.active:
                stops = self.forced.stops_for(context, kwargs.get("attention_mask"))
                self._stop_buf[: len(stops)] = torch.tensor(stops, device=context.device)
            return super()._model_generate(context, max_length, stop, **kwargs)

        def _greedy_token(self, logits, step):
            done = (step + 1) >= self._stop_buf[: logits.shape[0]]
            forced = torch.full_like(logits, float("-inf"))
            forced[:, common.EOS_ID] = 0.0
            return super()._greedy_token(torch.where(done[:, None], forced, logits), step)

    return BenchFastHFLM


def count_counts(path: Path) -> dict[str, int]:
    n: dict[str, int] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            t = json.loads(line)["task_type"]
            n[t] = n.get(t, 0) + 1
    return n


class Clock:
    """Time inside the model: ``_model_generate`` calls (their width, batch and prompt length) and, for the
    hf path, the prefill forward of each (the first forward with more than one input position, timed with
    device syncs); log-likelihood forwards count as prefill.  ``hf-fast`` reports its own split."""

    def __init__(self, lm, sync):
        self.lm, self.sync = lm, sync
        self.calls: list[dict] = []
        self.forward_prefill_s = 0.0
        self.ll_forward_s = 0.0
        self._in_generate = False
        self._prefill_done = False
        if not hasattr(lm, "_bench_original_generate"):
            lm._bench_original_generate = lm._model_generate
            lm._bench_original_call = lm._model_call
        model = lm.model
        if not hasattr(model, "_bench_original_forward"):
            model._bench_original_forward = model.forward
        self.model = model

    def __enter__(self):
        lm, model, clock = self.lm, self.model, self
        gen, call, fwd = lm._bench_original_generate, lm._bench_original_call, model._bench_original_forward

        def forward(*args, **kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            timed = clock._in_generate and not clock._prefill_done and ids is not None and ids.shape[1] > 1
            if not timed:
                return fwd(*args, **kwargs)
            clock.sync()
            t0 = time.perf_counter()
            out = fwd(*args, **kwargs)
            clock.sync()
            clock.forward_prefill_s += time.perf_counter() - t0
            clock._prefill_done = True
            return out

        def model_generate(context, max_length, stop, **kwargs):
            n_stats = len(getattr(lm, "stats", []))
            clock._in_generate, clock._prefill_done = True, False
            before = clock.forward_prefill_s
            clock.sync()
            t0 = time.perf_counter()
            out = gen(context, max_length, stop, **kwargs)
            clock.sync()
            secs = time.perf_counter() - t0
            clock._in_generate = False
            b, t = context.shape
            row = {"batch": b, "prompt_len": t, "width": int(out.shape[1] - t), "seconds": secs}
            new_stats = getattr(lm, "stats", [])[n_stats:]
            if new_stats and new_stats[-1].path == "fast":
                st = new_stats[-1]
                row.update(prefill_s=st.prefill_s, capture_s=st.capture_s, graph=st.graph, path="fast")
                row["decode_s"] = st.decode_s
            else:
                row["prefill_s"] = clock.forward_prefill_s - before
                row.update(capture_s=0.0, graph=False, path=new_stats[-1].path if new_stats else "generate")
                row["decode_s"] = max(0.0, secs - row["prefill_s"])
            clock.calls.append(row)
            return out

        def model_call(*args, **kwargs):
            clock.sync()
            t0 = time.perf_counter()
            out = call(*args, **kwargs)
            clock.sync()
            clock.ll_forward_s += time.perf_counter() - t0
            return out

        lm._model_generate, lm._model_call, model.forward = model_generate, model_call, forward
        return self

    def __exit__(self, *exc):
        self.lm._model_generate = self.lm._bench_original_generate
        self.lm._model_call = self.lm._bench_original_call
        self.model.forward = self.model._bench_original_forward

    def summary(self, floor: dict | None) -> dict:
        calls = self.calls
        steps = sum(c["width"] for c in calls)
        decode_forwards = sum(max(0, c["width"] - 1) for c in calls)
        decode_s = sum(c["decode_s"] for c in calls)
        out = {
            "generate_calls": len(calls),
            "decode_steps": steps,
            "decode_forwards": decode_forwards,
            "prefill_seconds": round(sum(c["prefill_s"] for c in calls) + self.ll_forward_s, 4),
            "decode_seconds": round(decode_s, 4),
            "capture_seconds": round(sum(c["capture_s"] for c in calls), 4),
            "model_seconds": round(sum(c["seconds"] for c in calls) + self.ll_forward_s, 4),
            "mean_batch": round(sum(c["batch"] * max(0, c["width"] - 1) for c in calls) / decode_forwards, 1)
            if decode_forwards
            else None,
            "decode_ms_per_step": round(1e3 * decode_s / decode_forwards, 3) if decode_forwards else None,
            "paths": sorted({c["path"] for c in calls}),
            "graphs": sum(bool(c["graph"]) for c in calls),
        }
        if floor and decode_forwards and floor.get("bytes_s"):
            # every weight once + the batch's KV cache (padded prompt + half the new tokens, on average)
            step_bytes = sum(
                (floor["weight_bytes"] + floor["kv_bytes_per_token"] * c["batch"] * (c["prompt_len"] + c["width"] / 2))
                * max(0, c["width"] - 1)
                for c in calls
            )
            out["decode_floor_ms"] = round(1e3 * step_bytes / decode_forwards / floor["bytes_s"], 3)
            out["decode_floor_weights_only_ms"] = round(1e3 * floor["weight_bytes"] / floor["bytes_s"], 3)
            out["decode_vs_floor"] = round(out["decode_ms_per_step"] / out["decode_floor_ms"], 2)
        return out


def task_samples(lm, rows: list[dict]) -> tuple[list[dict], int]:
    """A task's logged samples, one per document (lm-eval logs one per document *and filter pipeline*), and
    the tokens in their generated texts (pads after an early stop not counted)."""
    samples = list({s["doc_id"]: s for s in rows}.values())
    generated = sum(
        len(lm.tok_encode(s["resps"][0][0], add_special_tokens=False))
        for s in samples
        if isinstance(s["resps"][0][0], str)
    )
    return samples, generated


def run_task(lm, task: str, tm, limit: int | None, gen_kwargs: str | None, sync=lambda: None, floor=None):
    """One task through ``simple_evaluate``: wall clock, the model-time split, the scores and the responses
    (``_responses``: doc_id -> the first response, kept out of the result file)."""
    import lm_eval

    t0 = time.perf_counter()
    with Clock(lm, sync) as clock:
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
    samples, new_tokens = task_samples(lm, res["samples"][task])
    metrics = {k: v for k, v in res["results"][task].items() if isinstance(v, int | float)}
    inner = clock.summary(floor)
    return {
        "task": task,
        "examples": len(samples),
        "seconds": round(secs, 3),
        "examples_s": round(len(samples) / secs, 3),
        # tokens in the returned texts (pads after an early stop not counted)
        "generated_tokens": new_tokens,
        "generated_tok_s": round(new_tokens / secs, 1),
        **inner,
        "gen_kwargs": gen_kwargs,
        "metrics": metrics,
        "_responses": {s["doc_id"]: response(s) for s in samples},
    }


def run_group(lm, tm, limit: int | None, sync=lambda: None, floor=None, types=None):
    """The recommended settings as one run: the ``shopbench_budget`` group through one ``simple_evaluate``
    call (as ``lm_eval --tasks shopbench_budget``: lm-eval's per-run costs paid once).  Returns the whole
    run's wall clock and model-time split, and per task type its examples, scores and responses (``_tasks``,
    the shape ``equivalence`` compares)."""
    import lm_eval

    t0 = time.perf_counter()
    with Clock(lm, sync) as clock:
        res = lm_eval.simple_evaluate(
            model=lm, tasks=[BUDGET_GROUP], task_manager=tm, limit=limit, log_samples=True, bootstrap_iters=0
        )
    secs = time.perf_counter() - t0
    task_type = {v: k for k, v in OURS_TASKS.items()}
    per_task, n, new_tokens = {}, 0, 0
    for task, rows in res["samples"].items():
        t = task_type[task]
        if types is not None and t not in types:
            continue
        samples, generated = task_samples(lm, rows)
        n, new_tokens = n + len(samples), new_tokens + generated
        per_task[t] = {
            "task": task,
            "examples": len(samples),
            "metrics": {k: v for k, v in res["results"][task].items() if isinstance(v, int | float)},
            "_responses": {s["doc_id"]: response(s) for s in samples},
        }
    return {
        "tasks_run": BUDGET_GROUP,
        "examples": n,
        "seconds": round(secs, 3),
        "examples_s": round(n / secs, 3),
        "generated_tokens": new_tokens,
        "generated_tok_s": round(new_tokens / secs, 1),
        **clock.summary(floor),
        "calls": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.items()} for c in clock.calls],
        "_tasks": per_task,
    }


def cprofile_top(prof, n: int = 40) -> list[dict]:
    """The ``n`` functions of a cProfile run with the most cumulative time."""
    import pstats

    st = pstats.Stats(prof)
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append(
            {"function": f"{Path(file).name}:{line}({fn})", "calls": nc, "own_s": round(tt, 4), "cum_s": round(ct, 4)}
        )
    return sorted(rows, key=lambda r: -r["cum_s"])[:n]


def response(sample: dict) -> str:
    """A logged sample's answer: the generated text, or for log-likelihood the index of the option chosen
    (``shop_eval.scoring.samples.response_of``, the project's one reading of an lm-eval sample)."""
    from shop_eval.scoring.samples import response_of

    return response_of(sample, "lm-eval samples", f"doc {sample.get('doc_id')}")


def compare_responses(a: dict, b: dict) -> dict:
    """Identical responses (and, for text, the mean share of the reference's characters before the first
    difference) between two runs of one task."""
    ids = sorted(set(a) & set(b))
    same = [i for i in ids if a[i] == b[i]]
    prefix = []
    for i in ids:
        if isinstance(a[i], str) and a[i]:
            prefix.append(len(os.path.commonprefix([a[i], b[i]])) / len(a[i]))
    out = {"compared": len(ids), "identical": len(same)}
    out["identical_share"] = round(len(same) / len(ids), 4) if ids else None
    if prefix:
        out["mean_common_prefix_share"] = round(sum(prefix) / len(prefix), 3)
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=["yi9b", "tiny"], default="yi9b")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--data", default=str(SAMPLE))
    ap.add_argument("--per-type", type=int, default=100, help="examples of each task type (ours, fast)")
    ap.add_argument("--default-per-type", type=int, default=12, help="examples of each type timed at defaults")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--settings", default="defaults,ours")
    ap.add_argument("--task-types", default=",".join(TASK_TYPES), help="task types the settings run")
    ap.add_argument("--profile", action="store_true", help="one generation batch through every variant")
    ap.add_argument("--profile-batch", type=int, default=64)
    ap.add_argument("--profile-tokens", type=int, default=32)
    ap.add_argument("--profile-variants", default="", help="comma list of profile variants (default: all)")
    ap.add_argument("--responses", help="write every setting's responses (task -> doc id -> text) to this JSON")
    ap.add_argument("--equiv-tiny", action="store_true", help="hf vs hf-fast on the trained tiny model")
    ap.add_argument("--cb-probe", action="store_true", help="transformers' generate_batch on the profile batch")
    ap.add_argument("--cb-timeout", type=int, default=90, help="seconds the --cb-probe may take")
    ap.add_argument("--cprofile", metavar="SETTING", help="cProfile this _group setting's run (top functions)")
    ap.add_argument("--out")
    ap.add_argument("--dry-run", action="store_true", help="CPU: a few examples, tiny model")
    args = ap.parse_args(argv)
    if args.cprofile and ("_group" not in args.cprofile or args.cprofile not in args.settings.split(",")):
        ap.error(f"--cprofile {args.cprofile}: name one of the _group settings in --settings")
    types = {t for t in args.task_types.split(",") if t}
    if any("_group" in s for s in args.settings.split(",")) and types != set(TASK_TYPES):
        ap.error("a _group setting runs the whole shopbench_budget group: leave --task-types at all six types")
    if args.tiny:
        args.shape = "tiny"
    if args.dry_run:
        args.per_type, args.default_per_type, args.batch_size = min(args.per_type, 4), 2, 4
        args.profile_batch, args.profile_tokens = min(args.profile_batch, 4), min(args.profile_tokens, 4)
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
        model_s = [r.get("model_seconds") for r in tasks.values()]
        if not name.startswith("defaults") and all(m is not None for m in model_s):
            out[name]["model_seconds"] = round(sum(model_s), 2)  # time inside the model calls
    return out


def whole_sample(rates: dict, one_run: dict, source: str | None = None) -> dict | None:
    """The whole mixed sample, wall clock: each hf-fast setting that ran the budget group in one run against
    the recommended hf settings as they are run now (one run a task, ``ours_stop``), and like for like
    against hf in one run of the group (``ours_stop_group``).  In merged results only the one-run settings of
    the baseline's own call (``source``) are compared."""
    per_task = rates.get("ours_stop") or rates.get("ours")
    one_run = {k: g for k, g in one_run.items() if source is None or g.get("source") in (None, source)}
    hf_one = one_run.get("ours_stop_group") or one_run.get("ours_group")
    out = {}
    if per_task:
        out["recommended_per_task_runs_s"] = per_task["seconds"]
    if hf_one:
        out["hf_one_run_s"] = hf_one["seconds"]
    for name, g in one_run.items():
        if not name.startswith("fast"):
            continue
        row = {"seconds": g["seconds"], "model_seconds": g["model_seconds"]}
        if per_task:
            row["ratio_vs_recommended"] = common.ratio(per_task["seconds"], g["seconds"])
        if hf_one:
            row["ratio_one_run_like_for_like"] = common.ratio(hf_one["seconds"], g["seconds"])
            row["model_time_ratio_one_run"] = common.ratio(hf_one["model_seconds"], g["model_seconds"])
        out[name] = row
    return out if any(k.startswith("fast") for k in out) else None


def headline(per_setting: dict) -> tuple[str | None, str | None]:
    """(baseline, improved): the recommended hf settings vs hf-fast at the same settings, stopping regime
    first; else the recommended settings vs the defaults."""
    for base, ours in (("ours_stop", "fast_stop"), ("ours", "fast"), ("defaults_stop", "ours_stop")):
        if per_setting.get(base) and per_setting.get(ours):
            return base, ours
    return ("defaults", "ours") if per_setting.get("defaults") and per_setting.get("ours") else (None, None)


def build_result(args, cfg, per_setting: dict, counts: dict, extra: dict) -> dict:
    base_name, ours_name = headline(per_setting)
    ours, base = per_setting.get(ours_name or "", {}), per_setting.get(base_name or "", {})
    ours_s = sum(r["seconds"] for r in ours.values()) if ours else None
    ours_n = sum(r["examples"] for r in ours.values()) if ours else None
    base_s = base_n = None
    if base:
        # a defaults baseline: each task's measured rate applied to the same number of examples as ours ran
        n_for = {t: (ours[t]["examples"] if t in ours else counts.get(t, 0)) for t in base}
        base_s = sum(n_for[t] / base[t]["examples_s"] for t in base if base[t]["examples_s"])
        base_n = sum(n_for.values())
    ours_rate = ours_n / ours_s if ours_s else None
    base_rate = base_n / base_s if base_s else None
    rates = setting_rates(per_setting)
    tasks = {
        s: {t: {k: v for k, v in r.items() if not k.startswith("_")} for t, r in ts.items()}
        for s, ts in per_setting.items()
    }
    return {
        "device": common.device_name(),
        "versions": common.versions(),
        "rates": rates,
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
            "headline": {"baseline": base_name, "ours": ours_name},
            **{
                k: v
                for k, v in extra.items()
                if k not in ("profile", "equivalence", "equiv_tiny", "cb_probe", "calls", "one_run", "cprofile")
            },
        },
        "eval_ratio": common.ratio(ours_rate, base_rate),
        "baseline_examples_s": round(base_rate, 3) if base_rate else None,
        "ours_examples_s": round(ours_rate, 3) if ours_rate else None,
        "model_time_ratio": common.ratio(
            rates.get(base_name or "", {}).get("model_seconds"), rates.get(ours_name or "", {}).get("model_seconds")
        ),
        "baseline_extrapolated": {
            "how": "defaults only: per-task rate measured on --default-per-type examples x the task's example count",
            "seconds": round(base_s, 1) if base_s else None,
        },
        "ours_seconds": round(ours_s, 1) if ours_s else None,
        "whole_sample": whole_sample(
            rates, extra.get("one_run") or {}, next(iter(base.values())).get("source") if base else None
        ),
        "equivalence": extra.get("equivalence"),
        "profile": extra.get("profile"),
        "equiv_tiny": extra.get("equiv_tiny"),
        "cb_probe": extra.get("cb_probe"),
        "calls": extra.get("calls"),
        "one_run": {
            k: {kk: vv for kk, vv in g.items() if kk != "_tasks"} for k, g in (extra.get("one_run") or {}).items()
        }
        or None,
        "cprofile": extra.get("cprofile"),
        "tasks": tasks,
    }


# ---------------------------------------------------------------------------------------- profile


def profile_prompts(data: Path, n: int) -> list[str]:
    from shop_eval.loaders import load_records
    from shop_eval.prompts import official_prompt

    rows = [r for r in load_records(data).records if r.task_type == "generation"]
    return [official_prompt(r.input_field) for r in rows[:n]]


def _requests(prompts: list[str], new_tokens: int, extra: dict | None = None):
    from lm_eval.api.instance import Instance

    kw = {"until": [], "do_sample": False, "max_gen_toks": new_tokens, **(extra or {})}
    return [Instance("generate_until", {}, (p, dict(kw)), i) for i, p in enumerate(prompts)]


def profile_stage(model, tok, prompts, args, floor, device) -> dict:
    """One batch of ``len(prompts)`` rows, ``--profile-tokens`` new tokens, through each variant."""
    import torch
    from lm_eval.models import huggingface as hf_mod
    from lm_eval.models.huggingface import HFLM

    from shop_eval.hf_fast import FastHFLM

    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    kw = {"pretrained": model, "tokenizer": tok, "max_length": 4096, "backend": "causal", "batch_size": len(prompts)}
    n_new = args.profile_tokens
    static = {"cache_implementation": "static", "disable_compile": True}
    original_criteria = hf_mod.stop_sequences_criteria

    def no_criteria(*a, **k):
        from transformers import StoppingCriteriaList

        return StoppingCriteriaList([])

    variants_all = [
        ("hf", HFLM, {}, True, False, None),  # (name, class, extra lm kwargs, cudnn, drop lm-eval's check, gen kw)
        ("hf_nocudnn", HFLM, {}, False, False, None),
        ("hf_static_cache", HFLM, {}, True, False, static),
        ("hf_nocudnn_nostopcheck", HFLM, {}, False, True, None),
        ("hf_nocudnn_nostopcheck_static", HFLM, {}, False, True, static),
        ("generate_plain_nocudnn", None, {}, False, True, None),
        ("fast_eager", FastHFLM, {"cuda_graphs": False}, True, False, None),
        ("fast", FastHFLM, {}, True, False, None),
        ("fast_nocudnn", FastHFLM, {}, False, False, None),
    ]
    wanted = [v for v in args.profile_variants.split(",") if v]
    variants = [v for v in variants_all if not wanted or v[0] in wanted]
    out: dict = {"batch": len(prompts), "new_tokens": n_new, "variants": {}}
    for name, cls, extra_kw, cudnn, drop_check, gen_extra in variants:
        if cuda:
            torch.backends.cuda.enable_cudnn_sdp(cudnn)
        hf_mod.stop_sequences_criteria = no_criteria if drop_check else original_criteria
        try:
            if cls is None:  # model.generate on lm-eval's padded batch, nothing of lm-eval's loop
                lm = HFLM(**kw)
                ids, mask = lm.tok_batch_encode(prompts)
                ids, mask = ids.to(model.device), mask.to(model.device)
                for n in (2, n_new):
                    sync()
                    t0 = time.perf_counter()
                    model.generate(
                        input_ids=ids, attention_mask=mask, max_new_tokens=1, do_sample=False, pad_token_id=0
                    )
                    sync()
                    pre = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    res = model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        max_new_tokens=n,
                        min_new_tokens=n,
                        do_sample=False,
                        pad_token_id=0,
                    )
                    sync()
                    secs = time.perf_counter() - t0
                width = res.shape[1] - ids.shape[1]
                row = {"seconds": round(secs, 4), "prefill_s": round(pre, 4), "width": width}
                row["decode_ms_per_step"] = round(1e3 * (secs - pre) / max(1, width - 1), 3)
            else:
                lm = cls(**kw, **extra_kw)
                lm.generate_until(_requests(prompts, 2, gen_extra), disable_tqdm=True)  # warm-up (+ graph capture)
                with Clock(lm, sync) as clock:
                    t0 = time.perf_counter()
                    lm.generate_until(_requests(prompts, n_new, gen_extra), disable_tqdm=True)
                    secs = time.perf_counter() - t0
                s = clock.summary(floor)
                row = {"seconds": round(secs, 4), "prefill_s": s["prefill_seconds"], "width": s["decode_steps"]}
                row.update(
                    {
                        k: s[k]
                        for k in ("decode_ms_per_step", "decode_floor_ms", "decode_vs_floor", "paths", "graphs")
                        if k in s
                    }
                )
                row["capture_s"] = s["capture_seconds"]
                if isinstance(lm, FastHFLM):
                    row["capture_s_first_call"] = round(sum(st.capture_s for st in lm.stats[:1]), 3)
                    row["capture_errors"] = lm.capture_errors[:2]
                    lm.release()
            out["variants"][name] = row
            print(json.dumps({"profile": name, **row}), flush=True)
        except Exception as exc:  # noqa: BLE001 - one variant failing must not lose the others
            out["variants"][name] = {"error": repr(exc)[:400]}
            print(json.dumps({"profile": name, "error": repr(exc)[:400]}), flush=True)
        finally:
            hf_mod.stop_sequences_criteria = original_criteria
            if cuda:
                torch.backends.cuda.enable_cudnn_sdp(True)
                torch.cuda.empty_cache()
    if not wanted or "hf" in wanted:
        out["table"] = profile_table(model, tok, prompts, device)
    return out


def profile_table(model, tok, prompts, device, n_new: int = 8) -> dict:
    """torch.profiler over one recommended-settings generate call of ``n_new`` tokens: the top operators
    by self CPU time and by device time, and the share of the step spent in a few named places."""
    from lm_eval.models import utils_hf
    from lm_eval.models.huggingface import HFLM
    from torch.profiler import ProfilerActivity, profile, record_function

    lm = HFLM(pretrained=model, tokenizer=tok, max_length=4096, backend="causal", batch_size=len(prompts))
    lm.generate_until(_requests(prompts, 2), disable_tqdm=True)
    original_call = utils_hf.MultiTokenEOSCriteria.__call__

    def labelled(self, *a, **k):
        with record_function("lm_eval.MultiTokenEOSCriteria"):
            return original_call(self, *a, **k)

    utils_hf.MultiTokenEOSCriteria.__call__ = labelled
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    try:
        with profile(activities=acts) as prof:
            lm.generate_until(_requests(prompts, n_new), disable_tqdm=True)
    finally:
        utils_hf.MultiTokenEOSCriteria.__call__ = original_call
    ka = prof.key_averages()
    dev_attr = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"

    def top(attr: str, n: int = 15) -> list[dict]:
        rows = sorted(ka, key=lambda e: getattr(e, attr, 0) or 0, reverse=True)[:n]
        return [
            {
                "op": e.key[:80],
                "calls": e.count,
                "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2),
                "self_device_ms": round((getattr(e, "self_device_time_total", 0) or 0) / 1e3, 2),
                "cpu_total_ms": round(e.cpu_time_total / 1e3, 2),
            }
            for e in rows
        ]

    named = {}
    for e in ka:
        if e.key in ("lm_eval.MultiTokenEOSCriteria", "aten::_scaled_dot_product_cudnn_attention",
                     "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_flash_attention",
                     "aten::cat", "aten::copy_", "aten::mm", "aten::bmm", "aten::index_select", "aten::item",
                     "aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaLaunchKernel", "aten::clone"):  # fmt: skip
            named[e.key] = {"calls": e.count, "cpu_total_ms": round(e.cpu_time_total / 1e3, 2),
                            "self_device_ms": round((getattr(e, "self_device_time_total", 0) or 0) / 1e3, 2)}  # fmt: skip
    return {
        "new_tokens": n_new,
        "batch": len(prompts),
        "top_self_cpu": top("self_cpu_time_total"),
        "top_device": top(dev_attr),
        "named": named,
    }


def cb_probe(model, tok, prompts, new_tokens: int, device: str) -> dict:
    """transformers' continuous batching (``generate_batch``: paged attention, its own scheduler) on the
    profile batch, greedy, ``new_tokens`` each, against hf-fast on the same batch."""
    import torch
    from transformers import GenerationConfig

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    ids = [tok(p)["input_ids"] for p in prompts]
    gc = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=common.PAD_ID)
    out: dict = {"batch": len(prompts), "new_tokens": new_tokens}
    for label in ("first", "second"):
        sync()
        t0 = time.perf_counter()
        res = model.generate_batch(inputs=ids, generation_config=gc, progress_bar=False)
        sync()
        secs = time.perf_counter() - t0
        toks = sum(len(r.generated_tokens) for r in res.values())
        out[label] = {"seconds": round(secs, 3), "generated_tokens": toks, "tok_s": round(toks / secs, 1)}
        out[label]["ms_per_step_incl_prefill"] = round(1e3 * secs / new_tokens, 2)
        print(json.dumps({"cb_probe": label, **out[label]}), flush=True)
    return out


# ---------------------------------------------------------------------------------------- equivalence


def equiv_tiny(work: Path, data: Path, device: str, batch_size: int, limit: int | None) -> dict:
    """The trained tiny model (bf16 on a GPU), ``hf`` vs ``hf-fast`` on every shop_* task of ``data``, as
    built (it stops after a few tokens) and with its EOS id moved to an unused token (every row runs to
    max_gen_toks): identical responses and scores."""
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from shop_eval.hf_fast import FastHFLM
    from shop_eval.tiny import build_tiny_model

    tiny = build_tiny_model(work / "tiny", seed=0, quick=True)
    long = work / "tiny_long"
    long.mkdir(parents=True, exist_ok=True)
    for f in Path(tiny).iterdir():
        (long / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((long / "tokenizer_config.json").read_text())
    cfg["eos_token"] = "<|end|>"
    (long / "tokenizer_config.json").write_text(json.dumps(cfg))
    from transformers import AutoTokenizer

    end_id = AutoTokenizer.from_pretrained(long).convert_tokens_to_ids("<|end|>")
    gen = json.loads((long / "generation_config.json").read_text())
    gen["eos_token_id"] = end_id
    (long / "generation_config.json").write_text(json.dumps(gen))

    tm = TaskManager(include_path=str(TASKS_DIR))
    tasks = tm.match_tasks(["shop_*"])
    dtype = "bfloat16" if device == "cuda" else "float32"
    result: dict = {"dtype": dtype, "tasks": tasks, "models": {}}
    for label, path in (("as_built", tiny), ("no_early_eos", long)):
        runs = {}
        for name, cls in (("hf", HFLM), ("hf-fast", FastHFLM)):
            lm = cls(pretrained=str(path), dtype=dtype, device=device, batch_size=batch_size)
            t0 = time.perf_counter()
            runs[name] = lm_eval.simple_evaluate(
                model=lm, tasks=tasks, task_manager=tm, limit=limit, log_samples=True, bootstrap_iters=0
            )
            runs[name]["_seconds"] = time.perf_counter() - t0
            if isinstance(lm, FastHFLM):
                runs[name]["_paths"] = sorted({s.path for s in lm.stats})
                runs[name]["_graphs"] = sum(s.graph for s in lm.stats)
            del lm
            if device == "cuda":
                torch.cuda.empty_cache()
        per_task, n, same = {}, 0, 0
        for t in tasks:
            a = {s["doc_id"]: response(s) for s in runs["hf"]["samples"][t]}
            b = {s["doc_id"]: response(s) for s in runs["hf-fast"]["samples"][t]}
            c = compare_responses(a, b)
            c["scores_identical"] = runs["hf"]["results"][t] == runs["hf-fast"]["results"][t]
            per_task[t] = c
            n, same = n + c["compared"], same + c["identical"]
        result["models"][label] = {
            "responses": n,
            "identical": same,
            "scores_identical_all_tasks": all(c["scores_identical"] for c in per_task.values()),
            "seconds": {k: round(v["_seconds"], 2) for k, v in runs.items()},
            "fast_paths": runs["hf-fast"].get("_paths"),
            "fast_graph_calls": runs["hf-fast"].get("_graphs"),
            "tasks": per_task,
        }
        print(
            json.dumps({"equiv_tiny": label, **{k: v for k, v in result["models"][label].items() if k != "tasks"}}),
            flush=True,
        )
    return result


# ---------------------------------------------------------------------------------------- merging calls


def merge_results(runs: list[tuple[str, dict]]) -> dict:
    """Several device calls' results (label, result) into one: a setting or profile variant measured again
    in a later call replaces the earlier one (each keeps ``source``: its call's label); the tiny-model
    equivalence and the continuous-batching probe are the latest call's that has them; ``equivalence``
    (pairs of settings compared within one call) is kept per call."""
    per_setting: dict[str, dict] = {}
    profile: dict = {}
    extra: dict = {"calls": {}, "one_run": {}}
    equivalence_by_call = {}
    for label, res in runs:
        merged = bool(res.get("calls"))  # an earlier merge: its entries keep their own sources (**row wins)
        for name, tasks in res["tasks"].items():
            per_setting[name] = {t: {"source": label, **r} for t, r in tasks.items()}
        if res.get("profile"):
            for name, row in res["profile"]["variants"].items():
                profile.setdefault("variants", {})[name] = {"source": label, **row}
            profile.update({k: v for k, v in res["profile"].items() if k != "variants"})
        for key in ("equiv_tiny", "cb_probe", "cprofile"):
            if res.get(key):
                extra[key] = {"source": label, **res[key]}
        for name, g in (res.get("one_run") or {}).items():
            extra["one_run"][name] = {"source": label, **g}
        if merged:
            equivalence_by_call.update(res.get("equivalence") or {})
            extra["calls"].update(res["calls"])
            continue
        if res.get("equivalence"):
            equivalence_by_call[label] = res["equivalence"]
        extra["calls"][label] = {k: res["settings"].get(k) for k in ("hbm_bytes_s_measured", "decode_step_floor_s")}
        extra["calls"][label]["settings_run"] = sorted([*res["tasks"], *(res.get("one_run") or {})])
    last = runs[-1][1]
    keep = ("hbm_bytes_s_measured", "weight_bytes_per_decode_step", "kv_bytes_per_token", "decode_step_floor_s")
    extra.update({k: last["settings"].get(k) for k in keep})
    extra["profile"] = profile or None
    extra["equivalence"] = equivalence_by_call or None
    settings = last["settings"]

    class Args:  # what build_result reads from the command line
        shape = settings["shape"]
        data = str(REPO / settings["data"])
        per_type, default_per_type, batch_size = (
            settings["per_type"],
            settings["default_per_type"],
            settings["batch_size"],
        )

    out = build_result(Args, settings["model"], per_setting, {}, extra)
    out["device"], out["versions"] = last["device"], last["versions"]
    return out


# ---------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "merge":  # merge LABEL=RUN.json ... --out RESULT.json
        ap = argparse.ArgumentParser(prog="eval_throughput.py merge")
        ap.add_argument("runs", nargs="+", help="LABEL=PATH of each call's result, oldest first")
        ap.add_argument("--out", required=True)
        m = ap.parse_args(argv[1:])
        runs = [(r.split("=", 1)[0], json.loads(Path(r.split("=", 1)[1]).read_text())) for r in m.runs]
        Path(m.out).write_text(json.dumps(merge_results(runs), indent=1) + "\n")
        return 0
    args = parse_args(argv)
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.dry_run and args.shape == "yi9b":
        sys.exit("no GPU: use --tiny --dry-run on a CPU")
    os.environ["SHOP_EVAL_DATA"] = str(Path(args.data).resolve())
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    cfg = common.shape(args.shape, args.layers)
    extra: dict = {}
    per_setting: dict[str, dict] = {}
    groups: dict[str, dict] = {}  # "_group" settings: one run of the budget group
    extra["one_run"] = groups
    counts = count_counts(Path(args.data))

    def save():
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(build_result(args, cfg, per_setting, counts, extra), indent=1) + "\n")

    if args.equiv_tiny:  # before the big model: it needs little memory and no random weights
        import tempfile

        with tempfile.TemporaryDirectory() as work:
            limit = 4 if args.dry_run else None
            extra["equiv_tiny"] = equiv_tiny(Path(work), Path(args.data), device, args.batch_size, limit)
        save()

    bw = measure_bandwidth(device)
    from bench.train_throughput import build_model
    from shop_eval.hf_fast import kv_bytes_per_token

    model = build_model(cfg, device).eval()
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    p = common.count_params(cfg)
    weight_bytes = 2 * p.linear if device == "cuda" else 4 * p.linear
    kvb = kv_bytes_per_token(model.config, 2 if device == "cuda" else 4)
    floor = {"weight_bytes": weight_bytes, "kv_bytes_per_token": kvb, "bytes_s": bw}
    extra.update(
        {
            "hbm_bytes_s_measured": round(bw / 1e9, 1) if bw else None,
            "weight_bytes_per_decode_step": weight_bytes,
            "kv_bytes_per_token": kvb,
            "decode_step_floor_s": round(weight_bytes / bw, 6) if bw else None,
        }
    )
    if args.profile:
        prompts = profile_prompts(Path(args.data), args.profile_batch)
        extra["profile"] = profile_stage(model, tok, prompts, args, floor, device)
        save()

    tm = TaskManager(include_path=str(TASKS_DIR))
    settings = [s for s in args.settings.split(",") if s]
    types = [t for t in args.task_types.split(",") if t]
    HFLM_kw = {"pretrained": model, "tokenizer": tok, "max_length": 4096, "backend": "causal"}
    if settings:  # warm-up (module loads, task building, CUDA kernels): one short untimed call
        warm = HFLM(batch_size=1, **HFLM_kw)
        run_task(warm, DEFAULT_TASKS["retrieval"], tm, 1, "max_gen_toks=4")
    forced = ForcedStop(model, tok, answer_lengths(Path(args.data), tok), common.EOS_ID)
    fast_cls = bench_fast_class()
    for setting in settings:
        group = "_group" in setting  # the group in one run instead of one run a task
        if not group:
            per_setting[setting] = {}
        if device == "cuda":  # "..._nocudnn": the same with torch's cuDNN SDPA backend disabled
            torch.backends.cuda.enable_cudnn_sdp("_nocudnn" not in setting)
        if "_stop" in setting:  # "..._stop": each generation stops after its true answer's length
            forced.__enter__()
        else:
            forced.__exit__()
        default = setting.startswith("defaults")
        if default:
            lm, limit = HFLM(batch_size=1, **HFLM_kw), args.default_per_type
        elif setting.startswith("fast"):
            lm = fast_cls(
                batch_size=args.batch_size,
                cuda_graphs="_eager" not in setting,
                fused_norm="auto" if "_nonorm" not in setting else False,
                cudnn_decode="auto" if "_effdec" not in setting else False,
                **HFLM_kw,
            )
            lm.forced, limit = forced, args.per_type
        else:
            lm, limit = HFLM(batch_size=args.batch_size, **HFLM_kw), args.per_type
        if group:
            prof = None
            if args.cprofile == setting:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            g = run_group(lm, tm, limit, sync, floor, types=set(types))
            if prof is not None:
                prof.disable()
                extra["cprofile"] = {"setting": setting, "top": cprofile_top(prof)}
            groups[setting] = g
            print(json.dumps({"setting": setting, **{k: v for k, v in g.items() if not k.startswith("_")}}), flush=True)
            save()
        for t in types if not group else []:
            if not counts.get(t):
                continue
            task = DEFAULT_TASKS[t] if default else OURS_TASKS[t]
            gen = None if default or t not in MAX_GEN_TOKS else f"max_gen_toks={MAX_GEN_TOKS[t]}"
            r = run_task(lm, task, tm, limit, gen, sync, floor)
            if bw and r["generated_tokens"]:
                b = 1 if default else args.batch_size
                r["decode_limit_tok_s_at_batch"] = round(b * bw / weight_bytes, 1)
            per_setting[setting][t] = r
            print(
                json.dumps({"setting": setting, **{k: v for k, v in r.items() if k not in ("metrics", "_responses")}}),
                flush=True,
            )
            save()
        if hasattr(lm, "release"):
            lm.release()
        del lm
        if device == "cuda":
            torch.cuda.empty_cache()
    forced.__exit__()
    if device == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(True)
    extra["forced_stop_misses"] = forced.misses
    extra["equivalence"] = equivalence({**per_setting, **{k: g["_tasks"] for k, g in groups.items()}})
    save()
    if args.responses:
        Path(args.responses).write_text(
            json.dumps({s: {t: r["_responses"] for t, r in ts.items()} for s, ts in per_setting.items()}) + "\n"
        )
    if args.cb_probe:  # last: an engine of its own that may take long to start; bounded by --cb-timeout
        import signal

        def _timeout(*_):
            raise TimeoutError(f"generate_batch took over {args.cb_timeout} s")

        signal.signal(signal.SIGALRM, _timeout)
        signal.alarm(args.cb_timeout)
        try:
            prompts = profile_prompts(Path(args.data), args.profile_batch)
            extra["cb_probe"] = cb_probe(model, tok, prompts, args.profile_tokens, device)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            extra["cb_probe"] = {"error": repr(exc)[:400]}
        finally:
            signal.alarm(0)
        save()
    res = build_result(args, cfg, per_setting, counts, extra)
    print(
        f"eval_ratio {res['eval_ratio']} ({res['settings']['headline']})  baseline {res['baseline_examples_s']} ex/s"
        f"  ours {res['ours_examples_s']} ex/s  model-time ratio {res['model_time_ratio']}"
    )
    if extra["equivalence"]:
        print(json.dumps({"equivalence": {k: v["all"] for k, v in extra["equivalence"].items()}}))
    return 0


def equivalence(per_setting: dict) -> dict:
    """Identical responses and scores between every two settings (defaults left out) of the same stopping
    regime, task by task."""
    names = [n for n in per_setting if not n.startswith("defaults")]
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if ("_stop" in a) != ("_stop" in b):
                continue
            tasks = {}
            for t in per_setting[a]:
                if t in per_setting[b]:
                    c = compare_responses(per_setting[a][t]["_responses"], per_setting[b][t]["_responses"])
                    c["scores_identical"] = per_setting[a][t]["metrics"] == per_setting[b][t]["metrics"]
                    tasks[t] = c
            if tasks:
                n = sum(c["compared"] for c in tasks.values())
                same = sum(c["identical"] for c in tasks.values())
                summary = {"compared": n, "identical": same, "identical_share": round(same / n, 4) if n else None}
                summary["scores_identical_tasks"] = sum(c["scores_identical"] for c in tasks.values())
                summary["tasks"] = len(tasks)
                out[f"{a}~{b}"] = {"all": summary, "tasks": tasks}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
