"""``shop-eval synth``: synthetic training data from an OpenAI-compatible endpoint (library: shop_eval.synth)."""

from __future__ import annotations


def register(sub) -> None:
    from ..synth import register as _register
    from ..synth import run

    _register(sub)
    sub.choices["synth"].set_defaults(_options=None, _run=run)
