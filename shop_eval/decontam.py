"""Decontamination: find training examples that overlap an evaluation set.

Two tests, on normalised text (NFKC, lower case, punctuation → space, whitespace collapsed):

* ``exact`` — the whole normalised prompt equals an evaluation prompt;
* ``13-gram`` — the prompt shares a run of ``n`` (default 13, as in GPT-3's and the Llama-2
  contamination studies) consecutive word tokens with an evaluation prompt.

Instruction boilerplate is not contamination: an n-gram that occurs in more than ``template_df``
distinct evaluation prompts (the task's instruction text, shared by every example of a template) is
left out of the index, and :func:`decontaminate` also leaves out n-grams that occur in more than
``train_template_df`` distinct training prompts.  Only the example's own content (product titles,
reviews, queries) can then trigger a match.  In scripts written without spaces (Japanese, Chinese,
Korean) every character is a word, so there a 13-gram is a run of 13 characters.

The index stores Python hashes of n-gram tuples (a set lookup per n-gram), so checking a 52k-row
training set against ~1.2k evaluation prompts takes seconds.  Hashes are per-process: an index is
built and used in memory, never saved.

API::

    index = build_index(eval_records, n=13, name="seed")    # Records or plain strings
    index.match(text)        # -> "exact seed/<task>" | "13-gram seed/<task>" | None
    index.find(text)         # -> Match(kind, eval_set, task, eval_id) | None
    kept, removed, report = decontaminate(train_records, {"seed": seed_records, "dev": dev_records})
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataError
from .io import iter_json_lines, read_text
from .loaders import load_records
from .records import Record

DEFAULT_N = 13
DEFAULT_TEMPLATE_DF = 10
DEFAULT_TRAIN_TEMPLATE_DF = 100

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_WS = re.compile(r"\s+", re.UNICODE)


# Hiragana, Katakana, CJK ideographs, Hangul: scripts written without spaces; each character is a token
_CJK = re.compile(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af])")


def normalize(text: str) -> str:
    """NFKC, lower case, punctuation and symbols → space, each CJK character set apart as a word,
    whitespace collapsed and stripped."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCT.sub(" ", text)
    if not text.isascii():
        text = _CJK.sub(r" \1 ", text)
    return _WS.sub(" ", text).strip()


def tokens(text: str) -> list[str]:
    """The word tokens the n-grams are made of (of the normalised text)."""
    return normalize(text).split()


def ngram_hashes(words: list[str], n: int) -> set[int]:
    """Hashes of all runs of ``n`` consecutive words (none when the text is shorter than ``n``)."""
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


def text_of(item: Any) -> str:
    """The text to check: a Record's prompt (``input_field``), a string, a ShopBench dict's
    ``input_field``, an alpaca dict's instruction + input, or a chat row's user turns."""
    if isinstance(item, Record):
        return item.input_field
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        if isinstance(item.get("input_field"), str):
            return item["input_field"]
        if isinstance(item.get("messages"), list):
            return "\n".join(
                m.get("content", "") for m in item["messages"] if isinstance(m, dict) and m.get("role") == "user"
            )
        if isinstance(item.get("instruction"), str):
            extra = item.get("input")
            return item["instruction"] + (f"\n{extra}" if isinstance(extra, str) and extra.strip() else "")
        if isinstance(item.get("text"), str):
            return item["text"]
    raise TypeError(f"cannot take the text of a {type(item).__name__} (expected a Record, a str or a dict)")


def _task_of(item: Any) -> str:
    if isinstance(item, Record):
        return item.task_name
    if isinstance(item, dict) and isinstance(item.get("task_name"), str):
        return item["task_name"]
    return ""


@dataclass(frozen=True)
class Match:
    kind: str  #: "exact" or "<n>-gram"
    eval_set: str
    task: str
    eval_id: int  #: index of the matched example in the index (across all added sets)

    @property
    def where(self) -> str:
        return "/".join(x for x in (self.eval_set, self.task) if x)

    def __str__(self) -> str:
        return f"{self.kind} {self.where}".rstrip()


