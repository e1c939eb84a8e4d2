"""A fake OpenAI chat-completions server that injects faults on a schedule, for the ``shop-eval synth`` tests
(``tests/test_synth.py``) and benchmark (``bench/synth_throughput.py``); also runnable by hand::

    python tests/fake_openai_server.py --port 8001 --latency 0.05 --faults 429,ok,500,slow,drop,badjson

It answers ``POST /v1/chat/completions`` (and ``GET /v1/models``) on 127.0.0.1.  The reply is made-up
but well-formed ShopBench training data in the format the shipped ``synth_*`` templates ask for: it
reads ``Task type: <type>`` and ``Write <k> new`` from the prompt and writes ``k`` examples
(``Input:`` / ``Output:`` blocks ended by a ``###`` line), with random product names and model
numbers so that two examples are never near-duplicates by accident.

Faults, by arrival order of the requests (``faults[i]`` is what the ``i``-th request gets; requests
after the end of the list are served normally, or the list repeats with ``cycle=True``):

==============  ===================================================================
``ok``          a normal answer (after ``latency`` seconds)
``429``         HTTP 429 with ``Retry-After: <retry_after>`` and an OpenAI error body
``500``/``503`` HTTP 500 / 503 with an OpenAI error body
``400``         HTTP 400 (a request the endpoint refuses: not worth a retry, not fatal)
``401``         HTTP 401 (a wrong key: not worth a retry)
``slow``        answers only after ``slow_seconds`` (longer than the client's timeout)
``drop``        closes the connection without answering
``badjson``     HTTP 200, ``application/json``, a truncated JSON body
``garbage``     a normal reply whose text holds one valid and several malformed examples
``dup``         a normal reply that repeats the last example already sent (a near-duplicate)
==============  ===================================================================

``echo_key=True``: the error bodies quote the key the request came with, as some endpoints do ("Incorrect API
key provided: sk-..."), to check that the client never writes it out.

Holding answers, for tests that must act while a run is in progress (no sleeps, no races): with
``hold_after=N`` the first ``N`` answers of status 200 go out and later ones wait at a gate until the test
calls :meth:`FakeOpenAIServer.allow` (``k`` more) or :meth:`~FakeOpenAIServer.release` (all);
:meth:`~FakeOpenAIServer.wait_held` blocks until that many requests are waiting.  A request whose client
hangs up while held is dropped (aiohttp cancels its handler) and no longer counts.

Every request is logged in :attr:`FakeOpenAIServer.log` (arrival time, fault, the client's
``X-Shop-Eval-Request``/``-Attempt`` headers, and whether the expected bearer key came with it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAULTS = ("ok", "429", "500", "503", "400", "401", "slow", "drop", "badjson", "garbage", "dup")

_BRANDS = "Acme Borealis Cobalt Dunmore Everly Fjord Granite Halcyon Ivory Juniper Kestrel Lumen Meridian Nimbus Orchard Pinnacle".split()
_ADJ = "compact wireless stainless waterproof ergonomic foldable rechargeable insulated lightweight premium rugged slim portable quiet smart".split()
_NOUNS = "kettle blender headphones backpack sneakers lamp charger speaker mug wallet tent drill keyboard monitor jacket blanket".split()
_USES = "travel camping office gaming running cooking hiking studying commuting gardening".split()
_SENT = {
    "positive": ["works great", "exceeded my expectations", "love the build quality", "would buy again"],
    "negative": ["stopped working", "feels cheap", "arrived broken", "not worth the price"],
    "neutral": ["does the job", "is about what I expected", "is okay for the price", "has pros and cons"],
}


_SYLLABLES = "ka lo mi ren tu vas pel dor qui zan bex fo gru hal nim os par sti wel yor".split()


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))


def _blurb(rng: random.Random, k: int = 6) -> str:
    """``k`` made-up words: the part of an example that makes it unlike any other."""
    return " ".join(_word(rng) for _ in range(k))


def _title(rng: random.Random) -> str:
    code = f"{rng.choice('ABCDEFGHKMNPRSTVXZ')}{rng.randint(100, 99999)}"
    return f"{rng.choice(_BRANDS)} {_word(rng).title()} {rng.choice(_ADJ)} {rng.choice(_NOUNS)} {code}"


def make_example(task_type: str, rng: random.Random) -> tuple[str, str]:
    """One random (input, output) pair of ``task_type`` in the templates' answer format."""
    if task_type == "multiple-choice":
        opts = [_title(rng) for _ in range(4)]
        k = rng.randrange(4)
        q = f"{opts[k].split()[3]} for {rng.choice(_USES)}, {_blurb(rng, 4)}"
        lines = "\n".join(f"{i}. {o}" for i, o in enumerate(opts))
        return f'Which product best matches the search query "{q}"?\n{lines}\nAnswer:', str(k)
    if task_type == "retrieval":
        cands = [_title(rng) for _ in range(6)]
        picks = sorted(rng.sample(range(1, 7), 3))
        lines = "\n".join(f"{i}. {c}" for i, c in enumerate(cands, 1))
        return (
            f'A customer bought "{_title(rng)}" ({_blurb(rng, 3)}). Which three items will they buy next?\n{lines}\nOutput:',
            ", ".join(map(str, picks)),
        )
    if task_type == "ranking":
        cands = [_title(rng) for _ in range(4)]
        order = rng.sample(range(1, 5), 4)
        lines = "\n".join(f"{i}. {c}" for i, c in enumerate(cands, 1))
        return (
            f'Rank the products by relevance to "{rng.choice(_USES)} {_blurb(rng, 3)}", best first:\n{lines}',
            ", ".join(map(str, order)),
        )
    if task_type == "named_entity_recognition":
        t = _title(rng)
        brand = t.split()[0]
        return (
            f'Text: "I bought the {t} for {rng.choice(_USES)}, {_blurb(rng)}, and it {rng.choice(_SENT["positive"])}."\n'
            "Entity type: brand",
            json.dumps([brand]),
        )
    if task_type == "classification":
        label = rng.choice(sorted(_SENT))
        return (
            f"Review: The {_title(rng)} {rng.choice(_SENT[label])}, {_blurb(rng)}.\n"
            "What is the sentiment of the review (positive, negative or neutral)?\nAnswer:",
            label,
        )
    t = _title(rng)
    return (
        f"Write one sentence that describes the {t} ({_blurb(rng)}) for a shopper.",
        f"The {t} is a {rng.choice(_ADJ)} choice for {rng.choice(_USES)}, rated {rng.randint(1, 5)} stars by {rng.randint(2, 9000)} buyers.",
    )


