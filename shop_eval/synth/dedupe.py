"""The near-duplicate pool: the seeds and every item accepted so far.

The seed project's rule: an item whose prompt has ROUGE-L F > 0.7 with an earlier one is dropped
(``rouge-score``'s scorer), without comparing every pair.  Because ``ROUGE-L F = 2·LCS/(m+n)`` and the LCS is
at most the multiset token overlap, a pair above 0.7 has a multiset token Jaccard of at least 0.7/1.3 ≈ 0.54;
MinHash LSH over token shingles (datasketch, 256 permutations in 64 bands of 4: a pair at Jaccard 0.54 is a
candidate with probability 0.997) proposes the candidates, a vectorised MinHash Jaccard estimate (6 standard
deviations below 0.54) and the exact overlap bound ``2·|A∩B|/(m+n)`` prune them, and ROUGE-L is computed only
on what is left.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from typing import Any

import numpy as np

from .parse import R_DUPLICATE, R_NEAR_DUPLICATE

ROUGE_THRESHOLD = 0.7

_TOKEN_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+")


class RougeTokenizer:
    """rouge-score's default tokenization (lower case, alphanumeric runs) extended to any script:
    word characters of every script make words, and each CJK character is a token of its own (the
    default tokenizer drops non-ASCII text, which would make all Japanese prompts identical)."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN_RE.findall(text.lower())


class NearDupIndex:
    """The pool: exact duplicates (normalised text) and near-duplicates (ROUGE-L F > ``threshold``)
    found through MinHash LSH candidates, pruned by their MinHash Jaccard estimate (vectorised) and
    by an exact overlap bound, then scored with rouge-score."""

    def __init__(self, threshold: float = ROUGE_THRESHOLD, num_perm: int = 256, bands: int = 64, seed: int = 1):
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        self.tokenizer = RougeTokenizer()
        self._scorer = None
        self.lsh = MinHashLSH(num_perm=num_perm, params=(bands, num_perm // bands))
        self.texts: dict[str, str] = {}
        self.shingles: dict[str, frozenset[bytes]] = {}
        self.exact: dict[str, str] = {}
        self.stats = Counter()
        # one MinHash with permutations built once; copies share them
        self._proto = MinHash(num_perm=num_perm, seed=seed, hashfunc=zlib.crc32)  # C-speed 32-bit hash
        self._last: tuple[str, list[str], frozenset[bytes], Any] | None = None
        # every pool item's MinHash values, one row each (for the vectorised estimate)
        self._hv = np.zeros((1024, num_perm), dtype=self._proto.hashvalues.dtype)
        self._rows: dict[str, int] = {}
        j = threshold / (2 - threshold) if 0 < threshold < 1 else 0.0
        self._min_agree = max(0.0, j - 6 * math.sqrt(j * (1 - j) / num_perm)) * num_perm

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def scorer(self):
        """rouge-score's ROUGE-L scorer (imported on first use: it loads nltk, seconds on a busy machine)."""
        if self._scorer is None:
            from rouge_score import rouge_scorer

            self._scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=self.tokenizer)
        return self._scorer

    @staticmethod
    def _shingles(tokens: list[str]) -> frozenset[bytes]:
        seen: dict[str, int] = {}
        out = []
        for t in tokens:  # multiset → set: the k-th occurrence of a token is its own shingle
            k = seen[t] = seen.get(t, 0) + 1
            out.append(f"{t}\x00{k}".encode())
        return frozenset(out)

    def _analyse(self, text: str) -> tuple[list[str], frozenset[bytes], Any]:
        """Tokens, shingles and MinHash of ``text`` (the last one is kept: check() then add())."""
        if self._last is not None and self._last[0] == text:
            return self._last[1:]
        tokens = self.tokenizer.tokenize(text)
        shingles = self._shingles(tokens)
        mh = self._proto.copy()  # an empty MinHash sharing the permutations (made once)
        if shingles:
            mh.update_batch(list(shingles))
        self._last = (text, tokens, shingles, mh)
        return tokens, shingles, mh

    def check(self, text: str) -> tuple[str, str] | None:
        """``(reason, detail)`` when ``text`` duplicates the pool, else None."""
        tokens, shingles, mh = self._analyse(text)
        norm = " ".join(tokens) or text.strip()
        if norm in self.exact:
            return R_DUPLICATE, f"same text as {self.exact[norm]}"
        if not self.threshold or self.threshold >= 1 or not tokens:
            return None
        best: tuple[float, str] | None = None
        for key in self._candidates(shingles, mh):
            self.stats["rouge_comparisons"] += 1
            f = self.scorer.score(self.texts[key], text)["rougeL"].fmeasure
            if f > self.threshold and (best is None or f > best[0]):
                best = (f, key)
        if best is not None:
            return R_NEAR_DUPLICATE, f"ROUGE-L {best[0]:.3f} with {best[1]}"
        return None

    def _candidates(self, shingles: frozenset[bytes], mh: Any) -> list[str]:
        """Pool items that may be above the threshold: LSH candidates whose MinHash estimate and overlap
        bound do not rule them out."""
        found = list(self.lsh.query(mh))
        n_found = len(found)
        self.stats["lsh_candidates"] += n_found
        if found:
            # MinHash estimate first, vectorised: a pair above the rule has Jaccard >= t/(2-t) (0.54);
            # an estimate more than 6 standard deviations below that is dropped (p ~ 1e-9)
            rows = np.fromiter((self._rows[k] for k in found), dtype=np.int64, count=len(found))
            agree = (self._hv[rows] == mh.hashvalues).sum(axis=1)
            found = [found[i] for i in np.flatnonzero(agree >= self._min_agree)]
        # LCS <= multiset overlap, so ROUGE-L F <= 2 |A ∩ B| / (m + n): skip what cannot pass
        limit, n, pool = self.threshold / 2, len(shingles), self.shingles
        cands = [k for k in found if len(shingles & pool[k]) > limit * (len(pool[k]) + n)]
        self.stats["pruned_by_estimate"] += n_found - len(found)
        self.stats["pruned_by_bound"] += len(found) - len(cands)
        return cands

    def add(self, key: str, text: str) -> None:
        tokens, shingles, mh = self._analyse(text)
        norm = " ".join(tokens) or text.strip()
        self.exact.setdefault(norm, key)
        if key in self.texts or not tokens:
            return
        self.texts[key] = text
        self.shingles[key] = shingles
        self.lsh.insert(key, mh)
        row = len(self._rows)
        if row == len(self._hv):
            self._hv = np.concatenate([self._hv, np.zeros_like(self._hv)])
        self._hv[row] = mh.hashvalues
        self._rows[key] = row
