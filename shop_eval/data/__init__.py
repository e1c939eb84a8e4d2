"""Data builders: continued-pretraining corpus (:mod:`.corpus`), SFT chat data (:mod:`.sft`); the
``shop-eval data corpus|sft|decontam`` commands live in :mod:`.cli` (decontamination itself is
:mod:`shop_eval.decontam`)."""

from .corpus import build_corpus, clean_text
from .sft import build_sft, to_chat

__all__ = ["build_corpus", "build_sft", "clean_text", "to_chat"]
