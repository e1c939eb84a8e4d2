"""Continued-pretraining corpus builder: product metadata, descriptions and reviews → clean JSONL
(``{"text": ...}``, axolotl's ``completion`` type).

Steps, in order (each removal counted by reason in the report):

1. read JSON Lines or JSON arrays; the text is one field or several joined by newlines
   (``text_fields=("title", "description")``); a row that is not valid JSON, not an object, or lacks every
   text field is a *bad row*, reported with its file and line (never dropped silently);
2. clean: HTML entities unescaped, ``<script>``/``<style>`` blocks and tags removed (block tags become line
   breaks, inline ones like ``<b>`` vanish, others become a space), control characters dropped, runs of spaces collapsed, at most one blank line in a row;
3. ``empty`` and ``too_short`` (fewer than ``min_words`` words) removed;
4. ``language`` (optional): keep only texts whose detected language (langdetect, seeded) is in ``languages``;
5. ``exact_duplicate``: same normalised text (:func:`shop_eval.decontam.normalize`) as an earlier row;
6. ``near_duplicate``: MinHash (datasketch, 128 permutations) over word 5-gram shingles, LSH at Jaccard
   ``near_dup_threshold`` (0.8) against the rows already kept — the first of a cluster is kept.
"""

from __future__ import annotations

import html
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..decontam import normalize
from ..io import iter_json_array, iter_json_lines, json_kind, read_text
from ..records import DataError

REASONS = ("empty", "too_short", "language", "exact_duplicate", "near_duplicate")

_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCK = re.compile(r"<\s*(br|/p|p|/div|div|/li|li|/tr|tr|/h[1-6]|h[1-6])\b[^>]*>", re.IGNORECASE)
_INLINE = re.compile(r"<\s*/?\s*(b|i|u|em|strong|span|a|font|small|sup|sub|mark)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[a-zA-Z/!][^<>]*>")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANKS = re.compile(r"\n\s*\n(\s*\n)+")


def clean_text(text: str) -> str:
    """HTML and whitespace clean-up (see module docstring)."""
    text = unicodedata.normalize("NFC", text)
    if "<" in text:
        text = _SCRIPT.sub(" ", text)
        text = _BLOCK.sub("\n", text)
        text = _INLINE.sub("", text)
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CTRL.sub(" ", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


@dataclass
class CorpusReport:
    files: list[str] = field(default_factory=list)
    rows: int = 0
    kept: int = 0
    html_cleaned: int = 0
    removed: Counter = field(default_factory=Counter)
    bad_rows: list[str] = field(default_factory=list)
    languages: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def to_dict(self, max_bad: int = 50) -> dict[str, Any]:
        return {
            "files": self.files,
            "rows": self.rows,
            "kept": self.kept,
            "removed": sum(self.removed.values()),
            "removed_by_reason": {r: self.removed.get(r, 0) for r in REASONS},
            "bad_rows": len(self.bad_rows),
            "bad_row_examples": self.bad_rows[:max_bad],
            "html_cleaned": self.html_cleaned,
            "languages_detected": dict(self.languages.most_common()) if self.languages else None,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None,
        }


def iter_rows(path: Path, report: CorpusReport) -> Iterator[tuple[str, Any]]:
    """``(location, object)`` for each row of a JSON Lines or JSON-array file.  A bad JSON line is
    reported and skipped; a syntax error inside a JSON array ends that file (reported)."""
    source = str(path)
    text = read_text(path)
    if json_kind(text) == "array":
        try:
            for where, obj in iter_json_array(text, source):
                yield f"{source}:{where}", obj
        except DataError as err:
            report.bad_rows.append(str(err) + " (rest of the file not read)")
        return
    for where, obj in iter_json_lines(text, source):
        if isinstance(obj, DataError):
            report.bad_rows.append(str(obj))
            continue
        yield f"{source}:{where}", obj


def row_text(obj: Any, fields: Sequence[str]) -> str | None:
    """The row's text: its string (or list-of-strings) fields joined by newlines; None when it has none."""
    if not isinstance(obj, dict):
        return None
    parts: list[str] = []
    found = False
    for f in fields:
        v = obj.get(f)
        if isinstance(v, str):
            found = True
            parts.append(v)
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            found = True
            parts.extend(v)
    return "\n".join(p for p in parts if p.strip()) if found else None


def _shingles(words: list[str], k: int = 5) -> list[bytes]:
    if len(words) <= k:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)]


def language_codes() -> list[str]:
    """The language codes langdetect knows (``en``, ``de``, ``ja``, ``zh-cn`` ...)."""
    from langdetect import detector_factory

    detector_factory.init_factory()
    return sorted(detector_factory._factory.get_lang_list())


def _language_detector(seed: int):
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = seed

    def lang(text: str) -> str:
        try:
            return detect(text)
        except LangDetectException:
            return "unknown"

    return lang


def build_corpus(
    paths: Iterable[str | Path],
    *,
    text_fields: Sequence[str] = ("text",),
    min_words: int = 5,
    languages: Sequence[str] | None = None,
    near_dup_threshold: float | None = 0.8,
    num_perm: int = 128,
    seed: int = 0,
) -> tuple[list[dict[str, str]], CorpusReport]:
    """Clean, filter and deduplicate; returns the kept ``{"text": ...}`` rows and the report."""
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    report = CorpusReport()
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in (".json", ".jsonl") and f.is_file())
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    report.files = [str(f) for f in files]
    lang_of = _language_detector(seed) if languages else None
    wanted = {code.lower() for code in languages or ()}
    lsh = MinHashLSH(threshold=near_dup_threshold, num_perm=num_perm) if near_dup_threshold else None
    seen: set[int] = set()
    kept: list[dict[str, str]] = []
    for path in files:
        for where, obj in iter_rows(path, report):
            raw = row_text(obj, text_fields)
            if raw is None:
                what = "not a JSON object" if not isinstance(obj, dict) else f"no text field ({', '.join(text_fields)})"
                report.bad_rows.append(f"{where}: {what}")
                continue
            text = clean_text(raw)
            if text != raw.strip() and "<" in raw:
                report.html_cleaned += 1
            if not text:
                report.removed["empty"] += 1
                continue
            words = normalize(text).split()
            if len(words) < min_words:
                report.removed["too_short"] += 1
                continue
            if lang_of is not None:
                lang = lang_of(text)
                report.languages[lang] += 1
                if lang not in wanted:
                    report.removed["language"] += 1
                    continue
            key = hash(" ".join(words))
            if key in seen:
                report.removed["exact_duplicate"] += 1
                continue
            seen.add(key)
            if lsh is not None:
                mh = MinHash(num_perm=num_perm, seed=seed)
                mh.update_batch(_shingles(words))
                if lsh.query(mh):
                    report.removed["near_duplicate"] += 1
                    continue
                lsh.insert(str(len(kept)), mh)
            kept.append({"text": text})
    report.kept = len(kept)
    report.rows = report.kept + sum(report.removed.values()) + len(report.bad_rows)
    report.seconds = time.perf_counter() - t0
    return kept, report
