"""Ranking: the truth is one relevance weight per candidate, in prompt order; answers are orderings."""

from __future__ import annotations

import math
from typing import Any

from ..prompt_options import parse_options
from . import Extraction, TaskType, _text, digits_list, register

#: weight bound: the gain 2**w - 1 must stay a finite float (and a relevance is never negative)
MAX_WEIGHT = 1000
#: the most candidates an ordering may name when its prompt lists none
MAX_CANDIDATES = 1000


def ordering_to_weights(order: list[int]) -> list[float]:
    """Ranking truth as an ordering of 1-based candidates, best first → per-candidate weights
    (n - rank + 1: the best of n gets n, the last named 1, a candidate not named 0)."""
    n = len(order)
    weights = [0.0] * max(max(order), n)
    for rank, cand in enumerate(order, 1):
        weights[cand - 1] = float(n - rank + 1)
    return weights


def ranking_order(weights: list[float]) -> list[int]:
    """Relevance weights (one per candidate, prompt order) → 1-based candidate indices, best first.
    Ties keep prompt order."""
    return [i + 1 for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i))]


def _is_weight(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= MAX_WEIGHT


@register
class Ranking(TaskType):
    name = "ranking"
    short = "ranking"
    label = "ranking"
    aliases = ("rank", "rankings")
    metrics = ("ndcg",)
    default_metric = "ndcg"
    empty = []
    index_answers = True

    def truth_error(self, truth: Any, metric: str, prompt: str | None = None) -> str | None:
        if not isinstance(truth, list) or not truth or not all(_is_weight(x) for x in truth):
            return f"expected a non-empty list of relevance weights 0 <= w <= {MAX_WEIGHT}, got {truth!r:.60}"
        return None

    def format_answer(self, truth: Any) -> str:
        return ", ".join(str(x) for x in ranking_order(truth))

    def truth_from_text(self, text: str, prompt: str | None = None) -> list[float]:
        """An ordering of 1-based candidates, best first (``"4, 2, 1, 3"``) → one weight per candidate
        (:func:`ordering_to_weights`); it may not name a candidate beyond those the prompt lists."""
        nums = digits_list(text)
        if not nums or min(nums) < 1:
            raise ValueError(f"ranking truth must be a list of indices like '4, 2, 1', got {text!r:.60}")
        if len(set(nums)) != len(nums):
            raise ValueError(f"ranking truth repeats a candidate: {text!r:.60}")
        opts = parse_options(prompt)
        limit = opts.count if opts else MAX_CANDIDATES
        if max(nums) > limit:
            raise ValueError(f"ranking truth names candidate {max(nums)}, the prompt lists {limit}")
        return ordering_to_weights(nums)

    def official(self, response: str) -> list[int]:
        items = [x for x in _text.numeric_pieces(response) if x <= 5][:5]
        if len(items) != len(set(items)):
            return []
        return items

    def flexible(self, text: str, prompt: str | None, labels) -> Extraction:
        opts = parse_options(prompt)  # answers are 1-based candidate numbers: at most the number of candidates
        vals = _text.index_list(text, None, 1, opts.count if opts else None)
        return Extraction(vals, not vals)

    def shoppingmmlu(self, response: str) -> Extraction:
        """First line of a multi-line response, split on ``,``, ``int()`` each piece (no cleaning, no
        de-duplication, no <= 5 filter); the cut to len(truth) is the metric's."""
        g = response
        if "\n" in g:
            g = g.lstrip("\n").rstrip("\n").split("\n")[0]
        vals = _text.int_pieces(g.strip())
        return Extraction(vals, not vals)
