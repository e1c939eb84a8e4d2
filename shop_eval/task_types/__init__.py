"""The registry of task types: one definition of each, used by records, loaders, extraction, scoring, the
lm-eval tasks, the leaderboard, the SFT builder and ``shop-eval synth`` (as lm-eval's ifeval keeps one
registry of its instructions).

A task type is a :class:`TaskType` subclass in a module of this package, registered with
:func:`register`.  It says everything the project knows about the type:

* ``name`` (the ShopBench ``task_type`` value), ``short`` (lm-eval task names ``shop_<short>``), ``label``
  (tables), ``aliases`` (noisy spellings and folder names the loaders accept);
* ``metrics`` it may be scored with and its ``default_metric``; ``max_new_tokens`` of the kit's decoding;
* ``truth_error`` (what a valid truth is, checked against the prompt's options where it has any) and
  ``format_answer`` (the truth written as the official parser reads it);
* its parsers: ``official`` (the kit's, exactly), ``flexible`` (robust, for chatty output) and
  ``shoppingmmlu`` (the Shopping MMLU authors' scorer), each with the value of a failed parse.

Adding a task type is one new module here (and its tests); everything else looks it up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from ..prompt_options import parse_options
from . import _text

MAX_RESPONSE_CHARACTERS = _text.MAX_RESPONSE_CHARACTERS


@dataclass(frozen=True)
class Extraction:
    """An extracted answer and whether the parser found nothing it could use (a parse failure)."""

    value: Any
    failed: bool


class TaskType:
    """Base class; see the module docstring.  Subclasses set the class attributes and the parsers."""

    name: ClassVar[str]
    short: ClassVar[str]
    label: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    default_metric: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the kit's decoding budget
    max_new_tokens: ClassVar[int] = 100
    #: False for the project's extension (classification): not one of the kit's task types
    in_protocol: ClassVar[bool] = True
    #: the value a failed official / flexible parse returns
    empty: ClassVar[Any] = ()

    # ----------------------------------------------------------------- truths

    def truth_error(self, truth: Any, metric: str, prompt: str | None = None) -> str | None:
        """Why ``truth`` is not a valid truth of this type (None when it is)."""
        raise NotImplementedError

    def format_answer(self, truth: Any) -> str:
        """The truth written exactly as the official parser reads it back."""
        raise NotImplementedError

    def truth_from_text(self, text: str, prompt: str | None = None) -> Any:
        """An answer written as text (an alpaca ``output``, a synthetic reply) → the typed truth; ``ValueError``
        with the reason when it is not one.  The inverse of :meth:`format_answer`."""
        if not text:
            raise ValueError("empty truth")
        return text

    #: answers of this type are indices (the text may come quoted: '"2"')
    index_answers: ClassVar[bool] = False
    #: rows of this type are read against their task's label set (classification)
    has_label_set: ClassVar[bool] = False

    # ----------------------------------------------------------------- parsers

    def official(self, response: str) -> Any:
        """The kit's parser (the response is already cut to 5000 characters)."""
        raise NotImplementedError

    def official_failed(self, value: Any) -> bool:
        return len(value) == 0

    def flexible(self, text: str, prompt: str | None, labels: list[str] | None) -> Extraction:
        """The robust parser, on the response cleaned by :func:`_text.clean`."""
        raise NotImplementedError

    #: whether the flexible parser reads NFKC-normalised text (not for free text)
    flexible_nfkc: ClassVar[bool] = True

    def shoppingmmlu(self, response: str) -> Extraction:
        """The Shopping MMLU authors' reading of the raw response."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<task type {self.name}>"


REGISTRY: dict[str, TaskType] = {}


def register(cls: type[TaskType]) -> type[TaskType]:
    """Class decorator: add a task type to the registry (in definition order)."""
    inst = cls()
    if inst.name in REGISTRY:
        raise ValueError(f"task type {inst.name!r} registered twice")
    if inst.default_metric not in inst.metrics:
        raise ValueError(f"{inst.name}: default metric {inst.default_metric!r} not in its metrics")
    REGISTRY[inst.name] = inst
    return cls


def get(name: str) -> TaskType:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task_type {name!r} (one of {', '.join(REGISTRY)})") from None


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def by_short(short: str) -> TaskType | None:
    return next((t for t in REGISTRY.values() if t.short == short), None)


def canonical(label: object) -> str | None:
    """A noisy task-type label ("Multiple Choice", "rank", "named-entity-recognition", "MCQ") → its name."""
    if not isinstance(label, str):
        return None
    key = re.sub(r"[\s_\-]+", " ", label.strip().lower())
    for t in REGISTRY.values():
        spellings = {t.name, t.short, t.label, *t.aliases}
        if key in {re.sub(r"[\s_\-]+", " ", s.lower()) for s in spellings}:
            return t.name
    return None


def digits_list(text: str) -> list[int] | None:
    """``"4, 2, 1"`` (optionally in brackets) → ``[4, 2, 1]``; None when the text is not such a list."""
    text = text.strip().strip("[]").strip()
    if not re.fullmatch(r"\d+(\s*,\s*\d+)*", text):
        return None
    return [int(x) for x in text.split(",")]


def options_of(prompt: str | None):
    """The prompt's numbered options (:func:`shop_eval.prompt_options.parse_options`)."""
    return parse_options(prompt)


# The task types, in the order tables show them.  Importing registers them.
from . import multiple_choice, retrieval, ranking, ner, generation, classification  # noqa: E402, F401, I001

#: every registered name, in order
TASK_TYPES: tuple[str, ...] = names()
