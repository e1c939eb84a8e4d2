"""The one reader of lm-eval ``samples_<task>_<time>.jsonl`` files (``lm_eval ... --log_samples``).

A samples file holds one line per evaluated doc *and filter pipeline*; the raw response is the same under every
pipeline, so each (file, ``doc_id``) is read once.  The response of a generative task is ``resps[0][0]``; of a
log-likelihood multiple-choice task, the index of the option with the highest log-likelihood (lm-eval 0.4.11
logs them as strings: ``[["-11.05", "False"], ...]``; ``simple_evaluate``'s own samples hold tuples), as ``shop_multiple_choice_ll`` scores it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import read_json_lines

#: the ``origin`` of an absent task's placeholder doc (shop_eval.lm_eval_bridge.absent_docs)
ABSENT = "absent"


@dataclass(frozen=True)
class Sample:
    source: str
    where: str
    doc_id: Any
    doc: dict
    response: str


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, (int, float)):
        v = float(x)
    elif isinstance(x, str):
        try:
            v = float(x)
        except ValueError:
            return None
    else:
        return None
    return v if math.isfinite(v) else None


def argmax_first(values: list[float]) -> int:
    """The first index of the maximum (numpy's argmax)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def response_of(sample: dict, source: str, where: str) -> str:
    """The response text of one logged sample (see the module docstring)."""
    resps = sample.get("resps")
    if not isinstance(resps, list) or not resps:
        raise DataError(source, where, "resps", "missing or empty in the lm-eval sample")
    first = resps[0]
    # log-likelihood multiple choice: one [loglik, is_greedy] per option -> the argmax option index (lists in a
    # samples file, tuples in the samples simple_evaluate returns)
    seq = (list, tuple)
    if all(isinstance(r, seq) and r and isinstance(r[0], seq) and r[0] and _number(r[0][0]) is not None for r in resps):
        return str(argmax_first([_number(r[0][0]) for r in resps]))
    if all(
        isinstance(r, seq) and len(r) == 2 and _number(r[0]) is not None and not isinstance(r[0], str) for r in resps
    ):
        return str(argmax_first([_number(r[0]) for r in resps]))
    if isinstance(first, list) and first and isinstance(first[0], str):
        return first[0]
    if isinstance(first, str):
        return first
    raise DataError(source, where, "resps", f"cannot read a response from {first!r:.80}")


def looks_like_samples(first_row: Any) -> bool:
    return isinstance(first_row, dict) and "doc" in first_row and "resps" in first_row


def read_samples(paths: list[str | Path], *, keep_absent: bool = False) -> list[Sample]:
    """Every evaluated doc of the given samples files, once each, in file order (an absent task's placeholder
    docs only with ``keep_absent``)."""
    out: list[Sample] = []
    for path in paths:
        source = str(path)
        seen: set[Any] = set()
        for where, sample in read_json_lines(path):
            if not isinstance(sample, dict):
                raise DataError(source, where, None, f"expected an lm-eval sample object, got {type(sample).__name__}")
            doc = sample.get("doc")
            if not isinstance(doc, dict):
                raise DataError(source, where, "doc", "missing: run lm-eval with --log_samples")
            doc_id = sample.get("doc_id")
            if not isinstance(doc_id, (int, str)) or isinstance(doc_id, bool):
                raise DataError(source, where, "doc_id", f"missing or not an id: {doc_id!r:.40}")
            if doc_id in seen:  # the same doc under another filter pipeline: same raw response
                continue
            seen.add(doc_id)
            if doc.get("origin") == ABSENT and not keep_absent:  # the placeholder of a task the data lacks
                continue
            out.append(Sample(source, where, doc_id, doc, response_of(sample, source, where)))
    return out
