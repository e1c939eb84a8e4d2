"""SFT builder: ShopBench records (from any loader) → axolotl chat JSONL, with per-task-type mixing
weights and a seeded train/validation split stratified by task.

Each row::

    {"messages": [{"role": "system", "content": SYSTEM_PROMPT},
                  {"role": "user", "content": input_field},
                  {"role": "assistant", "content": format_answer(record)}],
     "task_type": ..., "task_name": ...}

The answer is written by :func:`shop_eval.prompts.format_answer`, exactly as the official parser reads it
(MC ``2``; retrieval ``6, 9, 15``; ranking an ordering; NER a list; generation text).

Split: stratified by task (``task_name``, so every task type is stratified too): about
``round(val_fraction * n)`` rows of each task go to validation, seeded.  Rows are first grouped by shared
content (:func:`content_groups`: the same normalised prompt, or a shared 13-word run that is not instruction
boilerplate) and a group never straddles the split.  This matters on EC-Guide, which reuses one review or
product text under several paraphrased instructions: a row-level random split leaks about half of its
validation examples' content into training (measured: docs/data.md).  Mixing weights then apply to the training side only:
``weight`` w for a task type keeps ``round(w * n)`` of its rows — a seeded sample without replacement for
w < 1, whole copies plus a sample for w > 1, none for w = 0.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from ..decontam import DEFAULT_N, DEFAULT_TRAIN_TEMPLATE_DF, ngram_hashes, normalize, tokens
from ..prompts import SYSTEM_PROMPT, format_answer
from ..records import TASK_TYPES, Record


def to_chat(record: Record) -> dict[str, Any]:
    """One record as an axolotl ``chat_template`` row (see module docstring)."""
    return {
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": record.input_field},
            {"role": "assistant", "content": format_answer(record)},
        ],
        "task_type": record.task_type,
        "task_name": record.task_name,
    }


def parse_weights(items: Sequence[str]) -> dict[str, float]:
    """``["generation=0.5", "ranking=2"]`` → ``{"generation": 0.5, "ranking": 2.0}`` (task types checked)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in TASK_TYPES:
            raise ValueError(f"bad weight {item!r}: expected TASK_TYPE=WEIGHT with TASK_TYPE one of {TASK_TYPES}")
        try:
            w = float(value)
        except ValueError:
            raise ValueError(f"bad weight {item!r}: {value!r} is not a number") from None
        if not w >= 0:
            raise ValueError(f"bad weight {item!r}: must be >= 0")
        out[name] = w
    return out


