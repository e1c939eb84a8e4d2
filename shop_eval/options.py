"""Options declared once: a dataclass field with :func:`option` metadata is a library setting and, through
:func:`shop_eval.cli.args.add_options`, a command-line flag (as axolotl's ``cli/args.py``).  The checkers
below are argparse ``type=`` callables: a bad value is a one-line usage error at parse time; :func:`flag` reads a
yes/no setting that comes from elsewhere (lm-eval's ``--model_args`` / ``--metadata``, an environment variable).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, field
from typing import Any
from urllib.parse import urlparse

from shop_eval.errors import UsageError

__all__ = ["choice_list", "flag", "float_in", "http_url", "int_in", "nonempty", "option"]


def option(
    default: Any = MISSING,
    *,
    help: str,
    flags: Sequence[str] | None = None,
    positional: bool = False,
    nargs: str | int | None = None,
    type: Callable[[str], Any] | None = None,
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
    repeat: bool = True,
) -> Any:
    """A dataclass field that is also a command-line option (see the module docstring).  A ``list`` field
    repeats (``--weight a --weight b``) unless ``repeat=False``: then one value whose ``type`` gives the list."""
    meta = dict(
        help=help, flags=flags, positional=positional, nargs=nargs, type=type, choices=choices, metavar=metavar,
        repeat=repeat,
    )  # fmt: skip
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    if default is MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- value checks (argparse ``type=``)


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An int within ``lo..hi`` (either end open when None)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{v} is out of range ({_range(lo, hi)})")
        return v

    parse.__name__ = "int"
    return parse


def float_in(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """A finite float within the range (``lo_open``/``hi_open``: that end excluded)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        bad_lo = lo is not None and (v <= lo if lo_open else v < lo)
        bad_hi = hi is not None and (v >= hi if hi_open else v > hi)
        if bad_lo or bad_hi:
            raise argparse.ArgumentTypeError(f"{v:g} is out of range ({_range(lo, hi, lo_open, hi_open)})")
        return v

    parse.__name__ = "number"
    return parse


def _range(lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    left = "" if lo is None else f"{lo} {'<' if lo_open else '<='} "
    right = "" if hi is None else f" {'<' if hi_open else '<='} {hi}"
    return f"{left}x{right}" if (left or right) else "any"


def nonempty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def choice_list(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    """A comma-separated, non-empty list of names out of ``allowed``."""

    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected one or more of {', '.join(allowed)}, comma-separated")
        bad = [x for x in items if x not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)} (one of {', '.join(allowed)})")
        return list(dict.fromkeys(items))

    parse.__name__ = "list"
    return parse


def http_url(text: str) -> str:
    u = urlparse(text)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise argparse.ArgumentTypeError(f"expected an http(s) URL, got {text!r}")
    return text


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def flag(value: Any, name: str, expected: str = "true or false", error: type[UsageError] = UsageError) -> bool:
    """A yes/no setting as lm-eval hands it over from ``--model_args`` / ``--metadata`` (``true``/``false`` as
    bools, ``1``/``0`` as ints, the rest as strings) or as an environment variable holds it: one of
    :data:`TRUE_WORDS` / :data:`FALSE_WORDS` (any case, spaces around); anything else — ``ture``, ``2``, a list —
    is an ``error`` naming ``name`` and the value, never a silent false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise error(f"{name}={value!r}: expected {expected}")
