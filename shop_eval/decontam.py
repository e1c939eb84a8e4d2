"""Decontamination that tells template from content: which training rows hold an evaluation example's
*content* (its product, query or review), and which share only its *instruction text*.

Text is compared as normalised word tokens (NFKC, lower case, punctuation → space, whitespace collapsed; in
scripts written without spaces — Japanese, Chinese, Korean — every character is a word).

**Template and content.**  Every evaluation prompt is split into template words and content runs:

* a run of ``k`` (default 5) words is template when it occurs in at least ``template_df`` (2) distinct prompts
  of the same evaluation task — the instruction text that every example of a template repeats, which a small
  set (4 rows per task) cannot reveal by frequency over the whole set — or in at least ``template_train_df``
  (20) distinct training prompts — instruction text that the training data copied (EC-Guide reuses ShopBench's
  templates, in one variant per target language);
* the first / last words of a prompt (fewer than ``k``: ``"The product"``, ``"Output:"``, which no ``k``-word
  run reaches without taking content along) are template when as many prompts of the task, or of the training
  data, begin / end with the same words;
* the *content runs* are the maximal runs of the other words.

**Overlaps.**  A training row holds an evaluation example's content (kinds, tried in this order):

* ``exact`` — its normalised prompt equals the evaluation prompt (whatever is template);
* ``13-gram`` — it shares ``n`` (13, as GPT-3's and Llama 2's contamination studies) consecutive words that lie
  inside one content run (a review, a long title, an option list in another wording);
* ``item`` — it contains a whole content run of at least ``min_item`` (6) words, at most half of them bare
  numbers (a product title, query or description shorter than ``n`` words, under another instruction; a list
  of numeric options is no item).

A row that shares ``n`` consecutive words with an evaluation prompt but none of its content has a *template
overlap*: it is kept unless ``remove_template`` is set, and reported apart.  ``eval_fraction_found`` is the share
of an evaluation set whose content some training row holds.

The index stores Python hashes of word tuples (one set lookup per n-gram; hashes are per-process, so an index is
built and used in memory, never saved).  Training rows are read once; template statistics count distinct
prompts.

API::

    index = build_index(eval_records, name="seed")      # Records, strings or dicts
    index.match(text)        # -> "exact seed/<task>" | "13-gram seed/<task>" | "item seed/<task>" | None
    index.find(text)         # -> Match(kind, eval_set, task, eval_id, shared) | None  (content only)
    index.content_runs(0)    # -> the content runs of the first evaluation prompt, as text
    kept, removed, report = decontaminate(train_records, {"seed": seed_records, "dev": dev_records})
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, NamedTuple

from .records import Record

DEFAULT_N = 13
DEFAULT_K = 5
DEFAULT_TEMPLATE_DF = 2
DEFAULT_TEMPLATE_TRAIN_DF = 20
DEFAULT_MIN_ITEM = 6
#: 13-grams found in more than this many training prompts are boilerplate for the content grouping of
#: :mod:`shop_eval.data.sft` (its split, not decontamination)
DEFAULT_TRAIN_TEMPLATE_DF = 100

TEMPLATE = "template"

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


def grams(words: list[str] | tuple[str, ...], n: int) -> Iterator[tuple[str, ...]]:
    """Every run of ``n`` consecutive words, as tuples, in order (none when the text is shorter than ``n``)."""
    return zip(*(words[i:] for i in range(n)), strict=False)


def ngram_hashes(words: list[str], n: int) -> set[int]:
    """Hashes of all runs of ``n`` consecutive words (none when the text is shorter than ``n``)."""
    return set(map(hash, grams(words, n)))


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
    kind: str  #: "exact", "<n>-gram", "item" (content) or "template" (instruction text only)
    eval_set: str
    task: str
    eval_id: int  #: index of the matched example in the index (across all added sets)
    shared: str = ""  #: the shared words: the n-gram, the content run, or the instruction text ("" for exact)

    @property
    def content(self) -> bool:
        return self.kind != TEMPLATE

    @property
    def where(self) -> str:
        return "/".join(x for x in (self.eval_set, self.task) if x)

    def __str__(self) -> str:
        return f"{self.kind} {self.where}".rstrip()


class Scan(NamedTuple):
    """What classifying one training prompt needs: the hash of the whole prompt and those of its ``k``- and
    ``n``-grams that occur in the evaluation prompts (``k``-grams: only those that can be content)."""

    exact: int
    kgrams: AbstractSet[int]
    ngrams: AbstractSet[int]


_EMPTY: frozenset[int] = frozenset()


def _check_df(name: str, value: int | None) -> None:
    if value is not None and value < 2:
        raise ValueError(f"{name} must be >= 2 (or None to turn that test off)")


class DecontamIndex:
    """The evaluation prompts, split into template and content, and the hashes that find them in training rows.

    ``add`` evaluation sets; optionally ``scan`` every training prompt (template statistics of the training
    side); the split is made on first use (``build``) and again after more ``add``/``scan`` calls."""

    def __init__(
        self,
        n: int = DEFAULT_N,
        template_df: int | None = DEFAULT_TEMPLATE_DF,
        *,
        k: int = DEFAULT_K,
        template_train_df: int | None = DEFAULT_TEMPLATE_TRAIN_DF,
        min_item: int = DEFAULT_MIN_ITEM,
    ):
        if n < 1 or k < 1:
            raise ValueError("n and k must be >= 1")
        if min_item < k:
            raise ValueError(f"min_item ({min_item}) must be >= k ({k})")
        _check_df("template_df", template_df)
        _check_df("template_train_df", template_train_df)
        self.n, self.k, self.min_item = n, k, min_item
        self.template_df, self.template_train_df = template_df, template_train_df
        self.docs: list[tuple[str, str]] = []  # (eval_set, task) per example
        self.words: list[tuple[str, ...]] = []
        self.texts: list[str] = []
        self.exact: dict[int, list[int]] = {}  # hash of the normalised prompt -> example ids
        self.ngrams: dict[int, list[tuple[int, int]]] = {}  # n-gram hash -> (example id, position), one per example
        self.kgrams: set[int] = set()  # hashes of every k-gram of an evaluation prompt
        self._edges: set[int] = set()  # hashes of every prompt's first / last j < k words
        # training side: distinct prompts holding each evaluation k-gram / beginning or ending with each edge
        self._train_seen: set[int] = set()
        self.train_kdf: Counter[int] = Counter()
        self.train_prefix: Counter[int] = Counter()
        self.train_suffix: Counter[int] = Counter()
        self._stale = True  # the split must be made (again)
        self._scan_ready = False

    def __len__(self) -> int:
        return len(self.docs)

    # ------------------------------------------------------------------ input

    def add(self, items: Iterable[Any], name: str = "") -> DecontamIndex:
        """Add an evaluation set (Records, strings or dicts; see :func:`text_of`) under ``name``."""
        n, k = self.n, self.k
        for item in items:
            text = text_of(item)
            words = tuple(tokens(text))
            if not words:
                continue
            doc = len(self.docs)
            self.docs.append((name, _task_of(item)))
            self.words.append(words)
            self.texts.append(text)
            self.exact.setdefault(hash(" ".join(words)), []).append(doc)
            for pos, g in enumerate(grams(words, n)):
                hits = self.ngrams.setdefault(hash(g), [])
                if not hits or hits[-1][0] != doc:
                    hits.append((doc, pos))
            self.kgrams.update(map(hash, grams(words, k)))
            for j in range(1, min(k, len(words) + 1)):
                self._edges.add(hash(words[:j]))
                self._edges.add(hash(words[-j:]))
        self._stale = True
        self._scan_ready = False
        return self

    def _groups(self) -> dict[tuple[str, str], list[tuple[str, ...]]]:
        """The distinct prompts of each (evaluation set, task)."""
        groups: dict[tuple[str, str], dict[tuple[str, ...], None]] = defaultdict(dict)
        for doc, words in zip(self.docs, self.words, strict=True):
            groups[doc][words] = None
        return {key: list(prompts) for key, prompts in groups.items()}

    def eval_template_kgrams(self) -> set[int]:
        """Hashes of the k-grams that the evaluation side alone makes template in every task holding them (found in
        ``template_df`` distinct prompts of each); the training side's counts cannot change how they are read."""
        if self.template_df is None:
            return set()
        template: set[int] = set()
        content: set[int] = set()
        for prompts in self._groups().values():
            df: Counter[int] = Counter()
            for words in prompts:
                df.update(set(map(hash, grams(words, self.k))))
            for h, c in df.items():
                (template if c >= self.template_df else content).add(h)
        return template - content

    def scan(self, words: list[str], *, count: bool = True) -> Scan:
        """One training prompt's :class:`Scan`; with ``count``, its k-grams and edges also count towards the
        training side's template statistics (once per distinct prompt)."""
        if not self._scan_ready:
            self._prepare_scan()
        n, k = self.n, self.k
        exact = hash(" ".join(words))
        kx = self._candidates.intersection(map(hash, grams(words, k))) if len(words) >= k else _EMPTY
        nx = self._ngram_keys.intersection(map(hash, grams(words, n))) if len(words) >= n else _EMPTY
        if count and exact not in self._train_seen:
            self._train_seen.add(exact)
            if kx:
                self.train_kdf.update(kx)
            edges, head, tail = self._edges, tuple(words[: k - 1]), tuple(words[1 - k :]) if k > 1 else ()
            for j in range(1, len(head) + 1):
                if (h := hash(head[:j])) in edges:
                    self.train_prefix[h] += 1
                if (h := hash(tail[-j:])) in edges:
                    self.train_suffix[h] += 1
            self._stale = True
        return Scan(exact, kx or _EMPTY, nx or _EMPTY)

    def _prepare_scan(self) -> None:
        # the k-grams worth counting in training prompts (those that the evaluation side alone does not already
        # make template) and the n-grams to look up
        self._candidates = self.kgrams - self.eval_template_kgrams()
        self._ngram_keys = set(self.ngrams)
        self._scan_ready = True

    # ------------------------------------------------------------------ the split

    def _template(self, c_eval: int, h: int, train: Counter[int]) -> bool:
        return (self.template_df is not None and c_eval >= self.template_df) or (
            self.template_train_df is not None and train.get(h, 0) >= self.template_train_df
        )

    def build(self) -> DecontamIndex:
        """Split every evaluation prompt into template words and content runs; index the content."""
        k, n, m = self.k, self.n, self.min_item
        self.marks: list[bytearray] = [bytearray()] * len(self.docs)
        self.runs: list[list[tuple[int, int]]] = [[] for _ in self.docs]
        self.content_ngrams: dict[int, list[tuple[int, int]]] = {}
        self.run_keys: dict[int, list[tuple[int, int, int]]] = {}
        eval_side: set[int] = set()
        train_side: set[int] = set()
        by_group: dict[tuple[str, str], list[int]] = defaultdict(list)
        for doc, key in enumerate(self.docs):
            by_group[key].append(doc)
        for key, prompts in self._groups().items():
            df: Counter[tuple[str, ...]] = Counter()
            prefix: Counter[tuple[str, ...]] = Counter()
            suffix: Counter[tuple[str, ...]] = Counter()
            for words in prompts:
                df.update(set(grams(words, k)))
                for j in range(1, min(k, len(words) + 1)):
                    prefix[words[:j]] += 1
                    suffix[words[-j:]] += 1
            done: dict[tuple[str, ...], tuple[bytearray, list[tuple[int, int]]]] = {}
            for doc in by_group[key]:
                words = self.words[doc]
                if words not in done:
                    mark = bytearray(len(words))
                    for i, g in enumerate(grams(words, k)):
                        h = hash(g)
                        if self.template_df is not None and df[g] >= self.template_df:
                            eval_side.add(h)
                        elif self.template_train_df is not None and self.train_kdf[h] >= self.template_train_df:
                            train_side.add(h)
                        else:
                            continue
                        mark[i : i + k] = b"\x01" * k
                    for j in range(min(k - 1, len(words)), 0, -1):
                        if self._template(prefix[words[:j]], hash(words[:j]), self.train_prefix):
                            mark[:j] = b"\x01" * j
                            break
                    for j in range(min(k - 1, len(words)), 0, -1):
                        if self._template(suffix[words[-j:]], hash(words[-j:]), self.train_suffix):
                            mark[len(words) - j :] = b"\x01" * j
                            break
                    done[words] = (mark, _runs(mark))
                self.marks[doc], self.runs[doc] = done[words]
                for s, e in self.runs[doc]:
                    for pos in range(s, e - n + 1):
                        hits = self.content_ngrams.setdefault(hash(words[pos : pos + n]), [])
                        if not hits or hits[-1][0] != doc:
                            hits.append((doc, pos))
                    if e - s >= m and 2 * sum(not w.isdigit() for w in words[s:e]) >= e - s:
                        self.run_keys.setdefault(hash(words[s : s + k]), []).append((doc, s, e))
        self.template_kgrams = {"eval_side": len(eval_side), "train_side": len(train_side)}
        self._stale = False
        return self

    def _ensure(self) -> None:
        if self._stale:
            self.build()

    def content_runs(self, doc: int) -> list[str]:
        """The content runs of evaluation example ``doc``, as normalised text."""
        self._ensure()
        return [" ".join(self.words[doc][s:e]) for s, e in self.runs[doc]]

    def template_text(self, doc: int) -> str:
        """Evaluation example ``doc`` with each content run replaced by ``…`` (normalised)."""
        self._ensure()
        out: list[str] = []
        for word, t in zip(self.words[doc], self.marks[doc], strict=True):
            if t:
                out.append(word)
            elif not out or out[-1] != "…":
                out.append("…")
        return " ".join(out)

    # ------------------------------------------------------------------ matching

    def classify(self, scan: Scan, words: Callable[[], list[str]] | list[str]) -> tuple[Match | None, set[int]]:
        """The first content overlap of a scanned training prompt (exact, then n-gram, then item; the lowest
        example id within a kind) and the ids of every evaluation example whose content it holds; or, when it
        holds none, its first template overlap and an empty set.  ``words``: the prompt's tokens (or a function
        giving them, called only when an item must be checked)."""
        self._ensure()
        found: set[int] = set()
        best: Match | None = None
        docs = self.exact.get(scan.exact)
        if docs:
            found.update(docs)
            best = self._match("exact", docs[0], "")
        hits = [hit for h in scan.ngrams if (hit := self.content_ngrams.get(h))]
        if hits:
            pairs = [p for hit in hits for p in hit]
            found.update(d for d, _ in pairs)
            if best is None:
                doc, pos = min(pairs)
                best = self._match(f"{self.n}-gram", doc, " ".join(self.words[doc][pos : pos + self.n]))
        keys = [h for h in scan.kgrams if h in self.run_keys]
        if keys:
            ws = words() if callable(words) else words
            at: dict[int, list[int]] = defaultdict(list)
            for i, h in enumerate(map(hash, grams(ws, self.k))):
                at[h].append(i)
            items = []
            for h in keys:
                for doc, s, e in self.run_keys[h]:
                    run = list(self.words[doc][s:e])
                    if any(ws[i : i + e - s] == run for i in at.get(h, ())):
                        items.append((doc, s, e))
            if items:
                found.update(d for d, _, _ in items)
                if best is None:
                    doc, s, e = min(items)
                    best = self._match("item", doc, " ".join(self.words[doc][s:e]))
        if best is not None:
            return best, found
        if scan.ngrams:
            doc, pos = min(self.ngrams[h][0] for h in scan.ngrams)  # each list is in example order
            return self._match(TEMPLATE, doc, " ".join(self.words[doc][pos : pos + self.n])), found
        return None, found

    def _match(self, kind: str, doc: int, shared: str) -> Match:
        return Match(kind, *self.docs[doc], doc, shared)

    def overlap_tokens(self, words: list[str]) -> Match | None:
        """The first overlap of already normalised ``words``: content, else template, else None."""
        return self.classify(self.scan(words, count=False), words)[0]

    def find_tokens(self, words: list[str]) -> Match | None:
        """:meth:`find` on already normalised word tokens."""
        m = self.overlap_tokens(words) if words else None
        return m if m is not None and m.content else None

    def find(self, text: str) -> Match | None:
        """The first content overlap of ``text`` with the index (exact, n-gram, item), or None."""
        return self.find_tokens(tokens(text))

    def match(self, text: str) -> str | None:
        """Why ``text`` is contaminated — ``"exact <set>/<task>"``, ``"13-gram <set>/<task>"`` or ``"item
        <set>/<task>"`` (just the kind for an index of plain strings without a name) — or None."""
        m = self.find(text)
        return None if m is None else str(m)


