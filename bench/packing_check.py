"""Packing isolation: the per-token losses of an axolotl-packed batch equal those of its examples run alone.

A recipe's own settings (``sample_packing``, ``attn_implementation: sdpa``, ``sdpa_varlen``,
``pad_to_sequence_len``, its dataset type and template) are loaded by axolotl's own config loader; axolotl
tokenizes and packs the data and builds the model (with its attention patches: on a CUDA bf16 device the
varlen kernel, elsewhere stock SDPA with a block-diagonal mask) and the trainer; the first batch of the
trainer's own training dataloader is run through the model, and every document in it (found by its
``position_ids`` restarting at 0) is run again on its own.  Per-token cross-entropy of each token
predicted from inside its document must agree within ``tolerance``.  As a check that the comparison can
fail, the same packed rows are also run as plain causal rows without ``position_ids`` (every document
sees the ones before it): those losses must differ by far more than the tolerance.

"Alone" runs through the same attention path as the packed rows (``alone_same_path``): on a GPU the varlen
kernel serves packed rows only, and a lone document would otherwise go through stock SDPA, whose bf16
rounding differs from the varlen kernel's; that kernel-only difference is reported beside it
(``stock_alone_max_abs_diff``).

The prediction of a document's first token from the end of the previous document (a completion row's
boundary) has no counterpart in a single-example run and is left out.

    python bench/packing_check.py --recipe recipes/sft.yml --out packing.json   # GPU: the varlen path
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHAT_ROWS = [
    ("Which is a fruit?\n0. chair\n1. apple\nAnswer: ", "1"),
    ("Rank these by price: kettle, toaster, blender.", "2, 1, 3"),
    ("Name the brand in: Acme steel kettle 1.7 l.", '["Acme"]'),
    ("Is a yoga mat sports equipment? yes or no", "yes"),
    ("Which query fits 'red running shoes size 10'? 0. shoes 1. hats", "0"),
    ("Write a product title for a bamboo cutting board with juice groove.", "Bamboo Cutting Board, Juice Groove"),
    ("Which two are kitchen items? 1. pan 2. sock 3. whisk", "1, 3"),
    ("Classify: 'wireless earbuds with charging case'", "electronics"),
]
TEXT_ROWS = [
    "A stainless steel kettle boils water fast and switches off by itself.",
    "This yoga mat is six millimetres thick, non-slip on both sides and easy to clean.",
    "Bamboo cutting board with a juice groove; hand wash only.",
    "Wireless earbuds with a charging case give up to twenty hours of music.",
    "A cast iron pan holds heat well; season it after washing.",
    "Running shoes with a breathable mesh upper and a cushioned sole.",
    "A set of three glass storage jars with airtight bamboo lids.",
    "An LED desk lamp with five brightness levels and a USB port.",
]
SYSTEM = "You are a helpful online shopping assistant."


def write_data(path: Path, kind: str, repeat: int = 3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for r in range(repeat):
            if kind == "completion":
                for t in TEXT_ROWS:
                    fh.write(json.dumps({"text": f"{t} (variant {r})"}) + "\n")
            else:
                for q, a in CHAT_ROWS:
                    msgs = [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": f"{q} ({r})"},
                        {"role": "assistant", "content": a},
                    ]
                    fh.write(json.dumps({"messages": msgs}) + "\n")


def check_config(recipe: dict, model_dir: Path, work: Path, device: str, sequence_len: int = 256) -> dict:
    """The recipe with only what cannot exist here replaced; its attention and packing settings kept."""
    from bench.train_throughput import CPU_OVERRIDES, axolotl_config, data_kind

    kind = data_kind(recipe)
    data = work / f"{kind}.jsonl"
    write_data(data, kind)
    datasets = [{**recipe["datasets"][0], "path": str(data)}]
    o = {
        "base_model": str(model_dir),
        "datasets": datasets,
        "test_datasets": None,
        "val_set_size": 0.0,
        "dataset_prepared_path": str(work / "prepared"),
        "output_dir": str(work / "out"),
        "dataset_num_proc": 1,
        "sequence_len": sequence_len,  # a tiny model: rows of a few documents each
        "micro_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "eval_batch_size": None,
        "deepspeed": None,  # one process, no torch.distributed
        "max_steps": 1,
        "num_epochs": 1,
        "load_in_4bit": False,
        "adapter": "lora",
        "lora_modules_to_save": None,
        "warmup_ratio": None,
        "warmup_steps": 0,
        "dataloader_num_workers": 0,
        "shuffle_merged_datasets": False,
    }
    if device != "cuda":
        o.update(CPU_OVERRIDES, plugins=None)
    return axolotl_config(recipe, o)


def _per_token(logits, ids, labels):
    """Cross-entropy of each position's prediction of the next token (nan where that label is -100)."""
    import torch

    lp = torch.nn.functional.cross_entropy(logits[:-1].float(), labels[1:].clamp(min=0), reduction="none")
    return torch.where(labels[1:] == -100, torch.full_like(lp, float("nan")), lp)


