"""``hf-fast``: lm-eval's ``hf`` backend with its greedy decoding loop replaced by a static-KV-cache loop
that runs as one CUDA graph per step.

Everything lm-eval does around the model stays lm-eval's own code, inherited from
:class:`lm_eval.models.huggingface.HFLM`: model and PEFT-adapter loading (``peft=``), tokenizer, chat
templates, request sorting and batching, left padding and left truncation of the prompts, the stop
sequences, decoding of the new tokens and their post-processing, log-likelihood scoring (its requests are
only tokenized in batches, below).  ``_model_generate`` — the call to ``model.generate`` for one padded
batch — is replaced, and only for what ``generate`` would do greedily with no logits processor (otherwise it
falls back to ``generate``):

* prefill: the same forward pass ``generate`` makes (its position ids, a dynamic cache, logits of the last
  position only), run on rows of similar length together when the padded batch is larger than
  ``prefill_tokens`` (each chunk only as wide as its longest prompt), then the keys and values are copied
  into a static cache at the slots ``generate``'s cache has them in;
* decode: one token per step for the whole batch against the static cache (fixed shapes: an attention
  mask over the cache's slots that is filled in place), so the step can be captured once as a CUDA graph
  and replayed; next token = argmax, rows that produced an EOS id get the pad token afterwards and the
  batch ends when every row has — ``generate``'s own rules — or at ``max_length``; lm-eval's stop
  sequences end the batch by lm-eval's rule (one sequence found in every row's last tokens); a kept cache
  (and its graph) serves a later batch that is smaller or needs fewer positions (spare rows run as
  finished filler rows) while the extra cache it reads stays small against the cost of a new capture;
* attention in the decode step reads the grouped K/V heads directly (query heads of one K/V head as
  extra query rows) instead of materialising repeated K/V heads, which is what ``sdpa`` does whenever a
  padding mask is present;
* in every forward pass of the fast paths (prefill, decode, log-likelihood) the model's RMS norms run as
  torch's fused RMS-norm kernel (two kernels instead of seven a norm), where a check on the model's own
  weights shows the module computes exactly that formula (Llama's: ``weight * rms_norm(x)``).

Requests are tokenized by lm-eval's rules (``tok_encode``), but from one batched tokenizer call a distinct string
instead of one call a string and a multiple-choice context once for every option.

Log-likelihood requests go through lm-eval's own code, in groups of similar length (``prefill_tokens``
padded tokens of distinct contexts a group) so that a batch is only as wide as its longest member; lm-eval
already scores one-token options of a prompt from one forward pass.

Why (measured on an H200, Yi-9B shape, docs/evaluation.md "Backends and speed"): ``generate`` under lm-eval
pays, per step, Python and kernel-launch overhead for every layer, a KV-cache copy per layer (the repeated
K/V heads), and on Hopper a new cuDNN attention plan for every new key length (about 130 ms a step; a new
prefill shape about 1 s).  The CUDA graph removes the first, the grouped attention the copy, the static
cache and leaving cuDNN's SDPA backend out the last.

Use::

    python -m shop_eval.hf_fast --model hf-fast --model_args pretrained=M[,peft=A],dtype=bfloat16 ...

(any ``lm_eval`` arguments; the module registers ``hf-fast`` with lm-eval, then runs lm-eval's command
line).  ``--model_args`` are ``hf``'s plus ``fast_decode`` (default true), ``cuda_graphs`` (default true;
CUDA only), ``cudnn_sdpa`` (default false: torch's cuDNN SDPA backend is left out, whose plans are rebuilt
for every new shape), ``prefill_tokens`` (default 8192; 0: whole batches, as ``hf``), ``graph_slots``
(static caches + graphs kept, default 2), ``fused_norm`` and ``cudnn_decode`` (cuDNN's attention kernel first
in the decode step; both default to on with CUDA, off elsewhere).
"""

from __future__ import annotations

import copy
import logging
import sys
import time
from array import array
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import _add_special_kwargs, has_bos_prefix
from transformers import AttentionInterface, DynamicCache, StaticCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from .errors import ShopEvalError, UsageError
from .options import flag

log = logging.getLogger(__name__)

