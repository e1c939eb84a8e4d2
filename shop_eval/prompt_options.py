"""The one reader of a prompt's numbered option list (``0. red case`` / ``1) blue case`` lines).

An option line starts (after white space, and optionally a short label such as ``Products:``) with 1–3
digits, then ``.`` or ``)``, then white space and text: ``0. red case``, ``Products: 0. Size 10 brush``,
``Option: 2) green``.  ``12.9 inch sleeve`` is not one (no white space after the dot).  The options of a prompt are the numbers of its option lines when they form one
run ``0..N-1`` or ``1..N``; anything else (a single line, gaps, a list starting at 5) is no option list.

Used by the flexible extractor (to bound candidate indices), the log-likelihood multiple-choice task
(``doc_to_choice``), the truth checks of multiple-choice / retrieval / ranking rows and ``shop-eval synth``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPTION_LINE = re.compile(r"^[^\S\r\n]*(?:[A-Za-z][A-Za-z ]{0,30}:[^\S\r\n]*)?(\d{1,3})[.)][^\S\r\n]+\S", re.MULTILINE)


@dataclass(frozen=True)
class Options:
    """A prompt's numbered options: ``numbers`` in order (``[0, 1, 2, 3]`` or ``[1, …, 15]``)."""

    numbers: tuple[int, ...]

    @property
    def zero_based(self) -> bool:
        return bool(self.numbers) and self.numbers[0] == 0

    @property
    def count(self) -> int:
        return len(self.numbers)

    @property
    def highest(self) -> int:
        return self.numbers[-1]

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and bool(self.numbers) and self.numbers[0] <= index <= self.numbers[-1]


def option_numbers(prompt: str | None) -> list[int]:
    """Every number that starts an option line, in order of appearance (may repeat or have gaps)."""
    if not prompt:
        return []
    return [int(x) for x in _OPTION_LINE.findall(prompt)]


def parse_options(prompt: str | None) -> Options | None:
    """The prompt's option list, or None when it has none (fewer than two lines, or not one run from 0 or 1)."""
    nums = sorted(set(option_numbers(prompt)))
    if len(nums) < 2 or nums[0] not in (0, 1) or nums != list(range(nums[0], nums[-1] + 1)):
        return None
    return Options(tuple(nums))


def count_candidates(prompt: str | None) -> int | None:
    """How many numbered options/candidates the prompt lists (None when it lists none)."""
    opts = parse_options(prompt)
    return None if opts is None else opts.count