def _runs(mark: bytearray) -> list[tuple[int, int]]:
    """(start, end) of each maximal run of unmarked positions."""
    out: list[tuple[int, int]] = []
    start = None
    for i, t in enumerate(mark):
        if t:
            if start is not None:
                out.append((start, i))
                start = None
        elif start is None:
            start = i
    if start is not None:
        out.append((start, len(mark)))
    return out


def build_index(
    records: Iterable[Any],
    n: int = DEFAULT_N,
    *,
    name: str = "",
    template_df: int | None = DEFAULT_TEMPLATE_DF,
    k: int = DEFAULT_K,
    min_item: int = DEFAULT_MIN_ITEM,
) -> DecontamIndex:
    """An index over one evaluation set (use :meth:`DecontamIndex.add` for more); templates from that set alone."""
    return DecontamIndex(n, template_df, k=k, min_item=min_item).add(records, name)


def _longest_shared(a: list[str], b: tuple[str, ...]) -> str:
    m = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return " ".join(a[m.a : m.a + m.size])


def _spread(rows: list[int], key: Callable[[int], int]) -> list[int]:
    """``rows`` reordered so that the first row of each ``key`` comes first, then the second of each, …"""
    seen: Counter[int] = Counter()
    order = []
    for i, row in enumerate(rows):
        order.append((seen[key(row)], i, row))
        seen[key(row)] += 1
    return [row for _, _, row in sorted(order)]


