"""The protocol's prompt text and the answer format the official parsers read."""

from __future__ import annotations

import json

from .records import Record

#: The starter kit's system text, prepended to ``input_field`` (followed by a blank line).
SYSTEM_PROMPT = (
    "You are a helpful online shopping assistant. Please answer the following question about online "
    "shopping and follow the given instructions."
)

#: The kit's decoding budget: 1 new token for multiple choice, 100 otherwise.
OFFICIAL_MAX_NEW_TOKENS = {"multiple-choice": 1}
OFFICIAL_DEFAULT_MAX_NEW_TOKENS = 100


def official_prompt(input_field: str) -> str:
    """The baseline prompt: system text, a blank line, then the example's own prompt."""
    return f"{SYSTEM_PROMPT}\n\n{input_field}"


def ranking_order(weights: list[float]) -> list[int]:
    """Relevance weights (one per candidate, prompt order) → 1-based candidate indices, best first.
    Ties keep prompt order."""
    return [i + 1 for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i))]


def format_answer(record: Record) -> str:
    """The truth written exactly as the official parser expects to read it:
    MC ``2``; retrieval ``6, 9, 15``; ranking an ordering ``4, 2, 1, 3``; NER a JSON list
    (a valid Python literal, so commas inside entities survive); generation/classification the text."""
    t, truth = record.task_type, record.output_field
    if t == "multiple-choice":
        return str(truth)
    if t == "retrieval":
        return ", ".join(str(x) for x in truth)
    if t == "ranking":
        return ", ".join(str(x) for x in ranking_order(truth))
    if t == "named_entity_recognition":
        return json.dumps(truth, ensure_ascii=False)
    if isinstance(truth, list):  # generation with several references
        return truth[0]
    return truth