class DecontamIndex:
    """Normalised prompts and their n-gram hashes from one or more evaluation sets."""

    def __init__(self, n: int = DEFAULT_N, template_df: int | None = DEFAULT_TEMPLATE_DF):
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.template_df = template_df
        self.docs: list[tuple[str, str]] = []  # (eval_set, task) per example
        self.exact: dict[int, int] = {}  # hash of normalised prompt -> example id
        self.grams: dict[int, int] = {}  # n-gram hash -> first example id holding it
        self.df: Counter[int] = Counter()  # n-gram hash -> number of examples holding it
        self.ignored: set[int] = set()  # template n-grams left out

    def __len__(self) -> int:
        return len(self.docs)

    def add(self, items: Iterable[Record] | Iterable[str], name: str = "") -> DecontamIndex:
        """Add an evaluation set (Records, strings or dicts; see :func:`text_of`) under ``name``."""
        for item in items:
            words = tokens(text_of(item))
            if not words:
                continue
            doc = len(self.docs)
            self.docs.append((name, _task_of(item)))
            self.exact.setdefault(hash(" ".join(words)), doc)
            for h in ngram_hashes(words, self.n):
                self.df[h] += 1
                self.grams.setdefault(h, doc)
        self._prune()
        return self

    def _prune(self) -> None:
        if self.template_df is None:
            return
        for h, c in self.df.items():
            if c > self.template_df and h in self.grams:
                self.ignored.add(h)
                del self.grams[h]

    def ignore(self, hashes: Iterable[int]) -> int:
        """Leave the given n-gram hashes out of matching (e.g. training-side boilerplate)."""
        k = 0
        for h in hashes:
            if self.grams.pop(h, None) is not None:
                self.ignored.add(h)
                k += 1
        return k

    def find(self, text: str) -> Match | None:
        """The first overlap of ``text`` with the index (exact match first), or None."""
        return self.find_tokens(tokens(text))

    def find_tokens(self, words: list[str]) -> Match | None:
        """:meth:`find` on already normalised word tokens."""
        if not words:
            return None
        doc = self.exact.get(hash(" ".join(words)))
        if doc is not None:
            return Match("exact", *self.docs[doc], doc)
        grams = self.grams
        n = self.n
        for i in range(len(words) - n + 1):
            doc = grams.get(hash(tuple(words[i : i + n])))
            if doc is not None:
                return Match(f"{n}-gram", *self.docs[doc], doc)
        return None

    def matched_ids(self, words: list[str]) -> set[int]:
        """Ids of every indexed example that ``words`` overlaps (exact or n-gram)."""
        ids = set()
        doc = self.exact.get(hash(" ".join(words))) if words else None
        if doc is not None:
            ids.add(doc)
        grams, n = self.grams, self.n
        for i in range(len(words) - n + 1):
            doc = grams.get(hash(tuple(words[i : i + n])))
            if doc is not None:
                ids.add(doc)
        return ids

    def match(self, text: str) -> str | None:
        """Why ``text`` is contaminated — ``"exact <set>/<task>"`` or ``"13-gram <set>/<task>"`` (just
        ``"exact"`` / ``"13-gram"`` for an index of plain strings without a name) — or None."""
        m = self.find(text)
        return None if m is None else str(m)


def build_index(
    records: Iterable[Record] | Iterable[str],
    n: int = DEFAULT_N,
    *,
    name: str = "",
    template_df: int | None = DEFAULT_TEMPLATE_DF,
) -> DecontamIndex:
    """An index over one evaluation set (use :meth:`DecontamIndex.add` for more)."""
    return DecontamIndex(n, template_df).add(records, name)