def _pick(found: dict[tuple[str, str], list[int]], limit: int, key: Callable[[int], int]) -> list[int]:
    """Up to ``limit`` row indices, one per (set, task) in turn — and within a task one per evaluation example in
    turn (``key``) — so that the examples cover every task."""
    out: list[int] = []
    lists = [_spread(found[k], key) for k in sorted(found)]
    depth = 0
    while len(out) < limit and any(depth < len(x) for x in lists):
        out.extend(x[depth] for x in lists if depth < len(x))
        depth += 1
    return sorted(out[:limit])


def decontaminate(
    train_records: Iterable[Any],
    eval_sets: dict[str, list[Any]],
    *,
    n: int = DEFAULT_N,
    k: int = DEFAULT_K,
    template_df: int | None = DEFAULT_TEMPLATE_DF,
    template_train_df: int | None = DEFAULT_TEMPLATE_TRAIN_DF,
    min_item: int = DEFAULT_MIN_ITEM,
    remove_template: bool = False,
    max_examples: int = 20,
) -> tuple[list[Any], list[tuple[Any, Match]], dict[str, Any]]:
    """Split ``train_records`` into kept and removed (each removed item with its :class:`Match`).

    A row is removed when it holds an evaluation example's content (module docstring); a row with only a
    template overlap is kept and counted, or removed too with ``remove_template``.  A row counts once, under its
    first match (exact, n-gram, item, then template; sets in the given order).  ``report``: the settings, counts
    per kind, per evaluation set and per task, how many distinct evaluation examples training rows hold the
    content of (``eval_examples_found``, ``eval_fraction_found``) or share only instruction text with
    (``eval_examples_template_only``), and up to ``max_examples`` examples of each kind of overlap (one per task
    in turn) with the shared words.
    """
    train = list(train_records)
    index = DecontamIndex(n, template_df, k=k, template_train_df=template_train_df, min_item=min_item)
    sizes: dict[str, int] = {}
    for name, items in eval_sets.items():
        before = len(index)
        index.add(items, name)
        sizes[name] = len(index) - before
    scans = [index.scan(tokens(text_of(item))) for item in train]
    index.build()
    tally = _Tally(eval_sets)
    kept: list[Any] = []
    removed: list[tuple[Any, Match]] = []
    for row, (item, scan) in enumerate(zip(train, scans, strict=True)):
        m = tally.add(index, row, item, scan)
        if m is not None and (m.content or remove_template):
            removed.append((item, m))
        else:
            kept.append(item)

    def example(row: int) -> dict[str, Any]:
        m = tally.matches[row]
        words = tokens(text_of(train[row]))
        return {
            "match": str(m),
            "shared": " ".join(words) if m.kind == "exact" else _longest_shared(words, index.words[m.eval_id]),
            "train": text_of(train[row])[:400],
            "eval": index.texts[m.eval_id][:400],
        }

    report = {
        "n": n,
        "k": k,
        "template_df": template_df,
        "template_train_df": template_train_df,
        "min_item": min_item,
        "remove_template_overlap": remove_template,
        "template_kgrams": index.template_kgrams,
        "train": len(train),
        "kept": len(kept),
        "removed": len(removed),
        "removed_by_kind": dict(Counter(m.kind for _, m in removed)),
        "content_overlap": sum(1 for _, m in removed if m.content),
        "template_overlap": sum(sum(s["template"].values()) for s in tally.by_set.values()),
        "template_overlap_by_train_task": dict(sorted(tally.template_by_train_task.items())),
        "eval_sets": tally.sets_report(index, sizes, remove_template),
        "examples": {
            side: [example(r) for r in _pick(ex, max_examples, lambda r: tally.matches[r].eval_id)]
            for side, ex in tally.examples.items()
        },
    }
    return kept, removed, report


