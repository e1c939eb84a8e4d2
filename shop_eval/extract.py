"""Answer extraction, the API: ``extract(task_type, response, protocol, prompt=..., labels=...)``.

The parsers themselves belong to the task types (:mod:`shop_eval.task_types`); the protocols that combine
them with metrics are :mod:`shop_eval.scoring.protocols`:

* ``official`` reproduces the ShopBench starter kit exactly (../shared/docs/shopbench-protocol.md), Python's
  own edge cases included (``str.isnumeric`` accepts other Unicode numerals, ``int`` accepts Unicode decimal
  digits and surrounding white space), after cutting the response to 5000 characters;
* ``flexible`` reads what chatty models write ("The answer is 2", "Answer: [1, 3]", lists, JSON, markdown,
  role tags, repeated answers), bounded by the prompt's options, and says when it found nothing;
* ``shoppingmmlu`` is the Shopping MMLU authors' reading (../shared/docs/shopping-mmlu-format.md).

No parser raises, whatever the string (tested with hypothesis).
"""

from __future__ import annotations

from typing import Any

from .prompt_options import count_candidates
from .scoring.protocols import PROTOCOLS, read
from .task_types import MAX_RESPONSE_CHARACTERS, Extraction
from .task_types._text import normalize_label

EXTRACTORS = PROTOCOLS

__all__ = [
    "EXTRACTORS",
    "MAX_RESPONSE_CHARACTERS",
    "Extraction",
    "count_candidates",
    "extract",
    "flexible_extract",
    "normalize_label",
    "official_extract",
]


def extract(
    task_type: str, response: Any, extractor: str = "official", *, prompt: str | None = None, labels=None
) -> Extraction:
    """The answer ``extractor`` (a protocol: official, flexible, shoppingmmlu) reads from ``response``."""
    return read(extractor, task_type, response, prompt, labels)


def official_extract(task_type: str, response: Any) -> Any:
    """The protocol's parser for ``task_type`` applied to ``response`` cut to 5000 characters."""
    return read("official", task_type, response).value


def flexible_extract(task_type: str, response: Any, *, prompt: str | None = None, labels=None) -> Extraction:
    """Robust extraction for chatty output; ``prompt`` bounds candidate indices, ``labels`` (a label set) lets
    classification find the label named in a sentence."""
    return read("flexible", task_type, response, prompt, labels)
