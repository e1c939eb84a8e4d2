"""Retrieval: the truth is the list of the right candidates' numbers (as the prompt numbers them)."""

from __future__ import annotations

from typing import Any

from ..prompt_options import parse_options
from . import Extraction, TaskType, _text, digits_list, register
from .multiple_choice import is_int


@register
class Retrieval(TaskType):
    name = "retrieval"
    short = "retrieval"
    label = "retrieval"
    metrics = ("hit rate@3",)
    default_metric = "hit rate@3"
    empty = []
    index_answers = True

    def truth_error(self, truth: Any, metric: str, prompt: str | None = None) -> str | None:
        if not isinstance(truth, list) or not truth or not all(is_int(x) for x in truth):
            return f"expected a non-empty list of int, got {truth!r:.60}"
        if any(x < 0 for x in truth):
            return f"candidate indices must not be negative, got {truth!r:.60}"
        opts = parse_options(prompt)
        if opts is not None:
            bad = sorted({x for x in truth if x not in opts.numbers})
            if bad:
                return f"candidate(s) {bad} are not among the prompt's candidates {opts.numbers[0]}..{opts.highest}"
        return None

    def format_answer(self, truth: Any) -> str:
        return ", ".join(str(x) for x in truth)

    def truth_from_text(self, text: str, prompt: str | None = None) -> list[int]:
        nums = digits_list(text)
        if not nums:
            raise ValueError(f"retrieval truth must be a list of indices like '4, 2, 1', got {text!r:.60}")
        return nums

    def official(self, response: str) -> list[int]:
        return _text.numeric_pieces(response)[:3]

    def flexible(self, text: str, prompt: str | None, labels) -> Extraction:
        opts = parse_options(prompt)
        vals = _text.index_list(text, 3, 0, opts.highest if opts else None)
        return Extraction(vals, not vals)

    def shoppingmmlu(self, response: str) -> Extraction:
        """The whole response (all its lines: the authors' first-line cut is overwritten) split on ``,``."""
        vals = _text.int_pieces(response.strip())[:3]
        return Extraction(vals, not vals)
