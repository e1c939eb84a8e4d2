"""A synth run: :class:`Synthesizer`, with an explicit lifecycle (as torchtune's recipes: setup, train, cleanup)::

    synth = Synthesizer(opts, api_key=key)
    synth.setup()                          # seeds, templates, config id, output paths, lock, resume, filters
    try:
        report = asyncio.run(synth.run())  # the requests; the report is written and returned
    finally:
        synth.close()                      # files synced and closed, lock released

``with Synthesizer(opts, api_key=key) as synth: asyncio.run(synth.run())`` does the same, and
:func:`synthesize` is all of it in one call.  Every attribute exists from ``__init__`` on; ``setup`` fills them.

Each request shows the model ``--shots`` seed examples of one task type and asks for ``--per-request`` new
ones; every block of the reply is parsed (:mod:`.parse`), checked against the near-duplicate pool
(:mod:`.dedupe`) and the ``--eval-set`` files (:mod:`shop_eval.decontam`), and written (:mod:`.store`) or
rejected with its reason.  Requests go through :mod:`.client`; every text that leaves goes through
:mod:`.redact`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import os
import random
import string
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

from .. import task_types as registry
from ..errors import DataError, UsageError
from ..io import Outputs
from ..loaders import load_records
from ..options import http_url
from ..records import TASK_TYPES, Record
from .client import ChatClient, Fatal
from .dedupe import NearDupIndex
from .options import SynthOptions, resolve_templates, split_template_spec
from .parse import R_CONTAMINATED, R_EMPTY_RESPONSE, R_REQUEST_FAILED, R_SURPLUS, Rejected, parse_reply
from .progress import Counts, RunProgress
from .prompts import read_template, render_prompt, template_path
from .redact import Redactor, redact_url
from .store import ItemStore, check_rows, config_id, item_id, parse_item_id

log = logging.getLogger("shop_eval.synth")


def split_count(count: int, types: list[str]) -> dict[str, int]:
    base, extra = divmod(count, len(types))
    return {t: base + (1 if i < extra else 0) for i, t in enumerate(types)}


def synthesize(opts: SynthOptions, *, api_key: str, client: Any = None) -> dict[str, Any]:
    """Set up, run and close a :class:`Synthesizer`; returns its report."""
    with Synthesizer(opts, api_key=api_key, client=client) as synth:
        return asyncio.run(synth.run())


class Synthesizer:
    def __init__(self, opts: SynthOptions, *, api_key: str, client: Any = None):
        """``client`` stands in for ``openai.AsyncOpenAI`` (tests); by default one is made in :meth:`run`."""
        self.opts = opts
        self.redact = Redactor(api_key)
        self.base_url = opts.base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.chat = ChatClient(opts, api_key=api_key, redact=self.redact, base_url=self.base_url, client=client)
        self.store = ItemStore(opts.out, opts.rejects_path, opts.lock_path, opts.fsync_interval, self.redact)
        self.pool = NearDupIndex(opts.rouge_threshold)
        self.progress = RunProgress(opts.count, opts.progress)
        # filled by setup()
        self.outputs: Outputs | None = None
        self.types: list[str] = []
        self.seeds: dict[str, list[Record]] = {}
        self.seeds_for_prompt: dict[str, list[Record]] = {}
        self.templates: dict[str, string.Template] = {}
        self.cfg = ""
        self.quota: dict[str, int] = {}
        self.decontam: Any = None  # a shop_eval.decontam.DecontamIndex when there are --eval-set files
        self.seeds_contaminated = 0
        self.resumed = 0
        self.session = 0  # lines already in both files: makes this run's request ids and prompts its own
        # the state of the run
        self.done: dict[str, set[int]] = {}
        self.n_done: Counter = Counter()  # done indices below the quota, per type
        self.inflight: Counter = Counter()  # requests in flight or replies queued, per type
        self.rejected: Counter = Counter()
        self.rejected_before: Counter = Counter()
        self.requests = 0
        self.requests_failed = 0
        self.consecutive_failed = 0
        self.accepted_run = 0
        self.surplus = 0
        self.fatal: str | None = None
        self.stopped: str | None = None
        self._cursor: Counter = Counter()
        self._req_counter = 0
        self._replies: deque[tuple[str, str, str, str | None]] = deque()
        self._sem = asyncio.Semaphore(opts.concurrency)
        self._changed = asyncio.Event()
        self._log_filter = self.redact.log_filter()
        self._ready = False

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Everything before the first request; a bad input, option or output path raises here."""
        for h in logging.getLogger().handlers:
            h.addFilter(self._log_filter)
        if self.base_url is not None and self.opts.base_url is None:
            try:
                http_url(self.base_url)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"OPENAI_BASE_URL: {exc}") from None
        self.outputs = Outputs(
            inputs=[self.opts.seeds, *self.opts.eval_sets, *(p for _, p in self._template_specs())],
            options={"out": "--out", "rejects": "--rejects", "report": "--report", "lock": "--out"},
            out=self.opts.out,
            rejects=self.opts.rejects_path,
            report=self.opts.report_path,
            lock=self.opts.lock_path,
        )
        self._load_seeds()
        texts = self._load_templates()
        self.cfg = config_id(self.seeds, texts, self.opts)
        self.quota = split_count(self.opts.count, self.types)
        self.done = {t: set() for t in self.types}
        for t in self.types:
            for k, r in enumerate(self.seeds[t]):
                self.pool.add(f"seed-{registry.get(t).short}-{k}", r.input_field)
        self._decontaminate()
        self._resume()
        self._ready = True

    async def run(self) -> dict[str, Any]:
        """The requests, until every item exists or the run stops; writes and returns the report."""
        if not self._ready:
            raise RuntimeError("Synthesizer.run() needs setup() first")
        t0 = time.monotonic()
        self.chat.open()
        # Everything built so far (imported modules, seeds, the pool) lives for the whole run: frozen, it is
        # left out of the collector's full passes, which otherwise stop the event loop for ~0.1 s now and then
        # (measured) while every request waits.
        gc.freeze()
        try:
            with self.progress.shown(self.accepted_total):
                await self._loop()
                self._update_progress()
        finally:
            gc.unfreeze()
            await self.chat.close()
        self.store.sync()
        report = self.report(time.monotonic() - t0)
        self.outputs.write_json("report", report)
        self.outputs.commit()
        return report

    def close(self) -> None:
        """Sync and close the files, release the lock (safe to call more than once)."""
        self.store.close()
        if self.outputs is not None:
            self.outputs.discard()
        for h in logging.getLogger().handlers:
            h.removeFilter(self._log_filter)

    def __enter__(self) -> Synthesizer:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ set-up steps
    def _template_specs(self) -> list[tuple[str | None, Path]]:
        return [split_template_spec(s) for s in self.opts.templates]

    def _load_seeds(self) -> None:
        o = self.opts
        loaded = load_records(o.seeds, o.seed_format, o.skip_invalid)
        if loaded.skipped:
            log.warning("%s: %d invalid seed rows skipped, e.g. %s", o.seeds, len(loaded.skipped), loaded.skipped[0])
        records = loaded.records
        self.types = o.task_types or [t for t in TASK_TYPES if any(r.task_type == t for r in records)]
        if not records:
            why = f" ({len(loaded.skipped)} invalid rows skipped)" if loaded.skipped else ""
            raise DataError(str(o.seeds), "", None, f"no usable seed examples{why}")
        self.seeds = {t: [r for r in records if r.task_type == t] for t in self.types}
        for t, rs in self.seeds.items():
            if not rs:
                raise DataError(str(o.seeds), "", "task_type", f"no seed examples of task type {t!r}")

    def _load_templates(self) -> dict[str, str]:
        paths = resolve_templates(self.opts.templates, self.types)
        texts: dict[str, str] = {}
        for t in self.types:
            texts[t], self.templates[t] = read_template(paths.get(t) or template_path(t))
        return texts

    def _decontaminate(self) -> None:
        """Seed examples that overlap an ``--eval-set`` are not shown to the model."""
        self.seeds_for_prompt = dict(self.seeds)
        if not self.opts.eval_sets:
            return
        from ..decontam import DecontamIndex

        self.decontam = DecontamIndex()
        for p in self.opts.eval_sets:
            self.decontam.add(load_records(p).records, Path(p).stem)
        for t in self.types:
            clean = [r for r in self.seeds[t] if self.decontam.match(r.input_field) is None]
            self.seeds_contaminated += len(self.seeds[t]) - len(clean)
            if not clean:
                raise DataError(str(self.opts.seeds), "", None, f"every seed example of {t!r} overlaps an --eval-set")
            self.seeds_for_prompt[t] = clean
        if self.seeds_contaminated:
            log.warning("%d seed examples overlap an --eval-set: not shown to the model", self.seeds_contaminated)

    def _resume(self) -> None:
        out = self.opts.out
        rows, rejected = self.store.open(lambda rows: check_rows(rows, str(out), self.cfg, self.types))
        for path, cut in self.store.cut_bytes.items():
            log.warning("%s: cut a partial last line (%d bytes) left by an interrupted run", path, cut)
        for row in rows:
            _, t, i = parse_item_id(row["id"])
            self._mark_done(t, i)
            self.pool.add(row["id"], row["input_field"])
        self.rejected_before.update(r.get("reason", "?") for r in rejected if isinstance(r, dict))
        self.session = len(rows) + len(rejected)
        self.resumed = len(rows)
        if self.resumed:
            log.info("resuming: %d of %d items already in %s", self.resumed, self.opts.count, out)

    # ------------------------------------------------------------------ state
    @property
    def accepted_total(self) -> int:
        return sum(self.n_done.values())

    def missing(self, t: str) -> int:
        return self.quota[t] - self.n_done[t]

    def _mark_done(self, t: str, i: int) -> None:
        self.done[t].add(i)
        if i < self.quota[t]:
            self.n_done[t] += 1

    def _next_index(self, t: str) -> int | None:
        """The lowest index of ``t`` not produced yet (indices are only ever filled: a moving cursor)."""
        i = self._cursor[t]
        while i < self.quota[t] and i in self.done[t]:
            i += 1
        self._cursor[t] = i
        return i if i < self.quota[t] else None

    def _pick(self) -> str | None:
        need = {t: self.missing(t) - self.inflight[t] * self.opts.per_request for t in self.types}
        t = max(self.types, key=lambda x: need[x])
        return t if need[t] > 0 else None

    # ------------------------------------------------------------------ one request
    def _prompt(self, t: str, n: int) -> str:
        rng = random.Random(f"{self.cfg}:{t}:{self.session}:{n}")
        pool = self.seeds_for_prompt[t]
        shots = rng.sample(pool, min(self.opts.shots, len(pool)))
        return render_prompt(self.templates[t], t, shots, self.opts.per_request)

    async def _one(self, t: str, n: int) -> None:
        """One request.  Its concurrency slot is given back as soon as the HTTP exchange ends; the
        reply then waits in ``self._replies`` for :meth:`_process_next`, so the next request goes out
        before this reply is parsed, filtered and written (see there)."""
        rid = f"{self.cfg}-{registry.get(t).short}-s{self.session}-r{n}"
        reply: tuple[str, str | None] | None = None
        try:
            reply = await self._request(rid, t, n)
        except Fatal as exc:
            self.fatal = str(exc)
        except Exception as exc:
            self._crashed(exc)
        finally:
            self._sem.release()
            if reply is not None and not self.fatal:
                self._replies.append((rid, t, *reply))
                if len(self._replies) == 1:
                    asyncio.get_running_loop().call_soon(self._process_next)
            else:
                self._settled(t)

    async def _request(self, rid: str, t: str, n: int) -> tuple[str, str | None] | None:
        """The reply, or None when the request failed (retries exhausted, or an error retrying cannot fix
        for this request: counted, logged, and the run stopped after ``--max-failed`` in a row)."""
        prompt = self._prompt(t, n)
        try:
            reply = await self.chat.complete(rid, prompt)
        except Fatal:
            raise
        except Exception as exc:
            self.requests_failed += 1
            self.consecutive_failed += 1
            detail = self.redact(f"{type(exc).__name__}: {exc}")
            self._reject(rid, t, R_REQUEST_FAILED, detail)
            log.warning("request %s failed: %s", rid, detail[:200])
            if self.consecutive_failed >= self.opts.max_failed:
                self.stopped = f"{self.consecutive_failed} requests in a row failed (last: {detail[:200]})"
            return None
        self.consecutive_failed = 0
        return reply

    def _process_next(self) -> None:
        """Parse, filter and write the oldest reply received, one per turn of the event loop.

        Replies arrive in bursts (all requests started together come back together).  Handled inside
        the request, each reply's parsing, validation, near-duplicate search and write would delay
        every later reply of the burst, and the requests that follow them.  Queued here, a reply is
        handled after the network callbacks that are ready, so the connections stay busy; the
        processing is the same, only its order changes.  The count of replies in flight or queued
        (``inflight``) keeps the main loop from asking for more than is still missing."""
        if not self._replies:
            return
        rid, t, content, finish = self._replies.popleft()
        try:
            if not self.fatal:  # the run is stopping: write nothing more
                self._accept_reply(rid, t, content, finish)
        except Exception as exc:
            self._crashed(exc)
        finally:
            self._settled(t)
            if self._replies:
                asyncio.get_running_loop().call_soon(self._process_next)

    def _accept_reply(self, rid: str, t: str, content: str, finish: str | None) -> None:
        task_name = f"{self.opts.task_name_prefix}/{registry.get(t).short}"
        items = parse_reply(content, t, task_name, truncated=finish == "length")
        if not items:
            self._reject(rid, t, R_EMPTY_RESPONSE, f"no example in the reply (finish_reason={finish})", content)
            return
        for item in items:
            if isinstance(item, Rejected):
                self._reject(rid, t, item.reason, item.detail, item.text)
                continue
            why = self.pool.check(item.input_field)
            if why is None and self.decontam is not None:
                match = self.decontam.match(item.input_field)
                why = None if match is None else (R_CONTAMINATED, match)
            if why is not None:
                self._reject(rid, t, why[0], why[1], item.input_field)
                continue
            idx = self._next_index(t)
            if idx is None:
                self.surplus += 1
                self._reject(rid, t, R_SURPLUS, "the count was already reached", record=item.model_dump())
                continue
            iid = item_id(self.cfg, t, idx)
            self.store.write_item({"id": iid, **item.model_dump()})
            self._mark_done(t, idx)
            self.accepted_run += 1
            self.pool.add(iid, item.input_field)

    def _reject(self, rid: str, t: str, reason: str, detail: str, text: str = "", record: dict | None = None) -> None:
        self.rejected[reason] += 1
        row: dict[str, Any] = {
            "request": rid,
            "task_type": t,
            "reason": reason,
            "detail": self.redact.clip(detail, 500),
        }
        if text:
            row["text"] = self.redact.clip(text, 4000)
        if record is not None:
            row["record"] = record
        self.store.write_reject(row)

    def _crashed(self, exc: Exception) -> None:
        """A bug or a failing disk: stop the run, keeping everything written so far."""
        log.exception("synth stopped by an unexpected error")
        self.fatal = self.redact(f"{type(exc).__name__}: {exc}")

    def _settled(self, t: str) -> None:
        """A request of type ``t`` is fully accounted for (its reply written or rejected, or it failed)."""
        self.inflight[t] -= 1
        self._update_progress()
        self._changed.set()

    # ------------------------------------------------------------------ main loop
    async def _wait_for_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def _loop(self) -> None:
        pending: set[asyncio.Task] = set()
        limit = self.opts.max_requests or (10 * math.ceil(self.opts.count / self.opts.per_request) + 50)
        try:
            while True:
                pending = {p for p in pending if not p.done()}
                if self.fatal or self.stopped:
                    break
                busy = sum(self.inflight.values()) > 0  # requests in flight or replies queued
                t = self._pick()
                if t is None:
                    if not busy:
                        break
                    await self._wait_for_change()
                    continue
                if self.requests >= limit:
                    if not busy:
                        self.stopped = f"stopped after {self.requests} requests (--max-requests {limit})"
                        break
                    await self._wait_for_change()
                    continue
                await self._sem.acquire()
                t = self._pick()
                if t is None or self.fatal or self.stopped:
                    self._sem.release()
                    continue
                self.inflight[t] += 1
                self.requests += 1
                self._req_counter += 1
                pending.add(asyncio.create_task(self._one(t, self._req_counter)))
        except BaseException:  # cancelled (Ctrl-C): stop the requests in flight too
            for p in pending:
                p.cancel()
            raise
        finally:
            if pending:
                if self.fatal or self.stopped:
                    for p in pending:
                        p.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            while self._replies:  # replies already received are still handled (or dropped when fatal)
                self._process_next()

    # ------------------------------------------------------------------ progress and report
    def _counts(self) -> Counts:
        return Counts(
            accepted=self.accepted_total,
            requests=self.requests,
            rejected=sum(self.rejected.values()),
            retries=sum(self.chat.retries.values()),
            tokens=self.chat.tokens["total"],
        )

    def _update_progress(self) -> None:
        self.progress.update(self._counts)

    def report(self, elapsed: float) -> dict[str, Any]:
        """The run's report (redacted), as written to ``OUT.report.json`` and printed."""
        accepted = self.accepted_total
        retries, tokens = self.chat.retries, self.chat.tokens
        report = {
            "out": str(self.opts.out),
            "rejects": str(self.opts.rejects_path),
            "config_id": self.cfg,
            "model": self.opts.model,
            "base_url": redact_url(self.base_url),
            "task_types": self.types,
            "requested": self.opts.count,
            "requested_by_type": self.quota,
            "accepted": accepted,
            "accepted_by_type": {t: self.quota[t] - self.missing(t) for t in self.types},
            "accepted_this_run": self.accepted_run,
            "resumed_with": self.resumed,
            "missing": self.opts.count - accepted,
            "complete": accepted == self.opts.count,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected.most_common()),
            "rejected_by_reason_all_runs": dict((self.rejected + self.rejected_before).most_common()),
            "requests": self.requests,
            "requests_failed": self.requests_failed,
            "retries": sum(retries.values()),
            "retries_by_cause": dict(retries.most_common()),
            "tokens": {k: tokens[k] for k in ("prompt", "completion", "total")},
            "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(self.requests / elapsed, 2) if elapsed else None,
            "accepted_per_s": round(self.accepted_run / elapsed, 2) if elapsed else None,
            "near_duplicates": {"pool": len(self.pool), **dict(self.pool.stats)},
            "seeds_overlapping_eval_sets": self.seeds_contaminated,
            "partial_lines_cut": self.store.cut_bytes,
            "stopped": self.fatal or self.stopped,
        }
        return self.redact.value(report)
