"""Diagnostic: the decode step's attention (one query token per row, grouped K/V heads as extra query rows, an
additive mask over a static cache) through each kernel that can run it, timed as a CUDA graph of one call per
layer, with its largest difference from a float64 reference.

    python bench/decode_attention_probe.py --out /tmp/attn.json      # GPU
    python bench/decode_attention_probe.py --cpu --out /tmp/attn.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from shop_eval.options import int_in  # noqa: E402


def variants():
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def sdpa(backend):
        def run(q, k, v, mask, scale):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)

        return run

    def matmul_bf16(q, k, v, mask, scale):  # scores rounded to bf16 before the softmax
        s = torch.matmul(q, k.transpose(-1, -2)).float() * scale + mask.float()
        return torch.matmul(torch.softmax(s, dim=-1).to(v.dtype), v)

    def matmul_f32(q, k, v, mask, scale):  # scores accumulated and kept in float32 (out_dtype)
        b, h, g, d = q.shape
        s = torch.bmm(q.reshape(b * h, g, d), k.reshape(b * h, -1, d).transpose(1, 2), out_dtype=torch.float32)
        s = s.reshape(b, h, g, -1) * scale + mask.float()
        return torch.matmul(torch.softmax(s, dim=-1).to(v.dtype), v)

    return {
        "efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION),
        "cudnn": sdpa(SDPBackend.CUDNN_ATTENTION),
        "math": sdpa(SDPBackend.MATH),
        "matmul_bf16": matmul_bf16,
        "matmul_f32": matmul_f32,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int_in(1, 4096), default=100)
    ap.add_argument("--kv-heads", type=int_in(1, 64), default=4)
    ap.add_argument("--group", type=int_in(1, 64), default=8, help="query heads per K/V head")
    ap.add_argument("--head-dim", type=int_in(8, 256), default=128)
    ap.add_argument("--lengths", type=common.int_list(8), default=[448, 832, 1600], help="static-cache lengths (>= 8)")
    ap.add_argument(
        "--layers", type=int_in(1, 256), default=48, help="calls per graph (one per layer, each its own K/V)"
    )
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    common.check_out(ap, args.out)

    import torch

    if not args.cpu and not torch.cuda.is_available():
        ap.error("no GPU: use --cpu on a CPU")
    device = "cpu" if args.cpu else "cuda"
    if device == "cpu":
        args.batch, args.layers, args.lengths = 2, 2, [64]
    dtype = torch.bfloat16
    g = torch.Generator(device=device).manual_seed(0)
    b, h, grp, d = args.batch, args.kv_heads, args.group, args.head_dim
    result: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "shape": vars(args)}
    for length in args.lengths:
        filled = length * 5 // 8  # a cache part-filled, rows left-padded by different amounts
        qs = [torch.randn(b, h, grp, d, generator=g, device=device, dtype=dtype) for _ in range(args.layers)]
        ks = [torch.randn(b, h, length, d, generator=g, device=device, dtype=dtype) for _ in range(args.layers)]
        vs = [torch.randn(b, h, length, d, generator=g, device=device, dtype=dtype) for _ in range(args.layers)]
        mask = torch.full((b, 1, 1, length), torch.finfo(dtype).min, device=device, dtype=dtype)
        for r in range(b):
            mask[r, ..., (r * 7) % (filled // 2) : filled] = 0.0
        scale = d**-0.5
        ref = (
            torch.softmax((qs[0].double() @ ks[0].double().transpose(-1, -2)) * scale + mask.double(), dim=-1)
            @ vs[0].double()
        )
        rows = {}
        kv_bytes = 2 * b * h * length * d * 2 * args.layers
        for name, fn in variants().items():
            try:
                out = fn(qs[0], ks[0], vs[0], mask, scale)
                err = (out.double() - ref).abs().max().item()
                if device == "cuda":
                    outs = [None] * args.layers

                    def all_layers(fn=fn, outs=outs, qkv=(qs, ks, vs), mask=mask, scale=scale):
                        for i in range(args.layers):
                            outs[i] = fn(qkv[0][i], qkv[1][i], qkv[2][i], mask, scale)

                    s = torch.cuda.Stream()
                    s.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(s):
                        all_layers()
                    torch.cuda.current_stream().wait_stream(s)
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        all_layers()
                    graph.replay()
                    torch.cuda.synchronize()
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    for _ in range(20):
                        graph.replay()
                    end.record()
                    torch.cuda.synchronize()
                    ms = start.elapsed_time(end) / 20
                    rows[name] = {
                        "ms_all_layers": round(ms, 4),
                        "us_per_layer": round(1e3 * ms / args.layers, 2),
                        "kv_tb_s": round(kv_bytes / (ms / 1e3) / 1e12, 2),
                        "max_abs_err": err,
                    }
                else:
                    rows[name] = {"max_abs_err": err}
            except Exception as exc:  # noqa: BLE001 - a kernel that cannot run this shape is a result too
                rows[name] = {"error": repr(exc)[:300]}
        result[f"cache_len={length}"] = rows
        print(json.dumps({f"cache_len={length}": rows}), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