def decontaminate(
    train_records: Iterable[Any],
    eval_sets: dict[str, list[Any]],
    *,
    n: int = DEFAULT_N,
    template_df: int | None = DEFAULT_TEMPLATE_DF,
    train_template_df: int | None = DEFAULT_TRAIN_TEMPLATE_DF,
    max_examples: int = 20,
) -> tuple[list[Any], list[tuple[Any, Match]], dict[str, Any]]:
    """Split ``train_records`` into kept and removed (each removed item with its :class:`Match`).

    ``report``: counts per reason, per evaluation set and task (a removed row counts once, under its first
    match: exact before n-gram, sets in the given order), how many distinct evaluation examples any
    training row overlaps (``eval_examples_found``, ``eval_fraction_found``: how much of each set the
    training data held; an evaluation prompt repeated within its set counts once), and examples.
    """
    train = list(train_records)
    index = DecontamIndex(n, template_df)
    sizes: dict[str, int] = {}
    for name, items in eval_sets.items():
        before = len(index)
        index.add(items, name)
        sizes[name] = len(index) - before

    texts = [tokens(text_of(item)) for item in train]
    train_ignored = 0
    if train_template_df is not None:
        df: Counter[int] = Counter()
        grams = index.grams
        for words in texts:
            df.update(h for h in ngram_hashes(words, n) if h in grams)
        train_ignored = index.ignore(h for h, c in df.items() if c > train_template_df)

    kept: list[Any] = []
    removed: list[tuple[Any, Match]] = []
    found_ids: set[int] = set()
    for item, words in zip(train, texts, strict=True):
        m = index.find_tokens(words)
        if m is None:
            kept.append(item)
        else:
            removed.append((item, m))
            found_ids |= index.matched_ids(words)

    by_set: dict[str, dict[str, Any]] = {
        name: {"eval_examples": sizes[name], "train_removed": 0, "eval_examples_found": 0, "by_task": {}, "by_kind": {}}
        for name in eval_sets
    }
    found: dict[str, set[int]] = {name: set() for name in eval_sets}
    for doc in found_ids:
        found[index.docs[doc][0]].add(doc)
    for _, m in removed:
        s = by_set[m.eval_set]
        s["train_removed"] += 1
        s["by_task"][m.task or "-"] = s["by_task"].get(m.task or "-", 0) + 1
        s["by_kind"][m.kind] = s["by_kind"].get(m.kind, 0) + 1
    for name, s in by_set.items():
        s["eval_examples_found"] = len(found[name])
        s["eval_fraction_found"] = round(len(found[name]) / s["eval_examples"], 4) if s["eval_examples"] else 0.0
        s["by_task"] = dict(sorted(s["by_task"].items()))
    report = {
        "n": n,
        "template_df": template_df,
        "train_template_df": train_template_df,
        "template_ngrams_ignored": {"eval_side": len(index.ignored) - train_ignored, "train_side": train_ignored},
        "train": len(train),
        "kept": len(kept),
        "removed": len(removed),
        "removed_by_kind": dict(Counter(m.kind for _, m in removed)),
        "eval_sets": by_set,
        "examples": [{"match": str(m), "text": text_of(item)[:200]} for item, m in removed[:max_examples]],
    }
    return kept, removed, report


# --------------------------------------------------------------------------- reading the sets


def read_train_rows(path: str, fmt: str) -> tuple[list[Any], list[str], str]:
    """Training rows: raw dicts for chat/text JSONL (written back unchanged), else validated Records."""
    p = Path(path)
    if p.is_file() and p.suffix == ".jsonl":
        first = next(iter_json_lines(read_text(p), str(p)), (None, {}))[1]
        head = first if isinstance(first, dict) else {}
        if isinstance(head, dict) and ("messages" in head or ("text" in head and "input_field" not in head)):
            from .data.corpus import CorpusReport, iter_rows

            rep = CorpusReport()
            rows: list[Any] = []
            for where, obj in iter_rows(p, rep):
                if isinstance(obj, dict) and ("messages" in obj or "text" in obj):
                    rows.append(obj)
                else:
                    rep.bad_rows.append(f"{where}: expected an object with 'messages' or 'text'")
            return rows, rep.bad_rows, "rows"
    res = load_records(p, fmt, skip_invalid=True)
    return res.records, [str(e) for e in res.skipped], "records"


def read_eval_prompts(path: str | Path) -> tuple[list[dict[str, str]], list[str]]:
    """Every prompt of an evaluation set, whatever its truths look like (a row with an unreadable truth
    is still a prompt the model must not have trained on): ``{"text", "task_name"}`` per row, from
    ShopBench / EC-Guide / alpaca / chat rows; the task is the row's ``task_name`` or the file's path."""
    from .data.corpus import CorpusReport, iter_rows

    root = Path(path)
    files = (
        sorted(f for f in root.rglob("*") if f.suffix in (".json", ".jsonl") and f.is_file())
        if root.is_dir()
        else [root]
    )
    if not root.exists():
        raise DataError(str(path), "", None, "no such file or folder")
    if not files:
        raise DataError(str(path), "", None, "a folder without .json/.jsonl files")
    rep = CorpusReport()
    rows: list[dict[str, str]] = []
    for f in files:
        task = f.relative_to(root).with_suffix("").as_posix() if root.is_dir() else f.stem
        for where, obj in iter_rows(f, rep):
            try:
                text = text_of(obj)
            except TypeError:
                rep.bad_rows.append(f"{where}: no prompt (input_field, instruction, messages or text)")
                continue
            name = obj["task_name"] if isinstance(obj, dict) and isinstance(obj.get("task_name"), str) else task
            rows.append({"input_field": text, "task_name": name})
    return rows, rep.bad_rows
