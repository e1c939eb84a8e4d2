"""Answer extraction: the protocol's ``official`` parsers, and a ``flexible`` extractor beside them.

``official`` reproduces the ShopBench starter kit exactly (../shared/docs/shopbench-protocol.md),
Python's own edge cases included (``str.isnumeric`` accepts other Unicode numerals, ``int`` accepts
Unicode decimal digits and surrounding white space).  ``flexible`` reads what chatty models write
("The answer is 2", "Answer: [1, 3]", lists, JSON, markdown, role tags, repeated answers) and says
when it found nothing (``failed``), so a parse-failure rate can be reported.

Classification is not in the protocol; its ``official`` reading is the project's definition: the
first non-empty line of the stripped response, compared to the truth after :func:`normalize_label`.

No parser raises, whatever the string (tested with hypothesis).
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

MAX_RESPONSE_CHARACTERS = 5000
EXTRACTORS = ("official", "flexible")


@dataclass(frozen=True)
class Extraction:
    value: Any
    failed: bool


# =========================================================================== official


def _official_multiple_choice(response: str) -> int:
    try:
        return int(response.strip()[0])
    except Exception:  # empty, or a character int() refuses
        return -1


def _numeric_pieces(response: str) -> list[int]:
    cleaned = "".join(c for c in response if c.isnumeric() or c in (",", " "))
    out = []
    for piece in cleaned.split(","):
        try:
            out.append(int(piece))
        except ValueError:  # "1 2", "", "½", "²", or more than 4300 digits
            pass
    return out


def _official_ranking(response: str) -> list[int]:
    items = [x for x in _numeric_pieces(response) if x <= 5][:5]
    if len(items) != len(set(items)):
        return []
    return items


def _official_retrieval(response: str) -> list[int]:
    return _numeric_pieces(response)[:3]


def _official_ner(response: str) -> list[str]:
    try:
        parsed = ast.literal_eval(response)
    except BaseException as exc:  # SyntaxError, ValueError, MemoryError, RecursionError, TypeError ...
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        parsed = None
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return parsed
    return [piece.strip() for piece in response.split(",") if piece.strip()]


def _official_generation(response: str) -> str:
    return response.strip()


def _official_classification(response: str) -> str:
    for line in response.strip().split("\n"):
        if line.strip():
            return line.strip()
    return ""


_OFFICIAL = {
    "multiple-choice": _official_multiple_choice,
    "ranking": _official_ranking,
    "retrieval": _official_retrieval,
    "named_entity_recognition": _official_ner,
    "generation": _official_generation,
    "classification": _official_classification,
}


def official_extract(task_type: str, response: str) -> Any:
    """The protocol's parser for ``task_type`` applied to ``response`` cut to 5000 characters."""
    return _for_type(_OFFICIAL, task_type)(_as_text(response)[:MAX_RESPONSE_CHARACTERS])


def _as_text(response: Any) -> str:
    return response if isinstance(response, str) else "" if response is None else str(response)


def _for_type(table: dict[str, Any], task_type: str) -> Any:
    try:
        return table[task_type]
    except KeyError:
        raise ValueError(f"unknown task_type {task_type!r}") from None


def _official_failed(task_type: str, value: Any) -> bool:
    if task_type == "multiple-choice":
        return value == -1
    return len(value) == 0


# =========================================================================== flexible

_ROLE_TAGS = re.compile(
    r"<\|[a-z_]+\|>|</?s>|\[/?INST\]|<</?SYS>>|<\|?(?:im_start|im_end|eot_id|end_of_text|endoftext)\|?>",
    re.IGNORECASE,
)
_ROLE_LINE = re.compile(r"^\s*(?:assistant|system|user)\s*(?:\n|:)", re.IGNORECASE | re.MULTILINE)
_ANSWER_MARK = re.compile(
    r"(?:final\s+answer|the\s+answer\s+is|answer\s+is|answer|output|response|result|ranking|entities|label"
    r"|category|sentiment|prediction)\s*(?:is|would\s+be|are)?\s*[:：=\-]?\s*",
    re.IGNORECASE,
)
_MARKDOWN = re.compile(r"\*\*|__|`+|^#+\s*", re.MULTILINE)
_INT = re.compile(r"(?<![\d.])\d{1,6}(?![\d])")
_LIST_LITERAL = re.compile(r"\[[^\[\]]*\]", re.DOTALL)
_BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,3}[.)]|\(\d{1,3}\)|[a-zA-Z][.)])\s+(.*\S)\s*$")
_OPTION_LINE = re.compile(r"^\s*(\d{1,3})[.)]\s+\S", re.MULTILINE)


