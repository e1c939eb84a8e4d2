"""Prompt templates and their rendering.

One template per task type ships in ``shop_eval/templates/synth_<short name>.txt``; a template is a
``string.Template`` with ``$examples`` and ``$n_new`` (required), ``$task_type`` and ``$separator``
(``$$`` is a dollar sign).  Each example, shown and expected, is ``Input:``, the prompt, ``Output:``, the
answer (:func:`shop_eval.prompts.format_answer`) and a separator line.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from .. import task_types
from ..errors import DataError
from ..io import read_text
from ..prompts import format_answer
from ..records import Record

SEPARATOR = "###"
TEMPLATE_VARS = ("task_type", "examples", "n_new", "separator")


def template_path(task_type: str) -> Path:
    """The shipped template of ``task_type`` (``shop_eval/templates/synth_<short name>.txt``)."""
    short = task_types.get(task_type).short
    return Path(str(resources.files("shop_eval") / "templates" / f"synth_{short}.txt"))


def read_template(path: str | os.PathLike) -> tuple[str, string.Template]:
    """(text, template) of a prompt template file, its placeholders checked."""
    text = read_text(path).replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as open() reads
    tpl = string.Template(text)
    if not tpl.is_valid():
        raise DataError(str(path), "", None, "invalid template: a '$' that is not a placeholder (write $$)")
    names = set(tpl.get_identifiers())
    unknown = names - set(TEMPLATE_VARS)
    if unknown:
        raise DataError(str(path), "", None, f"unknown placeholder(s) {sorted(unknown)} (known: {list(TEMPLATE_VARS)})")
    for need in ("examples", "n_new"):
        if need not in names:
            raise DataError(str(path), "", None, f"the template must contain ${need}")
    return text, tpl


def load_template(path: str | os.PathLike) -> string.Template:
    """Read a prompt template and check its placeholders."""
    return read_template(path)[1]


def render_example(record: Record, separator: str = SEPARATOR) -> str:
    """A seed example as the model should write new ones: ``Input:``, the prompt, ``Output:``, the
    answer (:func:`format_answer`), the separator line."""
    return f"Input:\n{record.input_field.strip()}\nOutput:\n{format_answer(record)}\n{separator}"


def render_prompt(
    template: string.Template, task_type: str, examples: Iterable[Record], n_new: int, separator: str = SEPARATOR
) -> str:
    return template.substitute(
        task_type=task_type,
        examples="\n".join(render_example(r, separator) for r in examples),
        n_new=n_new,
        separator=separator,
    )
