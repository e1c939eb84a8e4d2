"""The client side: chat completions through the official ``openai`` ``AsyncOpenAI`` client
(``max_retries=0``: retries are ours, with tenacity: full-jitter exponential backoff on 429, 408, 409, 5xx,
timeouts, dropped connections and malformed bodies, honouring ``Retry-After``/``retry-after-ms``), a
per-request timeout and two ``aiolimiter`` buckets: requests per minute and tokens per minute (estimated before
a request, topped up with the reported usage after it).  401, 403 and 404 are :class:`Fatal`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from typing import Any

from .redact import Redactor

log = logging.getLogger("shop_eval.synth")


class BadResponse(Exception):
    """A 200 answer that is not a chat completion (no choices, not JSON): retried."""


class Fatal(Exception):
    """An error that retrying cannot fix (bad key, unknown model, bad URL)."""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def read_completion(body: Any) -> tuple[str, str | None, tuple[int, int] | None]:
    """``(content, finish_reason, (prompt_tokens, completion_tokens) or None)`` of a chat-completions
    answer decoded from JSON; :class:`BadResponse` (retried) when it is not one."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadResponse("the answer holds no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise BadResponse(f"the message content is a {type(content).__name__}, not text")
    finish = choices[0].get("finish_reason")
    usage = body.get("usage")
    tokens = (
        (_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
        if isinstance(usage, dict)
        else None
    )
    return content or "", finish if isinstance(finish, str) else None, tokens


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), if any."""
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    with contextlib.suppress(TypeError, ValueError, OverflowError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def dropped_connection(exc: BaseException) -> bool:
    """True when the exception chain holds a closed/refused connection and no real timeout."""
    try:
        import aiohttp
    except ImportError:
        return False
    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(x, aiohttp.ClientConnectionError) and not isinstance(x, TimeoutError) for x in chain):
        return not any(isinstance(x, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)) for x in chain[1:])
    return False


def retry_cause(exc: BaseException) -> str | None:
    """Why an exception is worth a retry (a short label), or None when it is not."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        # the aiohttp transport reports a dropped connection as a connect timeout: look at the cause
        return "connection" if dropped_connection(exc) else "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        s = exc.status_code
        if s in (408, 409, 429) or s >= 500:
            return str(s)
        return None
    if isinstance(exc, (json.JSONDecodeError, BadResponse)):
        return "bad_body"
    return None


def _limits(concurrency: int):
    """Connection pool sized for the requests in flight (the openai default keeps 100 at most)."""
    import httpx2

    return httpx2.Limits(max_connections=max(concurrency, 1) * 2, max_keepalive_connections=max(concurrency, 1) * 2)


class ChatClient:
    """One chat-completions call with our retries and rate limits; counts retries and tokens.

    ``client`` stands in for ``AsyncOpenAI`` (tests); otherwise :meth:`open` makes one, inside the event loop
    that uses it, and :meth:`close` closes it."""

    def __init__(self, opts: Any, *, api_key: str, redact: Redactor, base_url: str | None, client: Any = None):
        from aiolimiter import AsyncLimiter

        self.opts, self.api_key, self.redact, self.base_url = opts, api_key, redact, base_url
        self.client = client
        self.retries: Counter = Counter()  # by cause
        self.tokens: Counter = Counter()  # prompt / completion / total, as the server reports them
        self._completion_mean: float | None = None
        # rate limits (leaky buckets): requests in bursts of at most one second's worth; tokens per minute
        self.rpm_limiter = None
        if opts.rpm:
            burst = max(1.0, opts.rpm / 60)
            self.rpm_limiter = AsyncLimiter(burst, burst * 60 / opts.rpm)
        self.tpm_limiter = AsyncLimiter(opts.tpm, 60) if opts.tpm else None

    def open(self) -> None:
        if self.client is not None:
            return
        import openai

        http_client = (
            openai.DefaultAioHttpClient(timeout=self.opts.timeout, limits=_limits(self.opts.concurrency))
            if self.opts.http == "aiohttp"
            else None
        )
        self.client = openai.AsyncOpenAI(
            api_key=self.api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.opts.timeout,
            http_client=http_client,
        )

    async def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()

    def _estimate_tokens(self, prompt: str) -> int:
        completion = self.opts.max_tokens
        if self._completion_mean is not None:
            completion = min(self.opts.max_tokens, int(self._completion_mean * 1.25) + 16)
        return len(prompt) // 4 + completion

    def _wait(self, rs) -> float:
        from tenacity import wait_random_exponential

        exc = rs.outcome.exception() if rs.outcome else None
        ra = retry_after_seconds(exc)
        if ra is not None:
            return min(ra, self.opts.max_retry_after) * (1 + 0.1 * random.random())
        return wait_random_exponential(multiplier=self.opts.backoff, max=self.opts.backoff_max)(rs)

    def _before_sleep(self, rs) -> None:
        exc = rs.outcome.exception()
        cause = retry_cause(exc) or type(exc).__name__
        self.retries[cause] += 1
        log.debug("retry %s after %s (attempt %d)", rs.args[0] if rs.args else "", cause, rs.attempt_number)

    async def _attempt(self, rid: str, prompt: str, est: int, attempts: Any) -> tuple[str, str | None, Any]:
        attempt_no = next(attempts)
        if self.rpm_limiter is not None:
            await self.rpm_limiter.acquire()
        if self.tpm_limiter is not None:
            await self.tpm_limiter.acquire(min(est, self.tpm_limiter.max_rate))
        # The chat-completions endpoint through the client's own request path (auth, transport, error
        # mapping, JSON decoding), with the body already in wire form and the answer kept as JSON:
        # `chat.completions.create` would re-walk the body through the SDK's TypedDict transform (measured
        # ~0.7 ms of CPU a request) and build a ChatCompletion model from the answer (~0.1 ms), of which only
        # three fields are read (checked in `read_completion`).
        resp = await self.client.post(
            "/chat/completions",
            cast_to=object,
            body={
                "model": self.opts.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": self.opts.temperature,
                "top_p": self.opts.top_p,
                "max_tokens": self.opts.max_tokens,
            },
            options={"headers": {"X-Shop-Eval-Request": rid, "X-Shop-Eval-Attempt": str(attempt_no)}},
        )
        return read_completion(resp)

    async def complete(self, rid: str, prompt: str) -> tuple[str, str | None]:
        """``(content, finish_reason)`` of one request, retried; :class:`Fatal` when retrying cannot help."""
        import openai
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        est = self._estimate_tokens(prompt)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.opts.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: retry_cause(e) is not None),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        attempts = iter(range(1, self.opts.max_retries + 2))
        try:
            content, finish, usage = await retrying(self._attempt, rid, prompt, est, attempts)
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403, 404):
                raise Fatal(f"HTTP {exc.status_code}: {self.redact(str(exc.message))}") from None
            raise
        if usage is not None:
            await self._count_usage(*usage, est)
        return content, finish

    async def _count_usage(self, prompt_tokens: int, completion_tokens: int, est: int) -> None:
        self.tokens["prompt"] += prompt_tokens
        self.tokens["completion"] += completion_tokens
        self.tokens["total"] += prompt_tokens + completion_tokens
        m = self._completion_mean
        self._completion_mean = completion_tokens if m is None else 0.9 * m + 0.1 * completion_tokens
        extra = prompt_tokens + completion_tokens - est
        if extra > 0 and self.tpm_limiter is not None:
            await self.tpm_limiter.acquire(min(extra, self.tpm_limiter.max_rate))