def _clean(response: str, nfkc: bool = True) -> str:
    text = response[:20000]
    if nfkc:  # full-width digits and brackets; not for free text, where it would change the answer
        text = unicodedata.normalize("NFKC", text)
    text = _ROLE_LINE.sub("\n", _ROLE_TAGS.sub("\n", text))
    text = _MARKDOWN.sub("", text)
    return text.strip()


def _answer_segment(text: str) -> str:
    """Text after the first answer marker ("The answer is", "Answer:", ...), else the whole text."""
    m = _ANSWER_MARK.search(text)
    if m and text[m.end() :].strip():
        return text[m.end() :].strip()
    return text


def count_candidates(prompt: str | None) -> int | None:
    """Number of numbered options/candidates in a prompt ("0. foo", "1) bar" lines), if any."""
    if not prompt:
        return None
    nums = sorted({int(x) for x in _OPTION_LINE.findall(prompt)})
    if len(nums) < 2 or nums[0] not in (0, 1) or nums != list(range(nums[0], nums[-1] + 1)):
        return None  # no numbered option list (or numbers that are not one)
    return nums[-1] + 1 if nums[0] == 0 else nums[-1]


def _first_line_ints(text: str) -> list[int]:
    for line in text.split("\n"):
        found = [int(x) for x in _INT.findall(line)]
        if found:
            return found
    return []


def _dedupe(seq):
    seen, out = set(), []
    for x in seq:
        key = x.lower() if isinstance(x, str) else x
        if key not in seen:
            seen.add(key)
            out.append(x)
    return out


def _literal_list(text: str) -> list | None:
    for m in _LIST_LITERAL.finditer(text):
        chunk = m.group(0)
        for loader in (json.loads, ast.literal_eval):
            try:
                val = loader(chunk)
            except Exception:
                continue
            if isinstance(val, list) and val:
                return val
    return None


def _index_list(text: str, limit: int | None, lo: int, hi: int | None) -> list[int]:
    seg = _answer_segment(text)
    lit = _literal_list(seg) or _literal_list(text)
    values: list[int] = []
    if lit is not None and all(isinstance(x, int) or (isinstance(x, str) and x.strip().isdigit()) for x in lit):
        values = [int(x) for x in lit]
    else:
        lines = [ln for ln in seg.split("\n") if ln.strip()]
        bullets = [_BULLET.match(ln) for ln in lines]
        if sum(1 for b in bullets if b) >= 2:
            for ln, b in zip(lines, bullets, strict=False):
                if not b:
                    continue
                head = re.match(r"\s*(?:item|candidate|product|option|#)?\s*#?(\d{1,6})\b", b.group(1), re.IGNORECASE)
                if head:
                    values.append(int(head.group(1)))
                else:
                    marker = re.match(r"\s*(\d{1,3})[.)]", ln)
                    if marker:
                        values.append(int(marker.group(1)))
        if not values:
            values = _first_line_ints(seg)
    values = [v for v in values if v >= lo and (hi is None or v <= hi)]
    values = _dedupe(values)
    return values[:limit] if limit else values


def _flex_multiple_choice(text: str, prompt: str | None, labels) -> Extraction:
    n = count_candidates(prompt)
    seg = _answer_segment(text)
    for source in (seg, text):
        m = re.search(r"(?:option|choice)\s*\(?(\d{1,3})\)?", source, re.IGNORECASE)
        cands = [int(m.group(1))] if m else []
        cands += [int(x) for x in _INT.findall(source)]
        for c in cands:
            if n is None or 0 <= c < n:
                return Extraction(c, False)
    return Extraction(-1, True)


def _flex_retrieval(text: str, prompt: str | None, labels) -> Extraction:
    n = count_candidates(prompt)
    vals = _index_list(text, 3, 0, (n - 1 if n and _zero_based(prompt) else n))
    return Extraction(vals, not vals)


def _zero_based(prompt: str | None) -> bool:
    return bool(prompt and re.search(r"^\s*0[.)]\s", prompt, re.MULTILINE))