_TYPE_RE = re.compile(r"task type:\s*([a-z_\-]+)", re.IGNORECASE)
_COUNT_RE = re.compile(r"write\s+(\d+)\s+new", re.IGNORECASE)


@dataclass
class FakeOpenAIServer:
    latency: float = 0.0
    faults: Sequence[str] = ()
    cycle: bool = False
    retry_after: float = 0.2
    slow_seconds: float = 2.0
    api_key: str | None = None
    echo_key: bool = False
    hold_after: int | None = None
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        bad = [f for f in self.faults if f not in FAULTS]
        if bad:
            raise ValueError(f"unknown faults {bad} (known: {', '.join(FAULTS)})")
        self._arrivals = itertools.count()
        self._last: dict[str, tuple[str, str]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._passed = 0  # answers through the gate
        self._gate: asyncio.Condition | None = None  # made in the server's event loop
        self._held = 0
        self._held_changed = threading.Condition()

    # ------------------------------------------------------------------ serving
    def fault_for(self, i: int) -> str:
        if not self.faults:
            return "ok"
        if self.cycle:
            return self.faults[i % len(self.faults)]
        return self.faults[i] if i < len(self.faults) else "ok"

    # ------------------------------------------------------------------ the gate
    def _open(self) -> bool:
        return self.hold_after is None or self._passed < self.hold_after

    async def _through_gate(self) -> None:
        """Wait (when the gate is closed) until :meth:`allow` or :meth:`release` lets this answer out."""
        if self._gate is None:
            self._gate = asyncio.Condition()
        async with self._gate:
            if not self._open():
                self._count_held(+1)
                try:
                    await self._gate.wait_for(self._open)
                finally:
                    self._count_held(-1)
            self._passed += 1

    def _count_held(self, delta: int) -> None:
        with self._held_changed:
            self._held += delta
            self._held_changed.notify_all()

    @property
    def held(self) -> int:
        """Requests waiting at the gate now."""
        return self._held

    def wait_held(self, at_least: int = 1, timeout: float = 120.0) -> None:
        """Block until ``at_least`` requests wait at the gate (``timeout``: only a guard against a hang)."""
        self._wait_until(lambda: self._held >= at_least, f"at least {at_least}", timeout)

    def wait_none_held(self, timeout: float = 120.0) -> None:
        """Block until no request waits at the gate (their clients hung up, or they were let through)."""
        self._wait_until(lambda: self._held == 0, "none", timeout)

    def _wait_until(self, done, what: str, timeout: float) -> None:
        with self._held_changed:
            if not self._held_changed.wait_for(done, timeout):
                raise TimeoutError(f"{self._held} requests held at the gate after {timeout} s, waited for {what}")

    def allow(self, n: int) -> None:
        """Let ``n`` more answers through the gate."""
        self._in_loop(self._widen, n)

    def release(self) -> None:
        """Open the gate for good."""
        self._in_loop(self._widen, None)

    def _widened(self, n: int | None) -> int | None:
        return None if n is None or self.hold_after is None else self.hold_after + n

    async def _widen(self, n: int | None) -> None:
        if self._gate is None:
            self._gate = asyncio.Condition()
        async with self._gate:
            self.hold_after = self._widened(n)
            self._gate.notify_all()

    def _in_loop(self, fn, n: int | None) -> None:
        if self._loop is None or not self._loop.is_running():  # not serving from a thread: nobody waits
            self.hold_after = self._widened(n)
            return
        asyncio.run_coroutine_threadsafe(fn(n), self._loop).result(10)

    # ------------------------------------------------------------------ answers
    def _content(self, prompt: str, fault: str, rng: random.Random) -> str:
        m = _TYPE_RE.search(prompt)
        task_type = m.group(1).lower() if m else "generation"
        m = _COUNT_RE.search(prompt)
        k = int(m.group(1)) if m else 1
        blocks = []
        for _ in range(k):
            inp, out = make_example(task_type, rng)
            self._last[task_type] = (inp, out)
            blocks.append(f"Input:\n{inp}\nOutput:\n{out}\n###")
        if fault == "garbage":
            blocks = blocks[:1] + [
                "Here is another example without the markers.\n###",
                "Input:\n\nOutput:\n1\n###",
                "Input:\nPick one product.\n0. A\n1. B\nOutput:\nnot an answer\n###"
                if task_type != "generation"
                else "Input:\nDescribe it.\nOutput:\n\n###",
            ]
        elif fault == "dup" and task_type in self._last:
            inp, out = self._last[task_type]
            blocks.append(f"Input:\n{inp}\nOutput:\n{out}\n###")
        return "Here are the new examples.\n\n" + "\n".join(blocks)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        i = next(self._arrivals)
        fault = self.fault_for(i)
        auth = request.headers.get("Authorization", "")
        entry = {
            "i": i,
            "t": time.monotonic(),
            "fault": fault,
            "request": request.headers.get("X-Shop-Eval-Request"),
            "attempt": request.headers.get("X-Shop-Eval-Attempt"),
            "auth_ok": self.api_key is None or auth == f"Bearer {self.api_key}",
        }
        self.log.append(entry)
        body = await request.json()
        if fault == "drop":
            request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the connection without a response
        if fault in ("429", "500", "503", "400", "401"):
            return self._error(int(fault), auth)
        await self._through_gate()
        await asyncio.sleep(self.slow_seconds if fault == "slow" else self.latency)
        if fault == "badjson":
            return web.Response(
                body=b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess', content_type="application/json"
            )
        prompt = "\n".join(m.get("content") or "" for m in body.get("messages", []) if isinstance(m, dict))
        content = self._content(prompt, fault, random.Random(f"{self.seed}:{i}"))
        pt, ct = max(1, len(prompt) // 4), max(1, len(content) // 4)
        return web.json_response(
            {
                "id": f"chatcmpl-{i}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
            }
        )

    def _error(self, status: int, auth: str) -> web.Response:
        headers = {"Retry-After": f"{self.retry_after:g}"} if status == 429 else {}
        message = f"injected {status}"
        if self.echo_key:
            message += f": Incorrect API key provided: {auth.removeprefix('Bearer ')}"
        err = {"error": {"message": message, "type": "server_error", "code": None}}
        return web.json_response(err, status=status, headers=headers)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    async def start_async(self) -> str:
        # handler_cancellation: a client that hangs up cancels its request's handler (a held answer is dropped)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self.base_url

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ in a thread
    def start(self) -> str:
        """Serve from a background thread; returns the base URL (``http://127.0.0.1:PORT/v1``)."""

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start_async())
            self._ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop_async())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self.base_url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self.release()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python tests/fake_openai_server.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--latency", type=float, default=0.05, help="seconds per normal answer")
    p.add_argument("--faults", default="", help="comma-separated schedule, e.g. 429,ok,500,slow,drop,badjson")
    p.add_argument("--cycle", action="store_true", help="repeat the fault schedule forever")
    p.add_argument("--retry-after", type=float, default=0.2)
    p.add_argument("--slow-seconds", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    server = FakeOpenAIServer(
        latency=args.latency,
        faults=[f for f in args.faults.split(",") if f],
        cycle=args.cycle,
        retry_after=args.retry_after,
        slow_seconds=args.slow_seconds,
        seed=args.seed,
        port=args.port,
    )

    async def serve() -> None:
        url = await server.start_async()
        print(url, flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop_async()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
