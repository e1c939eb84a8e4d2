"""Classification (a project extension, not a kit task type): one label out of a label set.

Scored by ``accuracy`` on :func:`normalize_label`; the official reading of a response is its first non-empty
line; the flexible one finds the label set's earliest label named in the answer.  Shopping MMLU's authors
have no such type: their protocol reads it as the official one does.
"""

from __future__ import annotations

import re
from typing import Any

from . import Extraction, TaskType, _text, register
from ._text import normalize_label


@register
class Classification(TaskType):
    name = "classification"
    short = "classification"
    label = "classification"
    metrics = ("accuracy",)
    default_metric = "accuracy"
    in_protocol = False
    empty = ""
    has_label_set = True

    def truth_error(self, truth: Any, metric: str, prompt: str | None = None) -> str | None:
        if isinstance(truth, str) and truth.strip():
            return None
        return f"expected a non-empty str label, got {truth!r:.60}"

    def format_answer(self, truth: Any) -> str:
        return truth

    def same_answer(self, value: Any, truth: Any) -> bool:
        return normalize_label(value) == normalize_label(truth) and normalize_label(truth) != ""

    def official(self, response: str) -> str:
        return _text.first_nonempty_line(response)

    def flexible(self, text: str, prompt: str | None, labels) -> Extraction:
        seg = _text.answer_segment(text)
        if labels:
            norm = {normalize_label(lab): lab for lab in labels if normalize_label(lab)}
            low = normalize_label(seg) if "\n" not in seg else seg.casefold()
            best = None
            for key in norm:
                m = re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", low)
                if m and (best is None or m.start() < best[0] or (m.start() == best[0] and len(key) > len(best[1]))):
                    best = (m.start(), key)
            if best:
                return Extraction(norm[best[1]], False)
        first = _text.first_nonempty_line(seg)
        return Extraction(first, not normalize_label(first))

    def shoppingmmlu(self, response: str) -> Extraction:
        value = self.official(response)
        return Extraction(value, self.official_failed(value))
