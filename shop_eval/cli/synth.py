"""``shop-eval synth SEEDS --out OUT.jsonl --model M --count N [--task-type all] ...``

Self-Instruct style generation of ShopBench training examples from an OpenAI-compatible endpoint: a few seed
examples per request, the reply split on '###', each example validated, near-duplicates (ROUGE-L > 0.7) and
--eval-set overlaps dropped.  Re-running the same command after an interruption continues where it stopped.
The API key is read from the environment (--api-key-env, default OPENAI_API_KEY) and never written.

Exit status: 0 every requested item exists; 1 the run stopped early (the report's 'stopped'); 2 bad input,
options or output paths; 130 interrupted (what was written stays; re-run to continue).  docs/synth.md has the
details.  The library: :mod:`shop_eval.synth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys

from ..errors import ShopEvalError, UsageError
from ..synth import Synthesizer, SynthOptions
from ..synth.redact import Redactor
from .args import add_command


def register(sub) -> None:
    help_ = "generate synthetic ShopBench training data from an OpenAI-compatible endpoint (resumable)"
    p = add_command(sub, "synth", SynthOptions, run, help_, __doc__)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    p.set_defaults(progress=None)  # None = on a terminal


def run(opts: SynthOptions) -> int:
    key = os.environ.get(opts.api_key_env)
    if not key:
        raise UsageError(
            f"set the API key in the environment variable {opts.api_key_env} (or name another variable with "
            "--api-key-env)"
        )
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # one INFO line per HTTP request is noise here
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    synth = Synthesizer(opts, api_key=key)
    try:
        with synth:
            report = _run_stopping_on_sigterm(synth)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(
            f"interrupted: {synth.accepted_total} of {opts.count} items in {opts.out}; "
            "re-run the same command to continue",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:  # whatever escapes is printed by the caller: never with the key in it
        _raise_redacted(exc, Redactor(key))
        raise
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if report["stopped"]:
        print(f"error: {report['stopped']}; re-run the same command to continue", file=sys.stderr)
        return 1
    return 0 if report["complete"] else 1


def _run_stopping_on_sigterm(synth: Synthesizer) -> dict:
    """``asyncio.run(synth.run())``, SIGTERM handled as asyncio handles Ctrl-C: the run is cancelled, the
    requests in flight with it, the replies already received are written (a KeyboardInterrupt raised at a
    random point of the event loop would leave tasks half done)."""

    async def main() -> dict:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no signals here
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        return await synth.run()

    previous = signal.getsignal(signal.SIGTERM)
    try:
        return asyncio.run(main())
    finally:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)


def _raise_redacted(exc: Exception, redact: Redactor) -> None:
    text = str(exc)
    clean = redact(text)
    if clean != text:
        kind = ShopEvalError if isinstance(exc, ShopEvalError) else RuntimeError
        raise kind(clean) from None
