"""``shop-eval convert IN OUT.jsonl``: any supported input (ShopBench JSONL, EC-Guide, alpaca, a Shopping MMLU
folder or file) → ShopBench JSON Lines."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from ..errors import DataError
from ..io import Outputs
from ..loaders import FORMATS, load_records
from .args import add_command, option


@dataclass
class ConvertOptions:
    input: str = option(help="file or folder", positional=True)
    output: str = option(help="output .jsonl", positional=True)
    format: str = option("auto", help="input format (default: detected)", choices=FORMATS)
    skip_invalid: bool = option(False, help="count and report bad rows instead of failing")


def register(sub) -> None:
    add_command(sub, "convert", ConvertOptions, run, "convert any supported data format to ShopBench JSONL", __doc__)


def run(opts: ConvertOptions) -> int:
    with Outputs(inputs=[opts.input], options={"output": "OUTPUT"}, output=opts.output) as out:
        res = load_records(opts.input, opts.format, opts.skip_invalid)
        if not res.records:
            raise DataError(opts.input, "", None, f"no valid rows ({len(res.skipped)} skipped): nothing to write")
        n = out.write_jsonl("output", res.records)
    print(json.dumps({"written": n, **res.report()}, indent=2, ensure_ascii=False), file=sys.stderr)
    return 0
