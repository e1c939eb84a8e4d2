"""Generation: the truth is a reference text (or, for the sentence-similarity metrics, several)."""

from __future__ import annotations

import re
from typing import Any

from . import Extraction, TaskType, register

EMBEDDING_METRICS = ("sent-transformer", "multilingual-sent-transformer")


@register
class Generation(TaskType):
    name = "generation"
    short = "generation"
    label = "generation"
    metrics = ("rougel", "sent-transformer", "multilingual-sent-transformer", "bleu", "jp-bleu")
    default_metric = "rougel"
    empty = ""
    flexible_nfkc = False

    def truth_error(self, truth: Any, metric: str, prompt: str | None = None) -> str | None:
        if isinstance(truth, str):
            return None
        if metric in EMBEDDING_METRICS and isinstance(truth, list) and truth and all(isinstance(x, str) for x in truth):
            return None
        return f"expected a str, got {type(truth).__name__} {truth!r:.60}"

    def format_answer(self, truth: Any) -> str:
        return truth if isinstance(truth, str) else truth[0]

    def official(self, response: str) -> str:
        return response.strip()

    def flexible(self, text: str, prompt: str | None, labels) -> Extraction:
        m = re.match(r"\s*(?:answer|output|response)\s*[:：]\s*", text, re.IGNORECASE)
        if m:
            text = text[m.end() :]
        lines = text.strip().split("\n")
        # a model that repeats its answer: keep one copy
        if len(lines) > 1 and len({ln.strip() for ln in lines if ln.strip()}) == 1:
            text = lines[0]
        text = text.strip()
        return Extraction(text, not text)

    def shoppingmmlu(self, response: str) -> Extraction:
        """The raw response: the authors' ROUGE-L and similarity read it unstripped (BLEU takes its first line)."""
        return Extraction(response, not response.strip())
