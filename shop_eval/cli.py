"""The ``shop-eval`` command.  Each sub-command lives in its own module, which provides
``register(subparsers)``; the parser it adds sets ``func`` to the function that runs it."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .records import DataError

# One line per module that adds sub-commands.
COMMAND_MODULES = [
    "shop_eval.convert",
    "shop_eval.scorer",
    "shop_eval.eval_launch",
    "shop_eval.leaderboard",
    "shop_eval.synth",
    "shop_eval.data.cli",
    "shop_eval.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shop-eval", description="Fine-tune and score LLMs on the ShopBench (KDD Cup 2024) protocol."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        rc = args.func(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
