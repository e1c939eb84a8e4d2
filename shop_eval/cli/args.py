"""Options declared once, as dataclasses, and turned into argparse flags (as axolotl's ``cli/args.py``).

    @dataclass
    class ScoreOptions:
        data: str = option(help="data file or folder", positional=True)
        out: str = option(help="result JSON")                    # required: no default
        extractors: list[str] = option(["official"], help="...", type=choice_list(PROTOCOLS))

:func:`add_options` adds one argument per field (``--out`` for ``out``; ``bool`` fields are switches; ``list``
fields repeat or take ``nargs``); :func:`from_namespace` builds the dataclass back.  Values are checked where
they are parsed (``type=`` callables below): a bad value is argparse's usual one-line error and exit code 2,
before anything runs.  Checks that involve several options go in the dataclass's ``__post_init__`` and raise
:class:`~shop_eval.errors.UsageError`.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import Any

from ..options import choice_list, float_in, http_url, int_in, nonempty, option

__all__ = [
    "add_command",
    "add_options",
    "choice_list",
    "float_in",
    "from_namespace",
    "http_url",
    "int_in",
    "nonempty",
    "option",
]


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(the element type, whether it is a list) of ``X``, ``X | None``, ``list[X]``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else (str, False)
    if origin in (list, Sequence):
        (inner,) = typing.get_args(tp) or (str,)
        return inner, True
    return tp, False


def add_options(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        m = dict(f.metadata)
        if "help" not in m:
            continue
        base, is_list = _unwrap(hints[f.name])
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        default = f.default if f.default is not MISSING else (f.default_factory() if has_default else None)
        kw: dict[str, Any] = {"help": m["help"]}
        if m["metavar"]:
            kw["metavar"] = m["metavar"]
        if m["choices"]:
            kw["choices"] = m["choices"]
        if base is bool and not is_list:
            names = m["flags"] or ["--" + f.name.replace("_", "-")]
            kw.update(dest=f.name, default=bool(default))
            kw["action"] = argparse.BooleanOptionalAction if default else "store_true"
            parser.add_argument(*names, **kw)
            continue
        kw["type"] = m["type"] or (base if base in (int, float) else None)
        if kw["type"] is None:
            del kw["type"]
        if is_list and not m["repeat"]:
            pass
        elif is_list:
            if m["nargs"] is not None or m["positional"]:
                kw["nargs"] = m["nargs"] or "+"
            else:
                kw["action"] = "append"
        elif m["nargs"] is not None:
            kw["nargs"] = m["nargs"]
        if m["positional"]:
            if has_default and "nargs" not in kw:
                kw["nargs"] = "?"
            if has_default:
                kw["default"] = default
            parser.add_argument(f.name, **kw)
        else:
            names = m["flags"] or ["--" + f.name.replace("_", "-")]
            kw["dest"] = f.name
            if not has_default:
                kw["required"] = True
            else:
                kw["default"] = None if kw.get("action") == "append" else default
            parser.add_argument(*names, **kw)
    return parser


def from_namespace(cls: type, ns: argparse.Namespace) -> Any:
    """The dataclass ``cls`` from parsed arguments (repeated options left unset take the field's default)."""
    values = {}
    for f in fields(cls):
        if "help" not in f.metadata:
            continue
        v = getattr(ns, f.name)
        if v is None and f.default_factory is not MISSING:
            v = f.default_factory()
        values[f.name] = v
    return cls(**values)


def add_command(sub, name: str, options: type, run, help: str, description: str | None = None):
    """One subcommand: its parser (``description`` shown as written), the flags of the ``options`` dataclass,
    and what :func:`shop_eval.cli.main` calls (``run(options)``).  Returns the parser for extra arguments."""
    p = sub.add_parser(name, help=help, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p, options)
    p.set_defaults(_options=options, _run=run)
    return p