def alone_same_path(model, ids):
    """Logits of one document run on its own through the attention path of the packed rows: the document,
    then one more token that starts a second document (``position_ids`` 0), so that axolotl's packed-row
    path (the varlen kernel on a CUDA bf16 device, a block-diagonal mask elsewhere) runs it.  The trailing
    token comes after every position of the document, so under causal attention it cannot change them."""
    import torch

    seq = torch.cat([ids, ids[:1]])[None]
    pos = torch.cat([torch.arange(len(ids), device=ids.device), ids.new_zeros(1)])[None]
    return model(input_ids=seq, position_ids=pos).logits[0, : len(ids)]


def segments(position_ids) -> list[tuple[int, int]]:
    """[start, end) of each document of a packed row: a document starts where position_ids is 0 and runs
    while they count up by one (padding restarts at 0 too: the caller drops pad-only segments)."""
    pos = [int(p) for p in position_ids]
    starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
    return [(a, b) for a, b in zip(starts, starts[1:], strict=False) if b > a]


def packed_vs_single(recipe_path: Path, model_dir: Path, work: Path, tolerance: float | None = None) -> dict:
    """Run the comparison; returns the numbers (``isolated`` is the verdict)."""
    import torch
    from axolotl.cli.config import load_cfg
    from axolotl.common.datasets import load_datasets
    from axolotl.train import setup_model_and_trainer
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    device = "cuda" if torch.cuda.is_available() else "cpu"
    work.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load(Path(recipe_path).read_text())
    conf_path = work / "packing.yml"
    conf_path.write_text(yaml.safe_dump(check_config(recipe, model_dir, work, device), sort_keys=False))
    cfg = load_cfg(str(conf_path))
    meta = load_datasets(cfg=cfg)
    trainer, model, tokenizer, _, _ = setup_model_and_trainer(cfg, meta)
    batch = next(iter(trainer.get_train_dataloader()))
    dev = next(model.parameters()).device
    batch = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if "position_ids" not in batch:
        raise RuntimeError(f"the packed batch has no position_ids (keys: {sorted(batch)})")
    known = {tuple(r["input_ids"]) for r in meta.train_dataset}
    attention = ALL_ATTENTION_FUNCTIONS["sdpa"]
    varlen = hasattr(attention, "_axolotl_sdpa_original")
    model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    diffs, leak, kernel, n_docs, n_tokens = [], [], [], 0, 0
    with torch.no_grad():
        packed = model(**inputs).logits
        leaky = model(input_ids=batch["input_ids"]).logits  # plain causal rows: documents see each other
        for row in range(batch["input_ids"].shape[0]):
            ids, labels, pos = batch["input_ids"][row], batch["labels"][row], batch["position_ids"][row]
            for a, b in segments(pos):
                seg = tuple(ids[a:b].tolist())
                if seg not in known:  # padding at the row's end
                    continue
                n_docs += 1
                want = _per_token(alone_same_path(model, ids[a:b]), ids[a:b], labels[a:b])
                stock = _per_token(model(input_ids=ids[a:b][None]).logits[0], ids[a:b], labels[a:b])
                got = _per_token(packed[row, a:b], ids[a:b], labels[a:b])
                bad = _per_token(leaky[row, a:b], ids[a:b], labels[a:b])
                keep = ~torch.isnan(want)
                n_tokens += int(keep.sum())
                if keep.any():
                    diffs.append(float((got - want)[keep].abs().max()))
                    kernel.append(float((stock - want)[keep].abs().max()))
                    if a > 0:  # a document after the first one in its row: the leak would show here
                        leak.append(float((bad - want)[keep].abs().max()))
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    if tolerance is None:
        tolerance = 1e-4 if dtype == "float32" else 5e-2
    out = {
        "recipe": str(recipe_path),
        "device": device,
        "dtype": dtype,
        "attn_implementation": cfg.attn_implementation,
        "sdpa_varlen": cfg.sdpa_varlen,
        "varlen_kernel_patched": varlen,
        "rows": int(batch["input_ids"].shape[0]),
        "row_len": int(batch["input_ids"].shape[1]),
        "documents": n_docs,
        "documents_after_the_first": len(leak),
        "tokens_compared": n_tokens,
        "max_abs_diff": max(diffs) if diffs else None,
        "leak_max_abs_diff": max(leak) if leak else None,
        # the lone document through the stock attention instead (no trailing token): kernel rounding only
        "stock_alone_max_abs_diff": max(kernel) if kernel else None,
        "tolerance": tolerance,
    }
    out["isolated"] = bool(diffs) and out["max_abs_diff"] <= tolerance
    out["leak_detectable"] = bool(leak) and out["leak_max_abs_diff"] > 10 * tolerance
    return out


def main(argv=None) -> int:
    import os

    for k, v in {"AXOLOTL_DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}.items():
        os.environ.setdefault(k, v)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", action="append", help="recipe(s) to check (default: recipes/sft.yml, cpt.yml)")
    ap.add_argument("--model", default=None, help="a small model folder (default: shop_eval.tiny, built here)")
    ap.add_argument("--work", default="/tmp/packing_check")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work)
    model_dir = Path(args.model) if args.model else None
    if model_dir is None:
        from shop_eval.tiny import build_tiny_model

        model_dir = build_tiny_model(work / "tiny", seed=0, quick=False)
    results = []
    for recipe in args.recipe or ["recipes/sft.yml", "recipes/cpt.yml"]:
        res = packed_vs_single(REPO / recipe, model_dir, work / Path(recipe).stem)
        print(json.dumps(res), flush=True)
        results.append(res)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(r["isolated"] and r["leak_detectable"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
