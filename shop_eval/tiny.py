"""A tiny Llama-architecture base model built from scratch, deterministically, on CPU.

``build_tiny_model(out_dir, seed=0, quick=False, corpus=None)``:

1. trains a byte-level BPE tokenizer with the ``tokenizers`` library on the corpus (default: the sample
   corpus of :mod:`shop_eval.sample_data`), with ``<s>``/``</s>``/``<pad>`` and a chat template, so that
   axolotl's ``chat_template`` datasets and lm-eval's ``--apply_chat_template`` work;
2. builds a small :class:`~transformers.LlamaConfig` model;
3. pretrains it from scratch for a short, seeded pass on the corpus (next-token loss), so the base is a
   real (if tiny) language model;
4. saves weights (safetensors) and tokenizer with ``save_pretrained`` plus ``tiny_build.json`` (the
   settings and the loss curve).

``quick=True`` builds a smaller model in a few seconds (for tests).  ``shop-eval tiny-model OUT``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from pathlib import Path

log = logging.getLogger(__name__)

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")

#: A small ChatML-like template.  The assistant turn ends with the EOS token (so generation stops
#: and axolotl's ``train_on_eos: turn`` learns to stop); other turns end with ``<|end|>``.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% else %}{{ '<|end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

#: model/tokenizer/training sizes: full (the demo's base) and quick (tests)
SIZES = {
    "full": dict(
        vocab_size=1024,
        hidden_size=128,
        intermediate_size=352,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        steps=300,
        batch_size=16,
        seq_len=128,
        lr=3e-3,
    ),
    "quick": dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        steps=20,
        batch_size=8,
        seq_len=64,
        lr=3e-3,
    ),
}


def default_corpus(seed: int = 0, quick: bool = False) -> list[str]:
    """The sample corpus on the sample catalogue's *train* products (the same texts ``sample-data`` writes)."""
    from .sample_data import catalogue, corpus_texts, split_products

    train, _ = split_products(catalogue(seed), seed)
    if quick:
        train = train[:60]
    return corpus_texts(train, seed)


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE ``PreTrainedTokenizerFast`` with bos/eos/pad, role tokens and the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=1024,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _set_seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pretrain(model, tokenizer, texts: list[str], *, steps: int, batch_size: int, seq_len: int, lr: float, seed: int):
    """Short from-scratch next-token pretraining on ``texts`` packed into ``seq_len`` blocks.  Returns the
    loss per step."""
    import torch

    ids: list[int] = []
    for t in texts:
        ids += tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    n_blocks = len(ids) // seq_len
    if n_blocks < 1:
        from .errors import UsageError

        raise UsageError(f"--corpus is too small: {len(ids)} tokens, a pretraining block needs {seq_len}")
    data = torch.tensor(ids[: n_blocks * seq_len]).view(n_blocks, seq_len)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses = []
    for _step in range(steps):
        idx = torch.randint(0, n_blocks, (batch_size,), generator=gen)
        batch = data[idx]
        out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(float(out.loss.detach()), 4))
    model.train(False)  # inference mode
    return losses


def build_tiny_model(
    out_dir: str | os.PathLike,
    seed: int = 0,
    quick: bool = False,
    corpus: list[str] | str | os.PathLike | None = None,
    threads: int = 1,
) -> Path:
    """Build, pretrain and save the tiny model in ``out_dir``; returns the path.

    ``corpus``: a list of texts, a corpus JSONL file (``{"text": ...}`` a line), or None for the sample
    corpus.  ``threads``: torch CPU threads while building (1: fastest for a model this small, and the
    same numbers on every machine); the previous setting is restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _build(out_dir, seed, quick, corpus)
    finally:
        torch.set_num_threads(before)


def read_corpus(path: str | os.PathLike) -> list[str]:
    """The ``{"text": ...}`` rows of a corpus JSON Lines file; bad rows are a located error."""
    from .errors import DataError
    from .io import read_json_lines

    texts = []
    for where, obj in read_json_lines(path):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise DataError(str(path), where, "text", "expected an object with a string 'text'")
        texts.append(obj["text"])
    return texts


def _build(out_dir, seed: int, quick: bool, corpus) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = SIZES["quick" if quick else "full"]
    if corpus is None:
        texts = default_corpus(seed, quick)
    elif isinstance(corpus, (str, os.PathLike)):
        texts = read_corpus(corpus)
    else:
        texts = list(corpus)
    _set_seed(seed)
    tokenizer = train_tokenizer(texts, size["vocab_size"])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=size["hidden_size"],
        intermediate_size=size["intermediate_size"],
        num_hidden_layers=size["num_hidden_layers"],
        num_attention_heads=size["num_attention_heads"],
        num_key_value_heads=size["num_key_value_heads"],
        max_position_embeddings=size["max_position_embeddings"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        rope_theta=10000.0,
    )
    _set_seed(seed)
    model = LlamaForCausalLM(config)
    losses = pretrain(
        model,
        tokenizer,
        texts,
        steps=size["steps"],
        batch_size=size["batch_size"],
        seq_len=size["seq_len"],
        lr=size["lr"],
        seed=seed,
    )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.to(torch.float32).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {
        "seed": seed,
        "quick": quick,
        "n_texts": len(texts),
        "parameters": sum(p.numel() for p in model.parameters()),
        "size": size,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "losses": losses,
        "seconds": round(time.time() - t0, 2),
    }
    (out / "tiny_build.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log.info(
        "tiny model: %d parameters, loss %.3f -> %.3f in %.1fs -> %s",
        info["parameters"],
        losses[0],
        losses[-1],
        info["seconds"],
        out,
    )
    return out