MODEL_NAME = "hf-fast"
DECODE_ATTENTION = "shop_eval_grouped_decode"
#: Generation-config fields that add a logits processor (or change the search) when set to anything but
#: these neutral values; any other value sends the batch to ``generate``.
NEUTRAL_GENERATION = {
    "num_beams": (None, 1),
    "num_beam_groups": (None, 1),
    "num_return_sequences": (None, 1),
    "penalty_alpha": (None,),
    "guidance_scale": (None, 1, 1.0),
    "sequence_bias": (None,),
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "force_words_ids": (None,),
    "constraints": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "max_new_tokens": (None,),  # would override lm-eval's max_length
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "remove_invalid_values": (None, False),
    "exponential_decay_length_penalty": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "watermarking_config": (None,),
    "stop_strings": (None,),
    "max_time": (None,),
    "prefill_chunk_size": (None,),
    "dola_layers": (None,),
    "assistant_early_exit": (None,),
    "prompt_lookup_num_tokens": (None,),
    "return_dict_in_generate": (None, False),
}
ENCODE_BATCH = 4096  # strings a batched tokenizer call (requests' tokens, ``FastHFLM._encoded``)
SLOT_LENGTH_STEP = 64  # static caches are allocated in multiples of this many tokens
#: a kept slot (static cache + captured graph) serves a smaller batch or a shorter generation when the cache it
#: reads beyond what the batch needs, over all its steps, stays under this many bytes (a capture costs about
#: 0.25 s for a 48-layer model; 512 GB of extra reads take about 0.12 s at 4 TB/s, 0.25 s at 2 TB/s)
SLOT_REUSE_EXCESS_BYTES = 512 * 2**30


def kv_shape(config) -> tuple[int, int, int]:
    """(layers, key/value heads, head dim) of a decoder config: the shape of its KV cache per token."""
    cfg = config.get_text_config(decoder=True)
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return cfg.num_hidden_layers, heads, head_dim


def kv_bytes_per_token(config, element_size: int) -> int:
    """Keys and values of one cached token over all layers."""
    layers, heads, head_dim = kv_shape(config)
    return layers * 2 * heads * head_dim * element_size


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() == "auto"


class OptionError(UsageError):
    """A ``--model_args`` value hf-fast cannot read (its message names the option and the value)."""


def _truthy(value: Any, name: str = "option", auto: bool = False) -> bool:
    """A flag from ``--model_args`` (:func:`shop_eval.options.flag`); anything else is an :class:`OptionError`."""
    expected = "true, false" + (" or auto" if auto else " or 1/0")
    return flag(value, f"hf-fast: {name}", expected, OptionError)


def _count(value: Any, name: str, least: int) -> int:
    """A whole number from ``--model_args``, at least ``least``."""
    try:
        n = None if isinstance(value, bool) else int(value)  # lm-eval hands true/false over as bools
    except (TypeError, ValueError, OverflowError):
        n = None
    if n is None or isinstance(value, float) and value != n or n < least:
        raise OptionError(f"hf-fast: {name}={value!r}: expected a whole number >= {least}")
    return n


