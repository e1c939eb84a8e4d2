"""Diagnostic: where the GPU time of hf-fast's prefill and decode step goes, kernel by kernel.

On one GPU with the Yi-9B shape (random bf16 weights):

* ``gemm``: the matrix products of one layer's prefill and decode at their own shapes, in TFLOP/s and (decode)
  in weight bytes read per second, against the 8192^3 product as the card's attainable rate;
* ``prefill``: one left-padded batch (``--rows`` prompts, lengths spread evenly from ``--max-len`` down to
  ``--min-len``) through ``FastHFLM._prefill`` at several ``prefill_tokens``, and the same tokens with no padding
  (every row its chunk's full width: no mask), each timed (median of repeats) and profiled once: GPU time per
  kernel class (matrix products, attention, copies, the rest) and the share of the wall clock the GPU was busy;
* ``decode``: one decode step of a batch (``--decode-batch`` rows, ``--decode-len`` cache slots), eager and as the
  replayed CUDA graph, with the eager step's kernel classes and kernel count.

    python bench/kernel_profile.py --out /tmp/kernels.json            # GPU
    python bench/kernel_profile.py --tiny --out /tmp/kernels.json     # CPU: the same code on a 2-layer model
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

CLASSES = ("gemm", "attention", "copy", "other")


def kernel_class(name: str) -> str:
    n = name.lower()
    if any(k in n for k in ("fmha", "flash", "attention", "attn", "sdpa")):  # before gemm: cutlass attention kernels
        return "attention"
    if any(k in n for k in ("gemm", "cutlass", "xmma", "nvjet", "cublas", "addmm", "aten::mm", "matmul", "linear")):
        return "gemm"
    if any(k in n for k in ("memcpy", "memset", "copy", "cat", "index")):
        return "copy"
    return "other"


def profile_once(fn, device: str) -> dict:
    """GPU (or, on a CPU, operator) time of one call of ``fn`` by kernel class, the kernel count, the wall
    clock and the share of it that kernels ran; the 12 kernels with the most time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CUDA] if device == "cuda" else [ProfilerActivity.CPU]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    with profile(activities=acts) as prof:
        t0 = time.perf_counter()
        fn()
        sync()
        wall = time.perf_counter() - t0
    by_class = dict.fromkeys(CLASSES, 0.0)
    per_name: dict[str, list] = {}
    count = 0
    for ev in prof.events():
        if device == "cuda":
            if ev.device_type != torch.autograd.DeviceType.CUDA:
                continue
            us = ev.device_time
        else:
            if ev.cpu_parent is not None:  # top-level operators only
                continue
            us = ev.cpu_time
        count += 1
        by_class[kernel_class(ev.name)] += us / 1e6
        row = per_name.setdefault(ev.name[:120], [0, 0.0])
        row[0] += 1
        row[1] += us / 1e6
    busy = sum(by_class.values())
    top = sorted(per_name.items(), key=lambda kv: -kv[1][1])[:12]
    return {
        "wall_s": round(wall, 5),
        "kernel_s": round(busy, 5),
        "busy_share": round(busy / wall, 3) if wall else None,
        "kernels": count,
        "by_class_s": {k: round(v, 5) for k, v in by_class.items()},
        "top": [{"name": n, "calls": c, "s": round(s, 5)} for n, (c, s) in top],
    }


