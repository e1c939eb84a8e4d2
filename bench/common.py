"""Shared pieces of the GPU benchmarks: model shapes, FLOP and MFU accounting, token-length samples,
synthetic examples and the result-JSON schema.  Pure Python + torch; importable on a CPU."""

from __future__ import annotations

import argparse
import json
import platform
import random
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LENGTHS_FILE = BENCH / "data" / "sft_lengths.json"
RESULTS = BENCH / "results"

#: Yi-9B's exact shape (01-ai/Yi-9B config.json): Llama architecture, GQA 32/4, untied lm_head.
YI_9B = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 48,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 64000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}
#: A CPU-sized stand-in with the same vocabulary, used by --tiny runs and the tests.
TINY = {**YI_9B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
TINY["num_key_value_heads"] = 2

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
FIRST_ID = 5  # random token ids are drawn from [FIRST_ID, vocab): never the pad or a special id


def shape(name: str, layers: int | None = None) -> dict:
    base = {"yi9b": YI_9B, "tiny": TINY}[name]
    return {**base, **({"num_hidden_layers": layers} if layers else {})}


@dataclass(frozen=True)
class ParamCount:
    linear: int  # parameters that take part in a matrix product per token (all linears + lm_head)
    embedding: int  # input embedding (a lookup, no FLOPs)
    lora: int  # LoRA adapter parameters (rank r on every linear of every layer)

    @property
    def total(self) -> int:
        return self.linear + self.embedding


def count_params(cfg: dict, lora_r: int = 16) -> ParamCount:
    """Count parameters of a Llama-shaped model from its config (norm weights are negligible and left out)."""
    d, f, n_layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    head_dim = d // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * head_dim
    shapes = [(d, d), (d, kv), (d, kv), (d, d), (d, f), (d, f), (f, d)]  # q k v o gate up down (in, out)
    per_layer = sum(i * o for i, o in shapes)
    lora_per_layer = sum(lora_r * (i + o) for i, o in shapes)
    lm_head = d * cfg["vocab_size"]
    return ParamCount(
        linear=n_layers * per_layer + lm_head,
        embedding=d * cfg["vocab_size"],
        lora=n_layers * lora_per_layer,
    )


def attention_flops_forward(cfg: dict, segment_lengths: list[int]) -> float:
    """Forward attention FLOPs (QK^T and AV, causal) of a sequence made of independent segments.
    A token at 1-based position i of its segment attends i keys: 2·d·i (scores) + 2·d·i (values) per layer,
    so a segment of n tokens costs 4·d·L·n(n+1)/2."""
    d, n_layers = cfg["hidden_size"], cfg["num_hidden_layers"]
    return float(sum(4 * d * n_layers * n * (n + 1) / 2 for n in segment_lengths))


def lora_train_flops(cfg: dict, n_tokens: int, segment_lengths: list[int], lora_r: int = 16) -> float:
    """Model FLOPs of one LoRA training pass over ``n_tokens`` real tokens (no recomputation counted).

    Frozen base: forward 2N + backward activation-gradient 2N = 4N per token (no weight gradient).
    Adapters: 6·N_lora per token (forward, activation grad, weight grad).  Attention has no weights:
    forward A, backward 2A (gradients for Q, K and V), so 3A.  Gradient-checkpointing recompute is
    *not* counted (that would be hardware FLOPs, not model FLOPs)."""
    p = count_params(cfg, lora_r)
    return (4 * p.linear + 6 * p.lora) * n_tokens + 3 * attention_flops_forward(cfg, segment_lengths)


def mfu(flops: float, seconds: float, peak_flops: float) -> float:
    return flops / seconds / peak_flops if seconds > 0 and peak_flops > 0 else 0.0


# ---------------------------------------------------------------- token-length samples and examples
def load_lengths(path: Path = LENGTHS_FILE) -> list[dict]:
    """The committed sample: ``{"examples": [{"task_type", "prompt", "answer"}, ...]}`` token counts."""
    data = json.loads(Path(path).read_text())
    return data["examples"]


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 on prompt positions (answer-only loss)


def make_examples(lengths: list[dict], n: int, vocab: int, seed: int = 0, max_len: int = 2048) -> list[Example]:
    """``n`` synthetic examples whose prompt/answer lengths are drawn (with replacement, seeded) from the
    real-data sample; ids are random in [FIRST_ID, vocab) (throughput depends on shapes, not values).
    Longer examples are truncated to ``max_len`` (the recipe's sequence length), keeping the answer's end."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        row = lengths[rng.randrange(len(lengths))]
        p, a = int(row["prompt"]), int(row["answer"]) + 1  # +1: the EOS / end-of-turn token
        if p + a > max_len:
            p = max(1, max_len - a) if a < max_len else 1
            a = max_len - p
        ids = [rng.randrange(FIRST_ID, vocab) for _ in range(p + a)]
        out.append(Example(ids, [-100] * p + ids[p:]))
    return out


def as_completion(example: Example) -> Example:
    """The same tokens as a continued-pretraining document: every token trained (``type: completion``)."""
    return Example(list(example.input_ids), list(example.input_ids))


def padded_batches(examples: list[Example], batch_size: int, multiple: int = 1) -> list[dict]:
    """Consecutive examples padded (right) to the longest in the batch, rounded up to ``multiple``:
    a hand-written loop's batches (LLaMA-Factory pads to a multiple of 8)."""
    batches = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        width = max(len(e.input_ids) for e in chunk)
        width = -(-width // multiple) * multiple
        ids = [e.input_ids + [PAD_ID] * (width - len(e.input_ids)) for e in chunk]
        labels = [e.labels + [-100] * (width - len(e.labels)) for e in chunk]
        mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in chunk]
        batches.append(
            {
                "input_ids": ids,
                "labels": labels,
                "attention_mask": mask,
                "real_tokens": sum(len(e.input_ids) for e in chunk),
                "segments": [len(e.input_ids) for e in chunk],
            }
        )
    return batches


def fixed_blocks(examples: list[Example], block: int, batch_size: int) -> list[dict]:
    """The examples' ids concatenated and cut into full blocks (the remainder dropped), every token trained:
    the best case for a plain loop (no padding, full-block causal attention across example boundaries)."""
    stream = [t for e in examples for t in e.input_ids]
    n_blocks = len(stream) // block
    blocks = [stream[i * block : (i + 1) * block] for i in range(n_blocks)]
    batches = []
    for i in range(0, len(blocks) - batch_size + 1, batch_size):
        chunk = blocks[i : i + batch_size]
        batches.append(
            {
                "input_ids": chunk,
                "labels": chunk,
                "attention_mask": None,
                "real_tokens": block * len(chunk),
                "segments": [block] * len(chunk),
            }
        )
    return batches


def padding_fraction(batches: list[dict]) -> float:
    slots = sum(len(b["input_ids"]) * len(b["input_ids"][0]) for b in batches)
    return 1 - sum(b["real_tokens"] for b in batches) / slots if slots else 0.0


# ---------------------------------------------------------------- results
TRAIN_FIELDS = (
    "device",
    "versions",
    "settings",
    "train_ratio",
    "train_ratio_padded",
    "baseline_tok_s",
    "recipe_tok_s",
    "baseline_peak_gib",
    "recipe_peak_gib",
)
EVAL_FIELDS = ("device", "versions", "settings", "eval_ratio", "baseline_examples_s", "ours_examples_s")


def versions(names=("torch", "transformers", "peft", "accelerate", "axolotl", "liger-kernel", "lm_eval")) -> dict:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            return f"{p.name} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs)"
    except Exception:  # noqa: BLE001 - a device name is informative only
        pass
    return f"cpu ({platform.processor() or platform.machine()})"


def int_list(lo: int = 0):
    """argparse ``type=``: a comma list of whole numbers >= ``lo`` (``4096,8192``)."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            values = []
        if not values or min(values) < lo:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a comma list of whole numbers >= {lo}")
        return values

    parse.__name__ = "list"
    return parse


def check_out(ap: argparse.ArgumentParser, out: str) -> None:
    """A result path a run can write at its end: its folder exists, it is not itself a folder and it can be
    opened for writing (else a usage error now, before the GPU work); a file already there is left as it is."""
    path = Path(out)
    if path.is_dir() or not path.parent.is_dir():
        ap.error(f"--out {out}: not a file in an existing folder")
    existed = path.exists()
    try:
        with open(path, "a"):
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        ap.error(f"--out {out}: cannot be written ({exc.strerror or exc})")


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


#: headline recipe runs: the card they are for and the goal (ratio to the best plain loop under the same cap)
HEADLINE_RUNS = {"sft": ("24 GB", 1.5), "cpt": ("24 GB", 1.5), "sft_80gb": ("80 GB", 2.0), "cpt_80gb": ("80 GB", 2.0)}
HEADLINE_RUNS["qlora"] = ("24 GB, one card", None)
#: what every headline row carries (issue 13)
ROW_FIELDS = (
    "recipe",
    "memory_cap_gib",
    "tok_s",
    "peak_allocated_gib",
    "peak_reserved_gib",
    "max_steps",
    "timed_steps",
    "eval_included",
    "save_included",
)


def best_plain(paths: dict, cap: float | None, lora_r: int | None = None) -> dict:
    """The fastest plain fixed-block loop that ran (no error) under the same memory cap — at the same LoRA
    rank when one such ran, else at any rank.  {} when none did."""
    ran = [
        r
        for r in paths.values()
        if r.get("kind") == "plain"
        and str(r.get("run", r.get("path", ""))).startswith("fixed")
        and r.get("tok_s")
        and not r.get("error")
        and r.get("memory_cap_gib") == cap
    ]
    same_rank = [r for r in ran if lora_r is not None and r.get("lora_r") == lora_r]
    pool = same_rank or ran
    return max(pool, key=lambda r: r["tok_s"]) if pool else {}


def headline_rows(paths: dict) -> list[dict]:
    """One row per headline recipe run: the issue's fields, the baseline it is compared with, the ratio."""
    rows = []
    for res in paths.values():
        run = res.get("run")
        if res.get("kind") != "recipe" or run not in HEADLINE_RUNS:
            continue
        card, goal = HEADLINE_RUNS[run]
        base = best_plain(paths, res.get("memory_cap_gib"), res.get("lora_r"))
        row = {k: res.get(k) for k in ROW_FIELDS}
        row.update(
            {
                "run": res.get("path"),
                "cap_enforced": res.get("cap_enforced", bool(res.get("memory_cap_gib"))),
                "card": card,
                "error": res.get("error"),
                "baseline": base.get("path"),
                "baseline_tok_s": base.get("tok_s"),
                "baseline_peak_allocated_gib": base.get("peak_allocated_gib"),
                "ratio": None if res.get("error") else ratio(res.get("tok_s"), base.get("tok_s")),
                "goal": goal,
            }
        )
        row["goal_met"] = None if goal is None or row["ratio"] is None else row["ratio"] >= goal
        rows.append(row)
    return rows


def train_headline(paths: dict) -> dict:
    """The training result's headline fields from its measured paths.  ``train_ratio``: the SFT recipe
    (``sft``, or ``ours`` in older results) vs the best plain case under the same cap ("fixed"...);
    ``train_ratio_padded``: vs the padded baseline (the faster of its real variants, so the ratio is
    conservative); ``headline``: one row per headline recipe run (``headline_rows``)."""
    ours = next((paths[k] for k in ("sft", "ours") if paths.get(k, {}).get("tok_s")), paths.get("ours", {}))
    fixed = paths.get("fixed", {}) if "fixed" in paths and "run" not in paths["fixed"] else {}
    if not fixed:
        fixed = best_plain(paths, ours.get("memory_cap_gib"), ours.get("lora_r"))
    padded_runs = [paths[k] for k in ("padded", "padded_nocudnn", "padded_m64") if paths.get(k, {}).get("tok_s")]
    padded = max(padded_runs, key=lambda r: r["tok_s"]) if padded_runs else {}
    return {
        "train_ratio": ratio(ours.get("tok_s"), fixed.get("tok_s")),
        "train_ratio_padded": ratio(ours.get("tok_s"), padded.get("tok_s")),
        "padded_baseline_variant": padded.get("path"),
        "baseline_tok_s": fixed.get("tok_s"),
        "recipe_tok_s": ours.get("tok_s"),
        "baseline_peak_gib": fixed.get("peak_allocated_gib"),
        "recipe_peak_gib": ours.get("peak_allocated_gib"),
        "headline": headline_rows(paths),
        "paths": paths,
    }


def check_result(result: dict, kind: str) -> None:
    """Raise ValueError naming the missing fields of a result JSON (kind: 'train' or 'eval')."""
    fields = TRAIN_FIELDS if kind == "train" else EVAL_FIELDS
    missing = [f for f in fields if f not in result]
    if missing:
        raise ValueError(f"{kind} result lacks fields: {', '.join(missing)}")
    for row in result.get("headline") or [] if kind == "train" else []:
        lacking = [f for f in ROW_FIELDS if f not in row]
        if lacking:
            raise ValueError(f"headline row {row.get('run')} lacks fields: {', '.join(lacking)}")
        cap, reserved = row["memory_cap_gib"], row["peak_reserved_gib"]
        if cap and reserved and reserved > cap and row.get("cap_enforced", True):
            raise ValueError(f"headline row {row.get('run')}: peak reserved {reserved} GiB is over its cap {cap}")
