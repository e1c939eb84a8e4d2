"""The ``shop-eval`` command: one module per sub-command (``shop_eval/cli/<command>.py``), each declaring its
options once as a dataclass (:mod:`.args`) and calling a library function.  :func:`main` is the one place
that turns errors into exit codes:

=====  ===========================================================================================
code   when
=====  ===========================================================================================
0      success
2      bad input, options or output paths (one line ``error: ...`` naming the file, line, field or
       option); argparse's own usage errors
130    interrupted (Ctrl-C, SIGTERM); the previous outputs are left as they were
1      an internal error (a bug: one line; ``-v`` shows the traceback)
=====  ===========================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from ..errors import ShopEvalError
from .args import from_namespace

#: the sub-command modules, in the order ``shop-eval --help`` lists them
COMMANDS = (
    "score",
    "convert",
    "eval",
    "leaderboard",
    "data",
    "synth",
    "demo",
    "resources",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shop-eval",
        description="Fine-tune and score LLMs on ShopBench (Amazon KDD Cup 2024) and Shopping MMLU.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks for internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def _os_message(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    what = exc.strerror or str(exc)
    return f"{where}: {what}" if where else what


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.suppress(ValueError):  # not the main thread: nothing to install
        signal.signal(signal.SIGTERM, _sigterm)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except KeyboardInterrupt:
        print("interrupted (nothing was written)", file=sys.stderr)
        return 130
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        opts = from_namespace(args._options, args)
        return int(args._run(opts) or 0)
    except KeyboardInterrupt:
        print("interrupted (no output is left half-written)", file=sys.stderr)
        return 130
    except ShopEvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `shop-eval ... | head`
        with contextlib.suppress(ValueError, OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keep interpreter shutdown quiet
        return 1
    except OSError as exc:
        print(f"error: {_os_message(exc)}", file=sys.stderr)
        return 2
    except RecursionError:
        print("error: input nested too deeply to read", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory (an input or a value in it is too large)", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.verbose:
            raise
        print(f"error: internal error: {type(exc).__name__}: {exc} (a bug: -v shows the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """The ``shop-eval`` console script: :func:`main`, then a signal that comes while the process exits (the run's
    outputs are complete by then) cannot turn its exit code into a crash."""
    rc = main()
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(rc)


if __name__ == "__main__":
    entry()