def timed(fn, device: str, repeats: int) -> float:
    """Median wall clock of ``repeats`` calls after one warm-up."""
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_rates(cfg: dict, device: str, m_prefill: int, m_decode: int, repeats: int) -> dict:
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    d, f = cfg["hidden_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * (d // cfg["num_attention_heads"])
    shapes = {"q/o": (d, d), "k/v": (d, kv), "gate/up": (d, f), "down": (f, d), "lm_head": (d, cfg["vocab_size"])}
    out = {}
    ref = 8192 if device == "cuda" else 512
    a = torch.randn(ref, ref, dtype=dtype, device=device)
    s = timed(lambda: a @ a, device, repeats)
    out["square"] = {"n": ref, "tflop_s": round(2 * ref**3 / s / 1e12, 1)}
    a = None
    for m, tag in ((m_prefill, "prefill"), (m_decode, "decode")):
        x = {k: torch.randn(m, shp[0], dtype=dtype, device=device) for k, shp in shapes.items()}
        w = {k: torch.randn(shp[1], shp[0], dtype=dtype, device=device) for k, shp in shapes.items()}
        for k, (i, o) in shapes.items():
            s = timed(lambda x=x[k], w=w[k]: torch.nn.functional.linear(x, w), device, repeats)
            out[f"{tag}:{k}"] = {
                "m": m,
                "k": i,
                "n": o,
                "us": round(s * 1e6, 1),
                "tflop_s": round(2 * m * i * o / s / 1e12, 1),
                "weight_gb_s": round(w[k].numel() * w[k].element_size() / s / 1e9, 1),
            }
    return out


def decode_step(lm, args, device: str, cudnn: bool) -> dict:
    """One decode step of a (batch, cache length) slot, eager and as the replayed graph, with ``lm``'s settings;
    ``cudnn``: torch's cuDNN attention first in the step (fixed shapes: one plan, built before the capture)."""
    lm.cudnn_decode = cudnn
    slot = lm._get_slot(args.decode_batch, args.decode_len, [common.EOS_ID], common.PAD_ID, 16)
    slot.cache.reset()
    slot.mask.fill_(slot.masked)
    slot.mask[..., : args.decode_len // 2] = 0.0
    slot.slot.fill_(args.decode_len // 2)
    with lm._sdpa_backends(), lm._autocast(), lm._fused_norms():
        eager = timed(lambda: lm._step(slot), device, args.repeats * 4)
        dec = {"batch": args.decode_batch, "cache_len": args.decode_len, "eager_ms": round(eager * 1e3, 3)}
        dec["norms_fused"] = len(lm._norms or []) if lm.fused_norm else 0
        dec["eager_profile"] = profile_once(lambda: lm._step(slot), device)
        if device == "cuda":
            dec["capture_s"] = round(lm._ensure_graph(slot), 3)
    if device == "cuda" and slot.graph is not None:
        dec["graph_ms"] = round(timed(slot.graph.replay, device, args.repeats * 4) * 1e3, 3)
        dec["graph_profile"] = profile_once(slot.graph.replay, device)
    elif device == "cuda":
        dec["capture_errors"] = list(lm.capture_errors)
    return dec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="the 2-layer shape (CPU)")
    ap.add_argument("--tokenizer", help="tokenizer folder (default: the bench's stand-in, bench/_carry/tokenizer)")
    ap.add_argument("--rows", type=int, default=100)
    ap.add_argument("--max-len", type=int, default=406)
    ap.add_argument("--min-len", type=int, default=180)
    ap.add_argument("--prefill-tokens", type=common.int_list(0), default=[4096, 8192, 16384, 32768, 0])
    ap.add_argument("--decode-batch", type=int, default=100)
    ap.add_argument("--decode-len", type=int, default=448)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    common.check_out(ap, args.out)
    if args.tokenizer and not (Path(args.tokenizer) / "tokenizer_config.json").is_file():
        ap.error(f"--tokenizer {args.tokenizer}: no tokenizer_config.json there")

    import torch
    from transformers import AutoTokenizer

    from bench.eval_throughput import TOKENIZER
    from bench.train_throughput import build_model
    from shop_eval.hf_fast import FastHFLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        ap.error("no GPU: use --tiny on a CPU")
    cfg = common.shape("tiny" if args.tiny else "yi9b")
    if args.tiny:
        args.rows, args.max_len, args.min_len, args.decode_batch, args.decode_len = 8, 40, 10, 4, 64
        args.prefill_tokens, args.repeats = [128, 0], 2
    result: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "shape": cfg}
    result["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__}
    result["gemm"] = gemm_rates(cfg, device, 8192 if device == "cuda" else 256, args.decode_batch, args.repeats)

    model = build_model(cfg, device).eval()
    tok = AutoTokenizer.from_pretrained(args.tokenizer or TOKENIZER)
    lm = FastHFLM(pretrained=model, tokenizer=tok, max_length=4096, backend="causal", batch_size=args.rows)
    g = torch.Generator().manual_seed(0)
    lengths = [
        round(args.max_len - (args.max_len - args.min_len) * i / max(1, args.rows - 1)) for i in range(args.rows)
    ]
    width = max(lengths)
    ids = torch.randint(1000, cfg["vocab_size"] - 1, (args.rows, width), generator=g).to(device)
    mask = torch.zeros((args.rows, width), dtype=torch.long, device=device)
    for r, n in enumerate(lengths):
        mask[r, width - n :] = 1
    ids = ids.masked_fill(mask == 0, common.PAD_ID)
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    flops_per_token = 2 * common.count_params(cfg).linear
    real = sum(lengths)
    result["prefill"] = {"rows": args.rows, "lengths": [lengths[0], lengths[-1]], "real_tokens": real}

    variants = [(pt, False) for pt in args.prefill_tokens] + [(8192, True)]
    with torch.no_grad(), lm._sdpa_backends():
        for pt, fused in variants:
            lm.prefill_tokens, lm.fused_norm = pt, fused
            chunks = lm._prefill_chunks(lengths, width)
            padded = sum(len(rows) * w for rows, w in chunks)

            def run(lm=lm, ids=ids, mask=mask, pos=pos):
                with lm._fused_norms():
                    lm._prefill(ids, mask, pos)

            s = timed(run, device, args.repeats)
            row = {
                "chunks": len(chunks),
                "fused_norm": fused,
                "padded_tokens": padded,
                "s": round(s, 4),
                "real_tflop_s": round(real * flops_per_token / s / 1e12, 1),
                "profile": profile_once(run, device),
            }
            if not fused:  # the same chunks with no padding: each row its chunk's width, no mask (causal SDPA)

                def run_nomask(chunks=chunks, ids=ids):
                    for rows, w in chunks:
                        model(input_ids=ids[: len(rows), width - w :].clamp(min=1000), use_cache=True, logits_to_keep=1)

                s2 = timed(run_nomask, device, args.repeats)
                row["nomask_s"] = round(s2, 4)
                row["nomask_padded_tflop_s"] = round(padded * flops_per_token / s2 / 1e12, 1)
                row["nomask_profile"] = profile_once(run_nomask, device)
            name = f"prefill_tokens={pt}" + ("+fused_norm" if fused else "")
            result["prefill"][name] = row
            print(json.dumps({name: {k: v for k, v in row.items() if "profile" not in k}}), flush=True)

        result["decode"] = {}
        for fused, cudnn in ((False, False), (True, False), (True, True)):
            lm.release()
            lm.fused_norm = fused
            dec = decode_step(lm, args, device, cudnn)
            name = ("fused_norm" if fused else "plain") + ("+cudnn" if cudnn else "")
            result["decode"][name] = dec
            print(json.dumps({f"decode:{name}": {k: v for k, v in dec.items() if "profile" not in k}}), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
