"""``shop-eval demo OUT`` (``make demo``): the whole pipeline offline on CPU in minutes; ``shop-eval sample-data
OUT`` and ``shop-eval tiny-model OUT``: its first two stages on their own.  The library: :mod:`shop_eval.demo`,
:mod:`shop_eval.sample_data`, :mod:`shop_eval.tiny`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..demo import PRESETS, StageError
from ..demo import __doc__ as DEMO_DOC
from ..errors import ShopEvalError
from ..options import float_in, int_in, option
from .args import add_command


@dataclass
class DemoOptions:
    out: str = option(help="output folder (e.g. demo_out)", positional=True)
    seed: int = option(0, help="seed", type=int_in(0, 2**32 - 1))
    preset: str = option("demo", help="small: the shortened test run", choices=list(PRESETS))
    no_preprocess: bool = option(False, help="skip the separate `axolotl preprocess` calls")
    limit: float | None = option(None, help="lm-eval --limit (rows per task) for a quicker look",
                                 type=float_in(0, lo_open=True))  # fmt: skip


@dataclass
class SampleDataOptions:
    out: str = option(help="output folder", positional=True)
    seed: int = option(0, help="seed", type=int_in(0, 2**32 - 1))
    preset: str = option("demo", help="size", choices=["demo", "small"])


@dataclass
class TinyOptions:
    out: str = option(help="output folder", positional=True)
    seed: int = option(0, help="seed", type=int_in(0, 2**32 - 1))
    quick: bool = option(False, help="smaller and faster (seconds; for tests)")
    corpus: str | None = option(None, help="corpus JSONL ({'text': ...} a line); default: the sample corpus")


class StageFailed(ShopEvalError):
    pass


def register(sub) -> None:
    help_ = "the whole pipeline offline on CPU: data -> tiny model -> CPT -> SFT -> eval -> leaderboard"
    add_command(sub, "demo", DemoOptions, run_demo, help_, DEMO_DOC)
    help_ = "write the sample corpus, train/test ShopBench JSONL and SFT chat rows"
    add_command(sub, "sample-data", SampleDataOptions, run_sample_data, help_)
    help_ = "build the tiny Llama base model from scratch (tokenizer + pretraining)"
    add_command(sub, "tiny-model", TinyOptions, run_tiny, help_)


def run_demo(opts: DemoOptions) -> int:
    from ..demo import run_demo as demo

    try:
        report = demo(opts.out, seed=opts.seed, preset=opts.preset, preprocess=not opts.no_preprocess,
                      limit=opts.limit)  # fmt: skip
    except StageError as exc:
        raise StageFailed(str(exc)) from None
    return 0 if report else 1


def run_sample_data(opts: SampleDataOptions) -> int:
    from ..sample_data import build_sample_data

    print(json.dumps(build_sample_data(opts.out, seed=opts.seed, preset=opts.preset), indent=2))
    return 0


def run_tiny(opts: TinyOptions) -> int:
    from ..tiny import build_tiny_model

    out = build_tiny_model(opts.out, seed=opts.seed, quick=opts.quick, corpus=opts.corpus)
    info = json.loads((out / "tiny_build.json").read_text())
    info.pop("losses")
    print(json.dumps(info, indent=2))
    return 0
