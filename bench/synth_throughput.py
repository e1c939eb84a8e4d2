"""Throughput of ``shop-eval synth`` against a local OpenAI-compatible server with fixed latency.

    .venv/bin/python bench/synth_throughput.py            # 1,000 requests, concurrency 32, 50 ms latency

The fake server (``tests/fake_openai_server.py``) runs in its own process, so the client's event loop
does not share a Python interpreter with it.  The client is the real pipeline — openai
``AsyncOpenAI``, tenacity, the semaphore, reply parsing, record validation, the near-duplicate pool
and the append-only writes — asked for ``--requests`` items at one item per request, so it makes
exactly that many requests (the server's examples are never near-duplicates).  With ``c`` requests
in flight and ``L`` seconds per request the ideal rate is ``c / L`` (32 / 0.05 = 640 req/s); the
benchmark reports the achieved rate divided by it (goal: >= 0.8).  Each setting runs ``--repeat``
times on a fresh output; the median run is reported.  Writes bench/results/synth_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shop_eval.io import write_json
from shop_eval.loaders import LoadResult, record_from_alpaca
from shop_eval.synth import SynthOptions, synthesize

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "fake_openai_server.py"  # the test suite's fake endpoint (a script beside the tests)
sys.path.insert(0, str(SERVER.parent))

from fake_openai_server import make_example  # noqa: E402


def seed_records(task_type: str, n: int = 8):
    rng = random.Random(123)
    out = []
    for _ in range(n):
        inp, ans = make_example(task_type, rng)
        out.append(
            record_from_alpaca(
                {"instruction": inp, "output": ans, "task_type": task_type}, "bench", "", "seed", LoadResult()
            )
        )
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"server did not start: {url!r}")
    return proc, url


def bare_client_run(url: str, requests: int, concurrency: int, prompt: str) -> dict:
    """The reference: the same requests through a bare AsyncOpenAI + semaphore, no pipeline."""
    import openai

    async def go() -> tuple[float, float]:
        client = openai.AsyncOpenAI(base_url=url, api_key="bench-key-not-secret", max_retries=0, timeout=30)
        sem = asyncio.Semaphore(concurrency)
        messages = [{"role": "user", "content": prompt}]

        async def one() -> str:
            async with sem:
                r = await client.chat.completions.create(model="fake", messages=messages, max_tokens=2048)
                return r.choices[0].message.content

        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*[one() for _ in range(requests)])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        await client.close()
        return wall, cpu

    wall, cpu = asyncio.run(go())
    return {
        "requests": requests,
        "elapsed_s": round(wall, 3),
        "req_per_s": round(requests / wall, 1),
        "client_cpu_ms_per_req": round(1000 * cpu / requests, 3),
    }


def one_run(url: str, requests: int, concurrency: int, task_type: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Path(tmp) / "seeds.jsonl"
        seeds.write_text("".join(r.model_dump_json() + "\n" for r in seed_records(task_type)), encoding="utf-8")
        opts = SynthOptions(
            seeds=str(seeds),
            out=Path(tmp) / "bench.jsonl",
            model="fake",
            count=requests,
            task_types=[task_type],
            base_url=url,
            per_request=1,
            concurrency=concurrency,
            timeout=30,
            progress=False,
            fsync_interval=1.0,
        )
        t0, c0 = time.perf_counter(), time.process_time()
        report = synthesize(opts, api_key="bench-key-not-secret")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        lines = sum(1 for _ in open(opts.out, encoding="utf-8"))
    return {
        "requests": report["requests"],
        "accepted": report["accepted"],
        "lines_written": lines,
        "retries": report["retries"],
        "rejected": report["rejected"],
        "elapsed_s": round(wall, 3),
        "req_per_s": round(report["requests"] / wall, 1),
        "client_cpu_ms_per_req": round(1000 * cpu / report["requests"], 3),
        "near_duplicates": report["near_duplicates"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--task-type", default="multiple-choice")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "synth_throughput.json")
    args = p.parse_args()

    load_start = os.getloadavg()[0]
    server, url = start_server(args.latency)
    prompt = f"Task type: {args.task_type}\nWrite 1 new examples.\n" + "\n".join(
        f"Input:\n{r.input_field}\nOutput:\n{r.output_field}\n###" for r in seed_records(args.task_type)[:3]
    )
    try:
        one_run(url, 64, args.concurrency, args.task_type)  # warm-up (imports, connections)
        runs, bare = [], []
        for k in range(args.repeat):
            s0 = proc_cpu_s(server.pid)
            r = one_run(url, args.requests, args.concurrency, args.task_type)
            r["server_cpu_ms_per_req"] = round(1000 * (proc_cpu_s(server.pid) - s0) / r["requests"], 3)
            print(f"synth run {k + 1}: {r}", file=sys.stderr)
            runs.append(r)
            s0 = proc_cpu_s(server.pid)
            b = bare_client_run(url, args.requests, args.concurrency, prompt)
            b["server_cpu_ms_per_req"] = round(1000 * (proc_cpu_s(server.pid) - s0) / b["requests"], 3)
            print(f"bare client run {k + 1}: {b}", file=sys.stderr)
            bare.append(b)
    finally:
        server.terminate()
        server.wait(10)
    ideal = args.concurrency / args.latency
    med = sorted(runs, key=lambda r: r["req_per_s"])[len(runs) // 2]
    result = {
        "benchmark": "synth_throughput",
        "setting": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "latency_s": args.latency,
            "items_per_request": 1,
            "task_type": args.task_type,
            "rate_limits": None,
        },
        "ideal_req_per_s": ideal,
        "achieved_req_per_s": med["req_per_s"],
        "ratio": round(med["req_per_s"] / ideal, 3),
        "goal_ratio": 0.8,
        "ratio_min": round(min(r["req_per_s"] for r in runs) / ideal, 3),
        "ratio_max": round(max(r["req_per_s"] for r in runs) / ideal, 3),
        "ratio_mean": round(statistics.mean(r["req_per_s"] for r in runs) / ideal, 3),
        "runs": runs,
        "reference_bare_client": {
            "what": "the same requests through AsyncOpenAI + a semaphore alone (no retries, parsing, filters, writes)",
            "ratio_median": round(statistics.median(b["req_per_s"] for b in bare) / ideal, 3),
            "runs": bare,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m_at_start": round(load_start, 2),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(args.out, result)
    keys = ("ideal_req_per_s", "achieved_req_per_s", "ratio", "reference_bare_client", "machine")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
