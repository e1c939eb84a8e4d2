"""``shop-eval convert IN OUT.jsonl``: any supported input format → ShopBench JSON Lines."""

from __future__ import annotations

import json
import sys

from .io import write_jsonl
from .loaders import FORMATS, load_records


def register(sub) -> None:
    p = sub.add_parser("convert", help="convert ShopBench JSONL / EC-Guide / alpaca data to ShopBench JSONL")
    p.add_argument("input", help="file or folder")
    p.add_argument("output", help="output .jsonl")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--skip-invalid", action="store_true", help="count and report bad rows instead of failing")
    p.set_defaults(func=run)


def run(args) -> int:
    res = load_records(args.input, args.format, args.skip_invalid)
    n = write_jsonl(args.output, res.records)
    print(json.dumps({"written": n, **res.report()}, indent=2, ensure_ascii=False), file=sys.stderr)
    return 0
