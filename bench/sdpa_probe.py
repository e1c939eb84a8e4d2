"""Diagnostic: what does torch's SDPA cost per call when every call has a new sequence length?

Variable shapes are what a padded training loop (a new padded width each batch) and Hugging Face
generation (a KV cache one longer each step) feed attention.  Times forward+backward (training shape,
padding mask) and decode-like calls (one query against a growing cache) with every backend allowed and with
the cuDNN backend disabled, over new and over repeated lengths.  Prints one JSON line per case.

    python bench/sdpa_probe.py
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F


def timed(fn, n_calls: int) -> float:
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(n_calls):
        fn(i)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n_calls


def main() -> None:
    dev, dt = "cuda", torch.bfloat16
    h, d, kvh = 32, 128, 4

    def train_call(length: int):
        q = torch.randn(4, h, length, d, device=dev, dtype=dt, requires_grad=True)
        k = torch.randn(4, kvh, length, d, device=dev, dtype=dt, requires_grad=True)
        v = torch.randn(4, kvh, length, d, device=dev, dtype=dt, requires_grad=True)
        mask = torch.ones(4, 1, length, length, device=dev, dtype=torch.bool).tril()
        mask[0, :, :, length // 2 :] = False  # one padded row, as a padded batch has
        mask[0, :, :, 0] = True
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        out.sum().backward()

    def decode_call(length: int):
        q = torch.randn(1, h, 1, d, device=dev, dtype=dt)
        k = torch.randn(1, kvh, length, d, device=dev, dtype=dt)
        v = torch.randn(1, kvh, length, d, device=dev, dtype=dt)
        F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    for cudnn in (True, False):
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
        for kind, fn, n, base in (
            ("train_fwd_bwd", train_call, 20, 300 if cudnn else 700),  # lengths not seen before by either
            ("decode", decode_call, 50, 3000 if cudnn else 5000),
        ):
            fn(base - 1)
            new = timed(lambda i, fn=fn, base=base: fn(base + i), n)
            same = timed(lambda i, fn=fn, base=base: fn(base), n)
            print(
                json.dumps(
                    {
                        "cudnn_sdp": cudnn,
                        "case": kind,
                        "new_len_ms": round(new * 1e3, 3),
                        "same_len_ms": round(same * 1e3, 3),
                    }
                ),
                flush=True,
            )
    torch.backends.cuda.enable_cudnn_sdp(True)


if __name__ == "__main__":
    main()