def content_groups(
    records: Sequence[Record], n: int = DEFAULT_N, template_df: int = DEFAULT_TRAIN_TEMPLATE_DF
) -> list[int]:
    """A group id per record: records whose prompts share content — the same normalised prompt, or a run
    of ``n`` words that is not instruction boilerplate (found in at most ``template_df`` prompts) — end
    up in one group (connected components), so that a split by group keeps shared content on one side.
    N-gram hashes are held in numpy arrays (8 bytes each; all of EC-Guide is ~5 M n-grams)."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(records)
    if m == 0:
        return []
    exact: dict[int, int] = {}
    same_a: list[int] = []
    same_b: list[int] = []
    hashes: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    for i, r in enumerate(records):
        words = tokens(r.input_field)
        j = exact.setdefault(hash(" ".join(words)), i)
        if j != i:  # identical prompts always group, however often they occur
            same_a.append(j)
            same_b.append(i)
        grams = ngram_hashes(words, n)
        if grams:
            hashes.append(np.fromiter(grams, dtype=np.int64, count=len(grams)))
            owners.append(np.full(len(grams), i, dtype=np.int32))
    pairs_a = [np.asarray(same_a, dtype=np.int64)]
    pairs_b = [np.asarray(same_b, dtype=np.int64)]
    if hashes:
        h = np.concatenate(hashes)
        o = np.concatenate(owners)
        order = np.argsort(h, kind="stable")
        h, o = h[order], o[order]
        new = np.empty(len(h), dtype=bool)
        new[0] = True
        np.not_equal(h[1:], h[:-1], out=new[1:])
        group = np.cumsum(new) - 1
        starts = np.flatnonzero(new)
        df = np.diff(np.append(starts, len(h)))[group]  # prompts holding this n-gram (unique per prompt)
        first = o[starts][group]
        link = (df >= 2) & (df <= template_df) & (first != o)
        pairs_a.append(first[link].astype(np.int64))
        pairs_b.append(o[link].astype(np.int64))
    a, b = np.concatenate(pairs_a), np.concatenate(pairs_b)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    return labels.tolist()


def stratified_split(
    records: Sequence[Record], val_fraction: float, seed: int, group_by: str = "content"
) -> tuple[list[int], list[int]]:
    """Indices of (train, validation): per task ``round(val_fraction * n)`` rows (about) to validation,
    seeded; rows of one group (``group_by="content"``: :func:`content_groups`; ``"prompt"``: the same
    normalised prompt) never straddle the split."""
    if not 0 <= val_fraction < 1:
        raise ValueError("val_fraction must be in [0, 1)")
    if group_by == "content":
        gid = content_groups(records)
    elif group_by == "prompt":
        keys: dict[str, int] = {}
        gid = [keys.setdefault(normalize(r.input_field), i) for i, r in enumerate(records)]
    else:
        raise ValueError("group_by must be 'content' or 'prompt'")
    groups: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(gid):
        groups[g].append(i)
    size = Counter(r.task_name for r in records)
    target = {t: round(val_fraction * c) for t, c in size.items()}
    taken: Counter[str] = Counter()
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    train: list[int] = []
    val: list[int] = []
    for g in order:
        members = groups[g]
        need = Counter(records[i].task_name for i in members)
        if all(taken[t] < target[t] for t in need):
            val += members
            taken.update(need)
        else:
            train += members
    return sorted(train), sorted(val)


def apply_weights(indices: list[int], records: Sequence[Record], weights: dict[str, float], seed: int) -> list[int]:
    """Resample the training indices per task type by ``weights`` (missing types keep weight 1)."""
    by_type: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        by_type[records[i].task_type].append(i)
    out: list[int] = []
    for ttype in sorted(by_type):
        idx = by_type[ttype]
        w = weights.get(ttype, 1.0)
        k = round(w * len(idx))
        whole, rest = divmod(k, len(idx))
        rng = random.Random(f"{seed}:weight:{ttype}")
        out += idx * whole + rng.sample(idx, rest)
    random.Random(f"{seed}:shuffle").shuffle(out)
    return out


def build_sft(
    records: Sequence[Record],
    *,
    val_fraction: float = 0.02,
    weights: dict[str, float] | None = None,
    seed: int = 0,
    group_by: str = "content",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Chat rows for training and validation, and a report (counts per task type and task)."""
    t0 = time.perf_counter()
    weights = weights or {}
    train_idx, val_idx = stratified_split(records, val_fraction, seed, group_by)
    train_idx = apply_weights(train_idx, records, weights, seed)
    chats = {}
    for i in set(train_idx) | set(val_idx):
        chats[i] = to_chat(records[i])
    train = [chats[i] for i in train_idx]
    val = [chats[i] for i in val_idx]

    def counts(idx: list[int], key: str) -> dict[str, int]:
        return dict(sorted(Counter(getattr(records[i], key) for i in idx).items()))

    report = {
        "records": len(records),
        "train": len(train),
        "validation": len(val),
        "val_fraction": val_fraction,
        "seed": seed,
        "group_by": group_by,
        "weights": {t: weights.get(t, 1.0) for t in TASK_TYPES},
        "train_by_type": counts(train_idx, "task_type"),
        "validation_by_type": counts(val_idx, "task_type"),
        "train_by_task": counts(train_idx, "task_name"),
        "validation_by_task": counts(val_idx, "task_name"),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return train, val, report
