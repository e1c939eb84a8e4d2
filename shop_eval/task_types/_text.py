"""Text helpers shared by the task types' parsers (nothing here knows a task type)."""

from __future__ import annotations

import ast
import json
import re
import unicodedata

#: the protocol cuts every response to this many characters before parsing
MAX_RESPONSE_CHARACTERS = 5000


def as_text(response: object) -> str:
    return response if isinstance(response, str) else "" if response is None else str(response)


def int_or_none(piece: str) -> int | None:
    """Python's ``int()`` of ``piece``, or None where it refuses ("1 2", "", "½", "²", > 4300 digits)."""
    try:
        return int(piece)
    except ValueError:
        return None


def numeric_pieces(response: str) -> list[int]:
    """The kit's cleaning for index lists: keep ``isnumeric()`` characters, ``,`` and space; split on ``,``;
    ``int()`` each piece, skipping the pieces it refuses."""
    cleaned = "".join(c for c in response if c.isnumeric() or c in (",", " "))
    return [v for v in map(int_or_none, cleaned.split(",")) if v is not None]


def int_pieces(text: str) -> list[int]:
    """Split on ``,`` and ``int()`` each piece, skipping refusals (no character cleaning)."""
    return [v for v in map(int_or_none, text.split(",")) if v is not None]


def first_line(text: str) -> str:
    """The first line after trimming leading and trailing newlines (the kit's BLEU cut)."""
    return text.lstrip("\n").rstrip("\n").split("\n")[0]


# --------------------------------------------------------------------------- flexible reading

ROLE_TAGS = re.compile(
    r"<\|[a-z_]+\|>|</?s>|\[/?INST\]|<</?SYS>>|<\|?(?:im_start|im_end|eot_id|end_of_text|endoftext)\|?>",
    re.IGNORECASE,
)
ROLE_LINE = re.compile(r"^\s*(?:assistant|system|user)\s*(?:\n|:)", re.IGNORECASE | re.MULTILINE)
ANSWER_MARK = re.compile(
    r"(?:final\s+answer|the\s+answer\s+is|answer\s+is|answer|output|response|result|ranking|entities|label"
    r"|category|sentiment|prediction)\s*(?:is|would\s+be|are)?\s*[:：=\-]?\s*",
    re.IGNORECASE,
)
MARKDOWN = re.compile(r"\*\*|__|`+|^#+\s*", re.MULTILINE)
INT = re.compile(r"(?<![\d.])\d{1,6}(?![\d])")
LIST_LITERAL = re.compile(r"\[[^\[\]]*\]", re.DOTALL)
BULLET = re.compile(r"^\s*(?:[-*•·]|\d{1,3}[.)]|\(\d{1,3}\)|[a-zA-Z][.)])\s+(.*\S)\s*$")


def clean(response: str, nfkc: bool = True) -> str:
    """Role tags, role lines and markdown out; NFKC (full-width digits, brackets) unless ``nfkc`` is False."""
    text = response[:20000]
    if nfkc:  # not for free text, where it would change the answer
        text = unicodedata.normalize("NFKC", text)
    text = ROLE_LINE.sub("\n", ROLE_TAGS.sub("\n", text))
    text = MARKDOWN.sub("", text)
    return text.strip()


def answer_segment(text: str) -> str:
    """Text after the first answer marker ("The answer is", "Answer:", ...), else the whole text."""
    m = ANSWER_MARK.search(text)
    if m and text[m.end() :].strip():
        return text[m.end() :].strip()
    return text


def first_line_ints(text: str) -> list[int]:
    for line in text.split("\n"):
        found = [int(x) for x in INT.findall(line)]
        if found:
            return found
    return []


def dedupe(seq):
    seen, out = set(), []
    for x in seq:
        key = x.lower() if isinstance(x, str) else x
        if key not in seen:
            seen.add(key)
            out.append(x)
    return out


def literal_list(text: str) -> list | None:
    """The first non-empty ``[...]`` in ``text`` that JSON or a Python literal reads as a list."""
    for m in LIST_LITERAL.finditer(text):
        chunk = m.group(0)
        for loader in (json.loads, ast.literal_eval):
            try:
                val = loader(chunk)
            except Exception:
                continue
            if isinstance(val, list) and val:
                return val
    return None


def index_list(text: str, limit: int | None, lo: int, hi: int | None) -> list[int]:
    """Candidate indices from a chatty answer: a list literal, a bulleted list, or the first line's integers;
    kept within ``lo..hi``, de-duplicated, at most ``limit``."""
    seg = answer_segment(text)
    lit = literal_list(seg) or literal_list(text)
    values: list[int] = []
    if lit is not None and all(isinstance(x, int) or (isinstance(x, str) and x.strip().isdigit()) for x in lit):
        values = [int(x) for x in lit]
    else:
        lines = [ln for ln in seg.split("\n") if ln.strip()]
        bullets = [BULLET.match(ln) for ln in lines]
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
            values = first_line_ints(seg)
    values = [v for v in values if v >= lo and (hi is None or v <= hi)]
    values = dedupe(values)
    return values[:limit] if limit else values


def strip_quotes(s: str) -> str:
    return s.strip().strip("\"'“”‘’`").strip()


def normalize_label(text: object) -> str:
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


def first_nonempty_line(response: str) -> str:
    for line in response.strip().split("\n"):
        if line.strip():
            return line.strip()
    return ""
