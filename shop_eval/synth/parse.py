"""A model's reply → records, or the reason each block was rejected.

The reply is split on lines holding only the separator (``###``).  In each block the prompt starts after the
first line beginning ``Input:`` and the answer follows the *last* line beginning ``Output:`` (so a prompt that
ends with its own ``Output:`` line survives).  The answer text becomes a truth through the loaders' alpaca
conversion (:func:`shop_eval.loaders.record_from_alpaca`, the one such conversion), and the record's own truth
check (:mod:`shop_eval.task_types`) judges it, against the prompt's numbered options
(:func:`shop_eval.prompt_options.parse_options`) where it has any.  A block whose answer is no answer of its task
type is ``invalid_output``; one whose answer is well-formed but names an option the prompt does not list (it
would pass for a prompt without options) is ``answer_out_of_range``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import DataError
from ..loaders import LoadResult, record_from_alpaca
from ..prompt_options import parse_options
from ..records import Record
from .prompts import SEPARATOR

# why a block or a request is rejected (the report counts them; docs/synth.md lists them)
R_NO_MARKERS = "no_markers"
R_EMPTY_INPUT = "empty_input"
R_EMPTY_OUTPUT = "empty_output"
R_INVALID_OUTPUT = "invalid_output"
R_OUT_OF_RANGE = "answer_out_of_range"
R_TRUNCATED = "truncated"
R_DUPLICATE = "duplicate"
R_NEAR_DUPLICATE = "near_duplicate"
R_CONTAMINATED = "contaminated"
R_SURPLUS = "surplus"
R_EMPTY_RESPONSE = "empty_response"
R_REQUEST_FAILED = "request_failed"

#: a prompt without numbered options (see parse_block)
_NO_OPTIONS = "(a prompt without numbered options)"


@dataclass
class Rejected:
    reason: str
    detail: str
    text: str


_INPUT_RE = re.compile(r"^[ \t]*(?:\*\*)?Input(?:\*\*)?:(?:\*\*)?[ \t]*(.*)$", re.MULTILINE)
_OUTPUT_RE = re.compile(r"^[ \t]*(?:\*\*)?Output(?:\*\*)?:(?:\*\*)?[ \t]*(.*)$", re.MULTILINE)


def split_blocks(text: str, separator: str = SEPARATOR) -> tuple[list[str], str]:
    """(complete blocks, the text after the last separator line)."""
    parts = re.split(rf"^[ \t]*{re.escape(separator)}[ \t]*$", text, flags=re.MULTILINE)
    return parts[:-1], parts[-1]


def parse_block(block: str, task_type: str, task_name: str, source: str = "reply") -> Record | Rejected:
    """One ``Input:`` … ``Output:`` block → a validated Record, or why not."""
    raw = block.strip()
    m_in = _INPUT_RE.search(block)
    outs = list(_OUTPUT_RE.finditer(block))
    if m_in is None or not outs or outs[-1].start() < m_in.start():
        return Rejected(R_NO_MARKERS, "no 'Input:' line followed by an 'Output:' line", raw)
    m_out = outs[-1]
    prompt = (m_in.group(1) + block[m_in.end() : m_out.start()]).strip()
    answer = (m_out.group(1) + block[m_out.end() :]).strip()
    if not prompt:
        return Rejected(R_EMPTY_INPUT, "empty input", raw)
    if not answer:
        return Rejected(R_EMPTY_OUTPUT, "empty output", raw)
    try:
        rec = _convert(prompt, answer, task_type, task_name, source)
    except DataError as err:
        # well-formed for its task type when the prompt's options are not consulted: it names one it does not list
        out_of_range = parse_options(prompt) is not None and _converts(answer, task_type, task_name, source)
        return Rejected(R_OUT_OF_RANGE if out_of_range else R_INVALID_OUTPUT, err.message, raw)
    return rec


def _convert(prompt: str, answer: str, task_type: str, task_name: str, source: str) -> Record:
    row = {"instruction": prompt, "output": answer, "task_type": task_type}
    return record_from_alpaca(row, source, "", task_name, LoadResult())


def _converts(answer: str, task_type: str, task_name: str, source: str) -> bool:
    """Whether ``answer`` is a valid answer of ``task_type`` for a prompt that lists no options."""
    try:
        _convert(_NO_OPTIONS, answer, task_type, task_name, source)
    except DataError:
        return False
    return True


def parse_reply(
    text: str, task_type: str, task_name: str, *, truncated: bool = False, separator: str = SEPARATOR
) -> list[Record | Rejected]:
    """Split a reply on the separator and parse every block.  The text after the last separator
    counts as a block when it holds an ``Input:`` line, unless the reply was cut off
    (``finish_reason == "length"``): then it is rejected as ``truncated``."""
    blocks, tail = split_blocks(text, separator)
    out: list[Record | Rejected] = [parse_block(b, task_type, task_name) for b in blocks if b.strip()]
    if _INPUT_RE.search(tail):
        if truncated:
            out.append(Rejected(R_TRUNCATED, "the reply was cut off (finish_reason=length)", tail.strip()))
        else:
            out.append(parse_block(tail, task_type, task_name))
    return out
