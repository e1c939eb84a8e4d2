"""Multiple choice: the truth is the number of the right option.

ShopBench and Shopping MMLU number the options from 0 (``0. ...\n1. ...\nAnswer: ``); a numbered list from 1
inside a multiple-choice prompt is part of the question (a review's "1) ... 2) ..."), not its options, so only a
0-based list bounds the answer here (EC-Guide's rating questions hold such reviews).
"""

from __future__ import annotations

import re
from typing import Any

from ..prompt_options import Options, parse_options
from . import Extraction, TaskType, _text, register


def answer_options(prompt: str | None) -> Options | None:
    """The prompt's answer options: its numbered list when that list starts at 0."""
    opts = parse_options(prompt)
    return opts if opts is not None and opts.zero_based else None


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@register
class MultipleChoice(TaskType):
    name = "multiple-choice"
    short = "multiple_choice"
    label = "multiple choice"
    aliases = ("multiple choice", "multi choice", "multichoice", "mcq", "multiple_choice")
    metrics = ("accuracy",)
    default_metric = "accuracy"
    max_new_tokens = 1
    empty = -1
    index_answers = True

    def truth_error(self, truth: Any, metric: str, prompt: str | None = None) -> str | None:
        if not is_int(truth):
            return f"expected an int option index, got {type(truth).__name__} {truth!r:.60}"
        if truth < 0:
            return f"option index {truth} is negative (-1 is what an unparseable answer reads as)"
        opts = answer_options(prompt)
        if opts is not None and truth not in opts.numbers:
            return f"option index {truth} is not one of the prompt's options {list(opts.numbers)}"
        return None

    def format_answer(self, truth: Any) -> str:
        return str(truth)

    def truth_from_text(self, text: str, prompt: str | None = None) -> int:
        if not re.fullmatch(r"\d+", text):
            raise ValueError(f"multiple-choice truth must be an option index, got {text!r:.60}")
        return int(text)

    def same_answer(self, value: Any, truth: Any) -> bool:
        return value == truth

    def official(self, response: str) -> int:
        try:
            return int(response.strip()[0])
        except Exception:  # empty, or a character int() refuses
            return -1

    def official_failed(self, value: Any) -> bool:
        return value == -1

    def flexible(self, text: str, prompt: str | None, labels) -> Extraction:
        opts = answer_options(prompt)
        seg = _text.answer_segment(text)
        for source in (seg, text):
            m = re.search(r"(?:option|choice)\s*\(?(\d{1,3})\)?", source, re.IGNORECASE)
            cands = [int(m.group(1))] if m else []
            cands += [int(x) for x in _text.INT.findall(source)]
            for c in cands:
                if opts is None or c in opts.numbers:
                    return Extraction(c, False)
        return Extraction(-1, True)

    def shoppingmmlu(self, response: str) -> Extraction:
        """The authors strip spaces only; the answer is the first character (compared to the truth as a string)."""
        g = response.lstrip(" ").rstrip(" ")
        if g == "":
            return Extraction("", True)
        return Extraction(g[0], g[0] not in "0123456789")