def grouped_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """SDPA for one query token per row with grouped K/V heads: the ``G = heads / kv_heads`` query heads
    that share a K/V head become G query rows of that head (the mask is the same for all of them), so no
    repeated copy of the cache is made.  Anything else goes to transformers' ``sdpa``."""
    b, h, q_len, d = query.shape
    kv_heads = key.shape[1]
    plain = (
        q_len != 1
        or attention_mask is None
        or h % kv_heads
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
        or kwargs.get("s_aux") is not None
        or key.shape[-1] != value.shape[-1]
    )
    if plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs
        )
    grouped = query.reshape(b, kv_heads, h // kv_heads, d)
    out = F.scaled_dot_product_attention(grouped, key, value, attn_mask=attention_mask, dropout_p=0.0, scale=scaling)
    return out.reshape(b, h, 1, d).transpose(1, 2).contiguous(), None


AttentionInterface.register(DECODE_ATTENTION, grouped_decode_attention)


def _fused_rms_norm_forward(module: torch.nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """Llama's RMSNorm (float32 statistics, the normalised input rounded to the input's dtype, then times the
    weight) through torch's fused RMS-norm kernel."""
    normed = F.rms_norm(hidden_states, (hidden_states.shape[-1],), eps=module.variance_epsilon)
    return module.weight * normed


def fusable_rms_norms(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's RMS-norm modules whose forward is Llama's formula, shown on the modules' own weights: for each
    class (a leaf module named ``*RMSNorm`` with a 1-D ``weight`` and a float ``variance_epsilon``), its forward on
    a random input must equal :func:`_fused_rms_norm_forward`'s to within one rounding of the input's dtype on
    every module of that class.  A norm with another formula (Gemma's ``1 + weight``, an offset, no weight)
    differs by far more and is left alone, and so is a module whose forward is already replaced on the instance
    (accelerate's device-map and offloading hooks) or whose weight is not on a device (offloaded)."""
    by_class: dict[type, list[torch.nn.Module]] = {}
    for m in model.modules():
        w = getattr(m, "weight", None)
        if (
            type(m).__name__.endswith("RMSNorm")
            and not any(True for _ in m.children())
            and isinstance(w, torch.Tensor)
            and w.dim() == 1
            and w.is_floating_point()
            and not w.is_meta  # offloaded (accelerate): its weight arrives through a hook
            and "forward" not in m.__dict__  # an instance forward (accelerate's hooks, kernels) is left alone
            and not hasattr(m, "_hf_hook")
            and isinstance(getattr(m, "variance_epsilon", None), float)
        ):
            by_class.setdefault(type(m), []).append(m)
    found: list[torch.nn.Module] = []
    gen = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for mods in by_class.values():
            ok = True
            for m in mods:
                w = m.weight
                x = (3 * torch.randn(4, w.shape[0], generator=gen)).to(device=w.device, dtype=w.dtype)
                want, got = type(m).forward(m, x), _fused_rms_norm_forward(m, x)
                tol = 2 * torch.finfo(want.dtype).eps * want.abs() + torch.finfo(want.dtype).tiny
                if want.shape != got.shape or want.dtype != got.dtype or bool(((want - got).abs() > tol).any()):
                    ok = False
                    break
            if ok:
                found.extend(mods)
    return found


@dataclass
class GenerateStats:
    """One ``_model_generate`` call (one lm-eval batch)."""

    batch: int
    prompt_len: int
    new_tokens: int  # width of the returned continuation (steps the batch ran)
    max_new_tokens: int
    prefill_s: float
    decode_s: float  # decode steps after the prefill (new_tokens - 1 of them), capture excluded
    capture_s: float  # CUDA-graph capture for a new (batch, cache length), 0 when reused
    cache_len: int
    graph: bool
    path: str  # "fast" or the reason it fell back to generate
    prefill_chunks: int = 1  # forward passes the prefill was cut into


class _Slot:
    """A static KV cache and the decode step's fixed-address buffers for one (batch, cache length)."""

    def __init__(self, model, batch: int, length: int, device, dtype, eos: list[int], pad: int):
        _, kv_heads, head_dim = kv_shape(model.config)
        self.batch, self.length = batch, length
        self.cache = StaticCache(config=model.config, max_cache_len=length)
        self.cache.early_initialization(batch, kv_heads, head_dim, dtype, device)
        self.tok = torch.full((batch, 1), pad, dtype=torch.long, device=device)
        self.pos = torch.zeros((batch, 1), dtype=torch.long, device=device)
        # additive attention mask over the cache slots: 0 where attended, the dtype's lowest value elsewhere
        self.masked = torch.finfo(dtype).min
        self.mask = torch.full((batch, 1, 1, length), self.masked, dtype=dtype, device=device)
        self.slot = torch.zeros((1,), dtype=torch.long, device=device)  # cache slot of the token fed in
        self.step = torch.zeros((1,), dtype=torch.long, device=device)  # index of the token produced
        self.out = torch.full((batch, length), pad, dtype=torch.long, device=device)
        self.unfinished = torch.ones((batch,), dtype=torch.bool, device=device)
        self.all_done = torch.zeros((), dtype=torch.bool, device=device)
        self.eos_ids, self.pad_id = list(eos), pad
        self.eos = torch.tensor(eos or [-1], dtype=torch.long, device=device)
        self.has_eos = bool(eos)
        self.pad = torch.tensor(pad, dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.graph_failed = False


class _StopWatch:
    """lm-eval's stop sequences (beyond the EOS text, which the EOS ids cover), its rule: one tracker per sequence
    over each row's last len+2 new tokens; the batch ends when one tracker has every row."""

    def __init__(self, tokenizer, stop: list[str], eos: list[int], batch: int, exact_tail: bool):
        eos_texts = {tokenizer.decode([e], skip_special_tokens=False) for e in eos}
        # with token-level post-processing (a thinking-end token) the whole tail matters: watch the EOS text too
        self.watch = [s for s in stop if s and (exact_tail or s not in eos_texts)]
        self.lookback = {s: len(tokenizer.encode(s, add_special_tokens=False)) + 2 for s in self.watch}
        self.trackers = {s: [False] * batch for s in self.watch}
        self.tokenizer = tokenizer
        self.cols: list = []

    def add(self, column) -> bool:
        """Take one new token per row; True once a stop sequence has ended every row."""
        if not self.watch:
            return False
        self.cols.append(column.cpu())
        gen = torch.stack(self.cols, dim=1)
        for s, done in self.trackers.items():
            rows = [i for i, d in enumerate(done) if not d]
            if not rows:
                continue
            texts = self.tokenizer.batch_decode(gen[rows, -self.lookback[s] :].tolist())
            for i, text in zip(rows, texts, strict=True):
                done[i] = s in text
        return any(all(done) for done in self.trackers.values())


@register_model(MODEL_NAME)
class FastHFLM(HFLM):
    """lm-eval's ``hf`` model with a CUDA-graph greedy decoding loop (module docstring)."""

    def __init__(
        self,
        *args,
        fast_decode: bool | str = True,
        cuda_graphs: bool | str = True,
        cudnn_sdpa: bool | str = False,
        graph_slots: int | str = 2,
        prefill_tokens: int | str = 8192,
        fused_norm: bool | str = "auto",
        cudnn_decode: bool | str = "auto",
        **kwargs,
    ) -> None:
        # read every option before the model loads, so that a bad value costs no load
        fused = None if _is_auto(fused_norm) else _truthy(fused_norm, "fused_norm", auto=True)
        cudnn = None if _is_auto(cudnn_decode) else _truthy(cudnn_decode, "cudnn_decode", auto=True)
        self.prefill_tokens = _count(prefill_tokens, "prefill_tokens", 0)
        self.fast_decode = _truthy(fast_decode, "fast_decode")
        self.cuda_graphs = _truthy(cuda_graphs, "cuda_graphs")
        self.cudnn_sdpa = _truthy(cudnn_sdpa, "cudnn_sdpa")
        self.graph_slots = _count(graph_slots, "graph_slots", 1)
        super().__init__(*args, **kwargs)
        on_cuda = self.device.type == "cuda"
        self.fused_norm = on_cuda if fused is None else fused
        self.cudnn_decode = on_cuda if cudnn is None else cudnn
        self._norms: list[torch.nn.Module] | None = None  # found on first use
        self._enc_memo: dict | None = None  # requests' tokens during loglikelihood / generate_until
        self._batch_encode_ok = True  # False once a batched tokenization differed from tok_encode or failed
        self._slots: list[_Slot] = []
        self._warned: set[str] = set()
        self.stats: list[GenerateStats] = []
        self.capture_errors: list[str] = []

    # ------------------------------------------------------------------ helpers

    @property
    def _base(self):
        """The transformers model (under a PEFT wrapper, if any)."""
        m = self.model
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def _sdpa_backends(self):
        if self.cudnn_sdpa or self.device.type != "cuda":
            return nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])

    def _decode_backends(self):
        """The decode step's SDPA backends: as the rest (``_sdpa_backends``), or with ``cudnn_decode`` cuDNN's first
        (the step's shapes are fixed, so its plan is built once, before the capture; a shape cuDNN cannot run
        goes to the next backend that can)."""
        if not self.cudnn_decode or self.device.type != "cuda":
            return nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel

        order = [
            SDPBackend.CUDNN_ATTENTION,
            SDPBackend.FLASH_ATTENTION,
            SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.MATH,
        ]
        return sdpa_kernel(order, set_priority=True)

    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type,
            dtype=self.mixed_precision_dtype,
            enabled=self.mixed_precision_dtype is not None,
        )

    @contextmanager
    def _decode_attention(self):
        cfg = self._base.config
        old = cfg._attn_implementation
        cfg._attn_implementation = DECODE_ATTENTION
        try:
            yield
        finally:
            cfg._attn_implementation = old

    @contextmanager
    def _fused_norms(self):
        """The model's Llama-formula RMS norms through torch's fused kernel for the block (``fused_norm``)."""
        if not self.fused_norm:
            yield
            return
        if self._norms is None:
            self._norms = fusable_rms_norms(self._base)
        before = [m.__dict__.get("forward") for m in self._norms]  # None, or an enclosing block's fused forward
        for m in self._norms:
            m.forward = _fused_rms_norm_forward.__get__(m)
        try:
            yield
        finally:
            for m, f in zip(self._norms, before, strict=True):
                if f is None:
                    m.__dict__.pop("forward", None)
                else:
                    m.forward = f

    def _warn_once(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            log.warning("hf-fast: %s", text)

    def _greedy_token(self, logits: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """Next token of every row from the last position's float32 logits ``[batch, vocab]``; ``step`` is the
        index of the token being produced (0 = the prefill's), a device tensor.  Runs inside the captured
        graph: device ops only.  The greedy choice, as ``generate``'s ``argmax``."""
        return logits.argmax(dim=-1)

    def _fast_plan(self, generation_kwargs: dict) -> tuple[dict | None, str | None]:
        """The merged generation config's stop ids if the fast loop reproduces ``generate`` for these
        kwargs, else ``(None, reason)``."""
        if not self.fast_decode:
            return None, "fast_decode=False"
        if self.backend != "causal":
            return None, "not a causal LM"
        base = self._base
        cfg = base.config
        if cfg._attn_implementation != "sdpa":
            return None, f"attn_implementation {cfg._attn_implementation!r} (the fast loop needs sdpa)"
        if not getattr(base, "_can_compile_fullgraph", False):
            return None, f"{type(base).__name__} does not support a static cache"
        text = cfg.get_text_config(decoder=True)
        layer_types = getattr(text, "layer_types", None)
        if layer_types is not None:
            if set(layer_types) != {"full_attention"}:
                return None, f"attention layer types {sorted(set(layer_types))}"
        elif getattr(text, "sliding_window", None) and getattr(text, "use_sliding_window", True):
            return None, "sliding-window attention"
        kw = {k: v for k, v in generation_kwargs.items() if k != "attention_mask"}
        kw["pad_token_id"] = self.tokenizer.pad_token_id  # what lm-eval passes to generate
        gc = copy.deepcopy(base.generation_config)
        unused = gc.update(**kw)
        if unused:
            return None, f"generation kwargs {sorted(unused)} are not generation-config fields"
        if gc.do_sample:
            return None, "do_sample=True"
        for field, neutral in NEUTRAL_GENERATION.items():
            if getattr(gc, field, None) not in neutral:
                return None, f"generation config {field}={getattr(gc, field)!r}"
        eos = gc.eos_token_id
        eos = [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])
        pad = gc.pad_token_id
        if pad is None:
            pad = eos[0] if eos else 0
        return {"eos": eos, "pad": int(pad)}, None

    def _kv_bytes_per_token(self) -> int:
        """Keys and values of one cached token over all layers, in the cache's dtype."""
        return kv_bytes_per_token(self._base.config, next(self._base.parameters()).element_size())

    def _get_slot(self, batch: int, needed: int, eos: list[int], pad: int, steps: int) -> _Slot:
        """A static cache (and its graph) for ``batch`` rows and ``needed`` positions: a kept one that is at least
        that large and whose extra reads over ``steps`` decode steps stay under ``SLOT_REUSE_EXCESS_BYTES``
        (the smallest such; its spare rows run as filler rows), else a new one of exactly this size.  Rows are
        not rounded up for later reuse: filler rows cost decode time in every step (their norms, rotary and
        attention work), which a capture saved once does not repay on long generations."""
        kv = self._kv_bytes_per_token()
        best, best_i = None, -1
        for i, s in enumerate(self._slots):
            if s.eos_ids != eos or s.pad_id != pad or s.batch < batch or s.length < needed:
                continue
            excess = (s.batch * s.length - batch * needed) * steps * kv
            if excess <= SLOT_REUSE_EXCESS_BYTES and (best is None or s.batch * s.length < best.batch * best.length):
                best, best_i = s, i
        if best is not None:
            self._slots.append(self._slots.pop(best_i))  # most recently used last
            return best
        while len(self._slots) >= self.graph_slots:
            self._slots.pop(0)
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        length = -(-needed // SLOT_LENGTH_STEP) * SLOT_LENGTH_STEP
        param = next(self._base.parameters())
        slot = _Slot(self._base, batch, length, self.device, param.dtype, eos, pad)
        self._slots.append(slot)
        return slot

    def release(self) -> None:
        """Free the static caches and graphs."""
        self._slots.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _prefill_chunks(self, lengths: list[int], width: int) -> list[tuple[list[int], int]]:
        """Rows (longest first) in chunks of at most ``prefill_tokens`` padded tokens, each with its width
        (its longest prompt); one chunk of the full width when the batch fits (generate's own call)."""
        if not self.prefill_tokens or len(lengths) * width <= self.prefill_tokens:
            return [(list(range(len(lengths))), width)]
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        chunks: list[tuple[list[int], int]] = []
        for i in order:
            if chunks and (len(chunks[-1][0]) + 1) * chunks[-1][1] <= self.prefill_tokens:
                chunks[-1][0].append(i)
            else:
                chunks.append(([i], max(1, lengths[i])))
        return chunks

    # ------------------------------------------------------------------ tokenizing requests

    @contextmanager
    def _encoded(self, strings: set[tuple[str, bool | None]]):
        """lm-eval tokenizes requests one string at a time, a multiple-choice context once for every option; for the
        block, ``tok_encode`` answers the given ``(string, add_special_tokens)`` from one batched tokenizer call a
        distinct string (what ``tok_encode`` would pass to ``encode`` for it, by lm-eval's own rules).  A spread of
        them is checked against ``tok_encode`` itself first; any difference and the block tokenizes as lm-eval
        does."""
        memo: dict[tuple[str, bool | None], array] = {}
        if strings and self._enc_memo is None and self._batch_encode_ok:
            try:
                memo = self._batch_encode(strings)
            except Exception as exc:  # noqa: BLE001 - a tokenizer that cannot batch: lm-eval's own path
                self._batch_encode_ok, memo = False, {}
                self._warn_once(f"batched tokenization failed ({exc!r}); tokenizing one at a time")
        outer = self._enc_memo
        if memo:
            self._enc_memo = memo
        try:
            yield
        finally:
            self._enc_memo = outer

    def _batch_encode(self, strings: set[tuple[str, bool | None]]) -> dict:
        """The memo of :meth:`_encoded`: the strings grouped by the ``encode`` arguments lm-eval's ``tok_encode``
        would use for each, one tokenizer call a group (``ENCODE_BATCH`` strings at a time); then the first string of
        every group and a spread of the rest against ``tok_encode`` itself — any difference and it is empty, for
        this call and the later ones."""
        prefix = self.tokenizer.decode(self.prefix_token_id)
        groups: dict[tuple, list[tuple[str, bool | None]]] = {}
        for key in strings:
            kw = _add_special_kwargs(key[1], self.add_bos_token)
            if key[1] is None and has_bos_prefix(key[0], prefix):
                kw["add_special_tokens"] = False
            groups.setdefault(tuple(sorted(kw.items())), []).append(key)
        memo: dict[tuple[str, bool | None], array] = {}
        for kw, keys in groups.items():
            for i in range(0, len(keys), ENCODE_BATCH):
                part = keys[i : i + ENCODE_BATCH]
                ids = self.tokenizer([k[0] for k in part], **dict(kw))["input_ids"]
                memo.update((k, array("i", t)) for k, t in zip(part, ids, strict=True))  # 4 B a token
        everything = list(memo)
        probe = {keys[0] for keys in groups.values()} | set(everything[:: max(1, len(everything) // 16)][:16])
        own = super().tok_encode  # lm-eval's
        if any(list(memo[k]) != own(k[0], add_special_tokens=k[1]) for k in probe):
            self._batch_encode_ok = False
            self._warn_once("batched tokenization differs from lm-eval's tok_encode; tokenizing one at a time")
            return {}
        return memo

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len=None, **kwargs):
        memo = getattr(self, "_enc_memo", None)  # (HFLM's own __init__ may tokenize before it exists)
        if memo is not None and not kwargs:
            ids = memo.get((string, add_special_tokens))
            if ids is not None:
                ids = list(ids)
                return ids[-left_truncate_len:] if left_truncate_len else ids
        return super().tok_encode(
            string, add_special_tokens=add_special_tokens, left_truncate_len=left_truncate_len, **kwargs
        )

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        strings: set[tuple[str, bool | None]] = set()
        if self.backend == "causal":
            for context, continuation in (r.args for r in requests):
                if context == "":
                    strings.add((continuation, False))
                    continue
                n = len(context) - len(context.rstrip())  # lm-eval's _encode_pair moves trailing spaces
                if n:
                    context, continuation = context[:-n], context[-n:] + continuation
                strings.update(((context + continuation, None), (context, None)))
        with self._encoded(strings):
            return super().loglikelihood(requests, disable_tqdm)

    def generate_until(self, requests, disable_tqdm: bool = False):
        with self._encoded({(r.args[0], None) for r in requests}):  # lm-eval sorts the requests by these
            return super().generate_until(requests, disable_tqdm)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        """lm-eval's own log-likelihood code, called on groups of requests of similar length (at most
        ``prefill_tokens`` padded tokens of distinct contexts a group, requests sharing a context together),
        so that a batch is only as wide as its longest request rather than the whole set's longest."""
        self._enc_memo = None  # lm-eval has tokenized every request by now: the memo is freed before scoring
        with torch.no_grad(), self._sdpa_backends(), self._fused_norms():
            if not self.prefill_tokens or self.backend != "causal" or len(requests) < 2:
                return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)

            def width(r) -> int:  # the input lm-eval feeds: (context + continuation)[-(max_length + 1):][:-1]
                return min(len(r[1]) + len(r[2]), self.max_length + 1) - 1

            def key(r) -> tuple:  # lm-eval's one-forward group: context + all but the last continuation token
                return tuple(r[1] + r[2][:-1])

            order = sorted(range(len(requests)), key=lambda i: (-width(requests[i]), key(requests[i])))
            groups: list[list[int]] = []
            forwards = 0
            for i in order:
                if groups and key(requests[i]) == key(requests[groups[-1][-1]]):
                    groups[-1].append(i)  # same forward as the previous request
                elif groups and (forwards + 1) * width(requests[groups[-1][0]]) <= self.prefill_tokens:
                    groups[-1].append(i)
                    forwards += 1
                else:
                    groups.append([i])
                    forwards = 1
            results: list = [None] * len(requests)
            for group in groups:
                out = super()._loglikelihood_tokens([requests[i] for i in group], True, override_bs)
                for i, r in zip(group, out, strict=True):
                    results[i] = r
            return results

    # ------------------------------------------------------------------ the decode step

    def _step(self, s: _Slot) -> None:
        """Feed ``s.tok`` (cache slot ``s.slot``), produce token ``s.step``; device ops only."""
        s.mask.index_fill_(3, s.slot, 0.0)
        with self._decode_attention(), self._decode_backends():
            logits = self.model(
                input_ids=s.tok, position_ids=s.pos, attention_mask=s.mask, past_key_values=s.cache, use_cache=True
            ).logits
        nxt = self._greedy_token(logits[:, -1].float(), s.step)
        if s.has_eos:
            nxt = torch.where(s.unfinished, nxt, s.pad)
            s.unfinished.logical_and_(~(nxt[:, None] == s.eos[None, :]).any(dim=1))
        s.out.index_copy_(1, s.step, nxt[:, None])
        s.tok.copy_(nxt[:, None])
        s.pos.add_(1)
        s.slot.add_(1)
        s.step.add_(1)
        s.all_done.copy_(~s.unfinished.any())

    def _cudnn_decode_failed(self, exc: BaseException) -> bool:
        """After a decode step raised: if cuDNN's attention was in use, leave it out from now on (a shape it accepts
        but has no execution plan for) and say so; True when the step is worth running again without it."""
        if not self.cudnn_decode or "cudnn" not in repr(exc).lower():
            return False
        self.cudnn_decode = False
        log.warning("hf-fast: the decode step failed with cuDNN attention (%r); decoding with the other kernels", exc)
        return True

    def _eager_step(self, s: _Slot) -> None:
        """``_step`` without a graph; a failure of cuDNN's attention is retried once without it: the layers before
        the failing one had already written this token's keys and values and moved their cache length on, which is
        put back first (the step's other writes come after the forward pass)."""
        try:
            self._step(s)
        except RuntimeError as exc:
            if not self._cudnn_decode_failed(exc):
                raise
            for layer in s.cache.layers:
                layer.cumulative_length.copy_(s.slot[0])
            self._step(s)

    def _capture(self, s: _Slot) -> float:
        t0 = time.perf_counter()
        s.mask.fill_(s.masked)
        s.mask[..., 0] = 0.0
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up: lazy inits, kernel selection, cuBLAS workspaces
                s.slot.zero_()
                s.step.zero_()
                self._step(s)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._step(s)
        torch.cuda.synchronize()
        s.graph = graph
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ lm-eval's hook

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs) -> torch.Tensor:
        # lm-eval's normalisation of temperature / do_sample (HFLM._model_generate), then the check
        generation_kwargs["temperature"] = generation_kwargs.get("temperature", 0.0)
        do_sample = generation_kwargs.get("do_sample")
        if (temp := generation_kwargs.get("temperature")) == 0.0 and do_sample is None:
            generation_kwargs["do_sample"] = do_sample = False
        if do_sample is False and temp == 0.0:
            generation_kwargs.pop("temperature", None)
        plan, reason = self._fast_plan(generation_kwargs)
        if plan is None:
            self._warn_once(f"{reason}; this batch runs through model.generate")
            t0 = time.perf_counter()
            out = super()._model_generate(context, max_length, stop, **generation_kwargs)
            b, t = context.shape
            self.stats.append(
                GenerateStats(
                    b, t, out.shape[1] - t, max_length - t, 0.0, time.perf_counter() - t0, 0.0, 0, False, reason
                )
            )
            return out
        with torch.no_grad(), self._autocast(), self._sdpa_backends(), self._fused_norms():
            return self._fast_generate(context, generation_kwargs.get("attention_mask"), max_length, stop, **plan)

    def _fast_generate(self, context, attention_mask, max_length: int, stop: list[str], eos: list[int], pad: int):
        batch, prompt_len = context.shape
        max_new = max_length - prompt_len
        if max_new <= 0:
            return context
        if attention_mask is None:
            attention_mask = torch.ones_like(context)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        slot = self._get_slot(batch, prompt_len + max_new, eos, pad, max_new - 1) if max_new > 1 else None
        capture_s = self._ensure_graph(slot) if slot is not None else 0.0

        t0 = time.perf_counter()
        position_ids = attention_mask.long().cumsum(-1) - 1
        position_ids = position_ids.masked_fill(attention_mask == 0, 0)
        last, kv = self._prefill(context, attention_mask, position_ids)
        first = self._greedy_token(last, torch.zeros((1,), dtype=torch.long, device=context.device))
        del last
        eos_t = torch.tensor(eos or [-1], dtype=torch.long, device=context.device)
        unfinished = ~(first[:, None] == eos_t[None, :]).any(dim=1) if eos else torch.ones_like(first, dtype=torch.bool)

        if slot is None:  # one new token: the prefill is the whole generation
            sync()
            self.stats.append(
                GenerateStats(
                    batch, prompt_len, 1, max_new, time.perf_counter() - t0, 0.0, capture_s, 0, False, "fast", len(kv)
                )
            )
            return torch.cat([context, first[:, None]], dim=1)

        n_chunks = len(kv)
        self._load_slot(slot, kv, attention_mask, position_ids, first, unfinished, pad)
        del kv
        sync()
        prefill_s = time.perf_counter() - t0

        stops = _StopWatch(self.tokenizer, stop, eos, batch, exact_tail=self.think_end_token is not None)
        t1 = time.perf_counter()
        produced = 1
        finished = (not bool(unfinished.any()) if eos else False) or stops.add(first)
        while produced < max_new and not finished:
            if slot.graph is not None:
                slot.graph.replay()
            else:
                self._eager_step(slot)
            produced += 1
            finished = bool(slot.all_done) or stops.add(slot.out[:batch, produced - 1])
        sync()
        self.stats.append(
            GenerateStats(
                batch, prompt_len, produced, max_new, prefill_s, time.perf_counter() - t1, capture_s, slot.length,
                slot.graph is not None, "fast", n_chunks,
            )
        )  # fmt: skip
        return torch.cat([context, slot.out[:batch, :produced]], dim=1)

    def _ensure_graph(self, slot) -> float:
        """Capture the slot's decode step as a CUDA graph once (seconds spent); an architecture the graph cannot
        capture decodes eagerly instead."""
        if not (self.cuda_graphs and self.device.type == "cuda") or slot.graph is not None or slot.graph_failed:
            return 0.0
        try:
            return self._capture(slot)
        except Exception as exc:  # noqa: BLE001 - an architecture the graph cannot capture: run eagerly
            torch.cuda.synchronize()
            if self._cudnn_decode_failed(exc):
                return self._ensure_graph(slot)
            slot.graph_failed = True
            self.capture_errors.append(repr(exc)[:500])
            log.warning("hf-fast: CUDA-graph capture failed (%r); decoding without graphs", exc)
            torch.cuda.synchronize()
            return 0.0

    def _prefill(self, context, attention_mask, position_ids):
        """The call generate makes (position ids from the mask, dynamic cache, last logits only), for rows of
        similar length together (each chunk only as wide as its longest prompt), or the whole batch.  Returns the
        last logits of every row and ``(rows, width, cache)`` per chunk."""
        batch, prompt_len = context.shape
        last = None
        kv: list[tuple[list[int], int, DynamicCache]] = []
        for rows, width in self._prefill_chunks(attention_mask.sum(-1).tolist(), prompt_len):
            idx = torch.tensor(rows, device=context.device) if len(rows) < batch else None
            ids = context[:, prompt_len - width :] if idx is None else context[idx, prompt_len - width :]
            m = attention_mask[:, prompt_len - width :] if idx is None else attention_mask[idx, prompt_len - width :]
            pos = position_ids[:, prompt_len - width :] if idx is None else position_ids[idx, prompt_len - width :]
            dyn = DynamicCache(config=self._base.config)
            out = self.model(
                input_ids=ids, attention_mask=m, position_ids=pos, past_key_values=dyn, use_cache=True, logits_to_keep=1
            )
            logits = out.logits[:, -1].float()
            del out
            if idx is None:
                last = logits
            else:
                if last is None:
                    last = logits.new_empty((batch, logits.shape[-1]))
                last[idx] = logits
            kv.append((rows, width, dyn))
        return last, kv

    def _load_slot(self, slot, kv, attention_mask, position_ids, first, unfinished, pad) -> None:
        """The prefill's keys/values into the static cache (each row at the slots generate's cache has it in:
        left-padded to the batch's prompt length), and the decode step's state.  A slot with more rows than the
        batch runs the rest as finished filler rows (pad tokens, attending to one zeroed slot), whose results are
        never read: rows do not interact in a decode step."""
        batch, prompt_len = attention_mask.shape
        slot.cache.reset()
        for rows, width, dyn in kv:
            idx = torch.tensor(rows, device=attention_mask.device) if len(rows) < batch else None
            for static_layer, layer in zip(slot.cache.layers, dyn.layers, strict=True):
                if idx is None:
                    static_layer.keys[:batch, :, prompt_len - width : prompt_len].copy_(layer.keys)
                    static_layer.values[:batch, :, prompt_len - width : prompt_len].copy_(layer.values)
                else:
                    static_layer.keys[idx, :, prompt_len - width : prompt_len] = layer.keys
                    static_layer.values[idx, :, prompt_len - width : prompt_len] = layer.values
        for static_layer in slot.cache.layers:
            static_layer.cumulative_length.fill_(prompt_len)
        slot.mask.fill_(slot.masked)
        slot.mask[:batch, 0, 0, :prompt_len].masked_fill_(attention_mask.bool(), 0.0)
        slot.mask[batch:, 0, 0, 0] = 0.0
        slot.tok.fill_(pad)
        slot.tok[:batch] = first[:, None]
        slot.pos.zero_()
        slot.pos[:batch] = position_ids[:, -1:] + 1
        slot.slot.fill_(prompt_len)
        slot.step.fill_(1)
        slot.out.fill_(pad)
        slot.out[:batch, 0] = first
        slot.unfinished.zero_()
        slot.unfinished[:batch] = unfinished

    def stats_summary(self) -> list[dict]:
        return [asdict(s) for s in self.stats]


def main(argv: list[str] | None = None) -> None:
    """``python -m shop_eval.hf_fast LM_EVAL_ARGS...``: lm-eval's command line with ``hf-fast`` registered."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        cli_evaluate()
    except ShopEvalError as exc:  # a bad --model_args value, data the tasks cannot read: one line, exit 2
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