class _Tally:
    """What :func:`decontaminate` counts while it classifies the training rows."""

    def __init__(self, eval_sets: dict[str, list[Any]]):
        self.names = list(eval_sets)
        self.content_found: set[int] = set()
        self.template_seen: set[int] = set()  # n-gram hashes that training rows share with evaluation prompts
        self.by_set: dict[str, dict[str, Counter]] = {
            name: {"content": Counter(), "template": Counter(), "by_kind": Counter()} for name in eval_sets
        }
        self.examples: dict[str, dict[tuple[str, str], list[int]]] = {
            "content": defaultdict(list),
            "template": defaultdict(list),
        }
        self.matches: dict[int, Match] = {}
        self.ex_count: Counter[tuple[str, int]] = Counter()
        self.template_by_train_task: Counter[str] = Counter()

    def add(self, index: DecontamIndex, row: int, item: Any, scan) -> Match | None:
        """Classify one training row; its match (None: no overlap)."""
        m, docs = index.classify(scan, lambda: tokens(text_of(item)))
        self.template_seen.update(scan.ngrams)
        if m is None:
            return None
        self.content_found |= docs
        side = "content" if m.content else "template"
        s = self.by_set[m.eval_set]
        s[side][m.task] += 1
        if m.content:
            s["by_kind"][m.kind] += 1
        else:
            self.template_by_train_task[_task_of(item) or "-"] += 1
        if self.ex_count[side, m.eval_id] < 3:  # candidates for the examples: up to 3 per evaluation example
            self.ex_count[side, m.eval_id] += 1
            self.examples[side][(m.eval_set, m.task)].append(row)
            self.matches[row] = m
        return m

    def sets_report(self, index: DecontamIndex, sizes: dict[str, int], remove_template: bool) -> dict[str, Any]:
        """Per evaluation set: rows removed / overlapping, and the evaluation examples found or only templated."""
        template_docs = {doc for h in self.template_seen for doc, _ in index.ngrams[h]} - self.content_found
        per_doc_task: dict[str, Counter[str]] = {name: Counter() for name in self.names}
        found_task: dict[str, Counter[str]] = {name: Counter() for name in self.names}
        tonly_task: dict[str, Counter[str]] = {name: Counter() for name in self.names}
        for doc, (name, task) in enumerate(index.docs):
            per_doc_task[name][task] += 1
            if doc in self.content_found:
                found_task[name][task] += 1
            elif doc in template_docs:
                tonly_task[name][task] += 1
        out: dict[str, dict[str, Any]] = {}
        for name, s in self.by_set.items():
            size = sizes[name]
            n_found, n_tonly = sum(found_task[name].values()), sum(tonly_task[name].values())
            n_content, n_template = sum(s["content"].values()), sum(s["template"].values())
            out[name] = {
                "eval_examples": size,
                "train_removed": n_content + (n_template if remove_template else 0),
                "train_content_overlap": n_content,
                "train_template_overlap": n_template,
                "by_kind": dict(sorted(s["by_kind"].items())),
                "eval_examples_found": n_found,
                "eval_fraction_found": round(n_found / size, 4) if size else 0.0,
                "eval_examples_template_only": n_tonly,
                "eval_fraction_template_only": round(n_tonly / size, 4) if size else 0.0,
                "by_task": {
                    (task or "-"): {
                        "eval_examples": per_doc_task[name][task],
                        "eval_found": found_task[name][task],
                        "eval_template_only": tonly_task[name][task],
                        "train_content_overlap": s["content"][task],
                        "train_template_overlap": s["template"][task],
                    }
                    for task in sorted(per_doc_task[name])
                },
            }
        return out