def _flex_ranking(text: str, prompt: str | None, labels) -> Extraction:
    n = count_candidates(prompt)
    vals = _index_list(text, None, 1, n)
    return Extraction(vals, not vals)


def _strip_quotes(s: str) -> str:
    return s.strip().strip("\"'“”‘’`").strip()


def _flex_ner(text: str, prompt: str | None, labels) -> Extraction:
    seg = _answer_segment(text)
    lit = _literal_list(seg) or _literal_list(text)
    ents: list[str] = []
    if lit is not None and all(isinstance(x, str) for x in lit):
        ents = [x.strip() for x in lit]
    else:
        quoted = re.findall(r"[\"“]([^\"“”\n]{1,200})[\"”]", seg)
        lines = [ln for ln in seg.split("\n") if ln.strip()]
        bullets = [b.group(1) for b in (_BULLET.match(ln) for ln in lines) if b]
        if len(bullets) >= 2:
            ents = [_strip_quotes(b) for b in bullets]
        elif quoted:
            ents = [_strip_quotes(q) for q in quoted]
        elif lines:
            ents = [_strip_quotes(p) for p in lines[0].split(",")]
    ents = _dedupe([e for e in ents if e and e.lower() not in ("none", "n/a")])
    return Extraction(ents, not ents)


def _flex_generation(text: str, prompt: str | None, labels) -> Extraction:
    m = re.match(r"\s*(?:answer|output|response)\s*[:：]\s*", text, re.IGNORECASE)
    if m:
        text = text[m.end() :]
    lines = text.strip().split("\n")
    # a model that repeats its answer: keep one copy
    if len(lines) > 1 and len({ln.strip() for ln in lines if ln.strip()}) == 1:
        text = lines[0]
    text = text.strip()
    return Extraction(text, not text)


def normalize_label(text: str) -> str:
    """Classification labels compare after: NFKC, case-fold, drop a leading option marker ("a)", "2.",
    "(b)") or colon, surrounding quotes/brackets and trailing punctuation, collapse white space."""
    if not isinstance(text, str):
        return ""
    s = unicodedata.normalize("NFKC", text).casefold().strip()
    s = re.sub(r"^[:\-–—\s]+", "", s)
    s = re.sub(r"^(?:\(?[a-z0-9]\)|[a-z0-9]\.)\s+", "", s)
    s = s.strip().strip("\"'“”‘’`[]()").strip()
    s = re.sub(r"[.!?;,:]+$", "", s)
    return re.sub(r"\s+", " ", s).strip()


def _flex_classification(text: str, prompt: str | None, labels) -> Extraction:
    seg = _answer_segment(text)
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
    first = _official_classification(seg)
    return Extraction(first, not normalize_label(first))


_FLEXIBLE = {
    "multiple-choice": _flex_multiple_choice,
    "ranking": _flex_ranking,
    "retrieval": _flex_retrieval,
    "named_entity_recognition": _flex_ner,
    "generation": _flex_generation,
    "classification": _flex_classification,
}


def flexible_extract(task_type: str, response: str, *, prompt: str | None = None, labels=None) -> Extraction:
    """Robust extraction for chatty output; ``prompt`` (the example's input) bounds candidate indices,
    ``labels`` (a label set) lets classification find the label named in a sentence."""
    response = _as_text(response)
    fn = _for_type(_FLEXIBLE, task_type)
    try:
        return fn(_clean(response, nfkc=task_type not in ("generation", "named_entity_recognition")), prompt, labels)
    except RecursionError:  # pathological nesting in a literal
        empty: Any = (
            -1 if task_type == "multiple-choice" else ([] if task_type not in ("generation", "classification") else "")
        )
        return Extraction(empty, True)


def extract(
    task_type: str, response: str, extractor: str = "official", *, prompt: str | None = None, labels=None
) -> Extraction:
    """Extract an answer with the named extractor (``official`` or ``flexible``)."""
    if extractor == "official":
        value = official_extract(task_type, response)
        return Extraction(value, _official_failed(task_type, value))
    if extractor == "flexible":
        return flexible_extract(task_type, response, prompt=prompt, labels=labels)
    raise ValueError(f"unknown extractor {extractor!r} (one of {EXTRACTORS})")
