"""The options of a synth run, declared once: the library reads this dataclass, and
:mod:`shop_eval.cli.synth` turns it into the command's flags (:func:`shop_eval.cli.args.add_options`).

Every value is checked where it is parsed (the ``type=`` checkers of :mod:`shop_eval.options`: a bad value is a
one-line usage error, exit code 2, before anything runs) and again by :meth:`SynthOptions.__post_init__` when
the library is called directly, so ``SynthOptions(rpm=-5, ...)`` fails as ``--rpm -5`` does.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from .. import task_types as registry
from ..errors import UsageError
from ..loaders import FORMATS
from ..options import float_in, http_url, int_in, nonempty, option
from .dedupe import ROUGE_THRESHOLD

HTTP_TRANSPORTS = ("aiohttp", "httpx")


def parse_task_types(value: str) -> list[str]:
    """``--task-type``: one task type, a comma list (any spelling the loaders accept: ``ner``, ``Multiple
    Choice``) or ``all``.  ``all`` is the empty list: every task type the seeds hold."""
    if value.strip().lower() == "all":
        return []
    out: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        t = registry.canonical(part)
        if t is None:
            raise argparse.ArgumentTypeError(
                f"unknown task type {part!r} (one of {', '.join(registry.TASK_TYPES)}, or all)"
            )
        if t not in out:
            out.append(t)
    return out


def split_template_spec(spec: str) -> tuple[str | None, Path]:
    """``PATH`` or ``TYPE=PATH`` → (task type or None, path).  A path that exists is a path even when it
    holds a ``=``."""
    key, sep, path = spec.partition("=")
    if not sep or Path(spec).exists():
        return None, Path(spec)
    named = parse_task_types(key)
    if len(named) != 1:
        raise argparse.ArgumentTypeError(f"{spec!r}: name one task type before '='")
    return named[0], Path(path)


def template_spec(spec: str) -> str:
    """``--template`` checker: the form, and that the file exists."""
    _, path = split_template_spec(spec)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path}: no such template file")
    return spec


def resolve_templates(specs: list[str], types: list[str]) -> dict[str, Path]:
    """The ``--template`` values as ``{task type: path}``; a bare PATH needs exactly one task type."""
    out: dict[str, Path] = {}
    for spec in specs:
        t, path = split_template_spec(spec)
        if t is None:
            if len(types) != 1:
                raise UsageError(f"--template {spec!r}: with several task types write TYPE=PATH")
            t = types[0]
        elif t not in types:
            raise UsageError(f"--template {spec!r}: task type {t!r} is not generated (--task-type)")
        out[t] = path
    return out


@dataclass
class SynthOptions:
    """One synth run (see docs/synth.md)."""

    seeds: str = option(help="seed examples: a file or folder in any format the loaders read", positional=True)
    out: Path = option(help="output .jsonl (append-only; ShopBench records + 'id')", type=Path)
    model: str = option(help="model name sent to the endpoint", type=nonempty)
    count: int = option(help="items to produce (split evenly over the task types)", type=int_in(1, 10**9))
    task_types: list[str] = option(
        [], help="one of the six task types, a comma list, or 'all' (default: the types the seeds hold)",
        flags=["--task-type"], metavar="TYPES", type=parse_task_types, repeat=False,
    )  # fmt: skip
    base_url: str | None = option(None, help="OpenAI-compatible API base URL (default: $OPENAI_BASE_URL, "
                                  "else the OpenAI API)", type=http_url)  # fmt: skip
    api_key_env: str = option("OPENAI_API_KEY", help="environment variable holding the API key", type=nonempty)
    templates: list[str] = option([], help="prompt template: PATH (one task type) or TYPE=PATH; repeatable",
                                  flags=["--template"], metavar="[TYPE=]PATH", type=template_spec)  # fmt: skip
    seed_format: str = option("auto", help="format of the seeds (default: detected)", choices=FORMATS)
    skip_invalid: bool = option(False, help="skip (and count) seed rows that fail validation")
    eval_sets: list[Path] = option([], help="decontaminate against this evaluation set (repeatable)",
                                   flags=["--eval-set"], metavar="PATH", type=Path)  # fmt: skip
    shots: int = option(3, help="seed examples per request (default 3)", type=int_in(1, 100))
    per_request: int = option(5, help="new examples asked for per request (default 5)", type=int_in(1, 1000))
    temperature: float = option(1.0, help="sampling temperature (default 1)", type=float_in(0))
    top_p: float = option(1.0, help="nucleus sampling (default 1)", type=float_in(0, 1, lo_open=True))
    max_tokens: int = option(2048, help="completion tokens per request at most (default 2048)", type=int_in(1))
    seed: int = option(0, help="seed of the few-shot sampling", type=int_in(0, 2**32 - 1))
    concurrency: int = option(8, help="requests in flight at most (default 8)", type=int_in(1, 10_000))
    rpm: float = option(0.0, help="requests per minute (0: no limit)", type=float_in(0))
    tpm: float = option(0.0, help="tokens per minute (0: no limit)", type=float_in(0))
    timeout: float = option(60.0, help="seconds per request (default 60)", type=float_in(0, lo_open=True))
    http: str = option("aiohttp", help="the openai client's HTTP transport (aiohttp: less CPU per request; "
                       "httpx: the client's default)", choices=HTTP_TRANSPORTS)  # fmt: skip
    max_retries: int = option(8, help="retries per request (default 8)", type=int_in(0, 1000))
    backoff: float = option(1.0, help="backoff multiplier in seconds (default 1)", type=float_in(0))
    backoff_max: float = option(60.0, help="longest backoff in seconds (default 60)", type=float_in(0))
    max_retry_after: float = option(300.0, help="longest Retry-After honoured, in seconds (default 300)",
                                    type=float_in(0))  # fmt: skip
    rouge_threshold: float = option(ROUGE_THRESHOLD, help=f"near-duplicate ROUGE-L F (default {ROUGE_THRESHOLD}; "
                                    "0: off)", type=float_in(0, 1))  # fmt: skip
    rejects: Path | None = option(None, help="rejects log (default OUT.rejects.jsonl)", type=Path)
    report: Path | None = option(None, help="report JSON (default OUT.report.json)", type=Path)
    fsync_interval: float = option(1.0, help="seconds between fsyncs (default 1)", type=float_in(0))
    max_requests: int = option(0, help="stop after this many requests (0: 10x the need)", type=int_in(0))
    max_failed: int = option(20, help="stop after this many failed requests in a row (default 20)",
                             type=int_in(1))  # fmt: skip
    task_name_prefix: str = option("synth", help="task_name of the items: PREFIX/<type>", type=nonempty)
    progress: bool | None = option(None, help="always show progress (default: on a terminal)")

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.eval_sets = [Path(p) for p in self.eval_sets]
        for name in ("rejects", "report"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)))
        _check_values(self)
        self.task_types = list(dict.fromkeys(t for spec in self.task_types for t in parse_task_types(spec)))

    @property
    def rejects_path(self) -> Path:
        return self.rejects or self.out.with_name(self.out.name + ".rejects.jsonl")

    @property
    def report_path(self) -> Path:
        return self.report or self.out.with_name(self.out.name + ".report.json")

    @property
    def lock_path(self) -> Path:
        return self.out.with_name(self.out.name + ".lock")


def _check_values(opts: SynthOptions) -> None:
    """The flags' own checks, for values given to the library directly (a UsageError naming the flag)."""
    for f in fields(opts):
        check, choices, value = f.metadata.get("type"), f.metadata.get("choices"), getattr(opts, f.name)
        flag = (f.metadata.get("flags") or ["--" + f.name.replace("_", "-")])[0]
        if choices and value not in choices:
            raise UsageError(f"{flag} {value!r}: expected one of {', '.join(choices)}")
        if check is None or check is Path or value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                continue
            try:
                check(v if isinstance(v, str) else repr(v))
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{flag}: {exc}") from None
