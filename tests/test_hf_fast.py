"""``hf-fast`` (shop_eval/hf_fast.py) returns exactly what lm-eval's ``hf`` backend returns: on every
``shop_*`` task, on the tiny model as built (it stops after a few tokens) and with its EOS moved to a token it
never emits (every row decodes to ``max_gen_toks``); token for token, batch widths included, for rows that
stop at their own EOS and for lm-eval's stop sequences; with a PEFT adapter and a chat template, through the
real command line.  The reference is lm-eval's own ``hf`` model (``model.generate``) on the same inputs."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "lm_eval_tasks"


@pytest.fixture(scope="module")
def lm_eval_env(monkeypatch_module):
    for k in ("SHOP_EVAL_DATA", "SHOP_EVAL_DATA_FORMAT", "SHOP_EVAL_SKIP_INVALID"):
        monkeypatch_module.delenv(k, raising=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def long_model(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with ``<|end|>`` as its EOS (tokenizer and generation config): it never emits it, so
    every generation runs to its token budget."""
    out = tmp_path_factory.mktemp("tiny-long")
    for f in tiny_model_dir.iterdir():
        shutil.copy(f, out / f.name)
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    tok_cfg["eos_token"] = "<|end|>"
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    end_id = {t["content"]: t["id"] for t in json.loads((out / "tokenizer.json").read_text())["added_tokens"]}[
        "<|end|>"
    ]
    gen = json.loads((out / "generation_config.json").read_text())
    gen["eos_token_id"] = end_id
    (out / "generation_config.json").write_text(json.dumps(gen))
    return out


def _pair(path: Path, fast_kw: dict | None = None, **kw):
    """lm-eval's hf model and hf-fast, loaded alike (``kw``: HFLM arguments both take; ``fast_kw``: hf-fast's)."""
    from lm_eval.models.huggingface import HFLM

    from shop_eval.hf_fast import FastHFLM

    args = {"pretrained": str(path), "dtype": "float32", "device": "cpu", "batch_size": 4, **kw}
    return HFLM(**args), FastHFLM(**args, **(fast_kw or {}))


def _record_generate(lm) -> list[torch.Tensor]:
    """Keep every tensor ``_model_generate`` returns (prompt + new tokens, as lm-eval slices it)."""
    seen: list[torch.Tensor] = []
    original = lm._model_generate

    def wrapped(*a, **k):
        out = original(*a, **k)
        seen.append(out.detach().clone())
        return out

    lm._model_generate = wrapped
    return seen


def _requests(prompts: list[str], **gen):
    from lm_eval.api.instance import Instance

    kw = {"until": [], "do_sample": False, "max_gen_toks": 24, **gen}
    return [Instance("generate_until", {}, (p, dict(kw)), i) for i, p in enumerate(prompts)]


PROMPTS = [
    "Which product is cheaper, the red shoe or the blue one?",
    "Order",
    "List the entities in: waterproof hiking boots size 42 by Acme, brown leather.",
    "Rank the items by relevance to 'usb c charger': 1. cable 2. charger 3. case 4. adapter",
    "Write a short title for a stainless steel water bottle, 750 ml, keeps drinks cold for 24 hours.",
    "Is this review positive or negative? The zipper broke after two days.",
    "What is the return window?",
]


# ----------------------------------------------------------------------------- all shop_* tasks


@pytest.mark.parametrize(("which", "prefill_tokens"), [("as_built", 8192), ("no_early_eos", 256)])
def test_every_shop_task_returns_what_hf_returns(which, prefill_tokens, tiny_model_dir, long_model, lm_eval_env):
    """prefill_tokens=256: every batch's prefill is cut into chunks of similar length (and log-likelihood
    requests into groups: their numbers then move in the last bits, as they do between hf batch sizes);
    8192: batches this small are prefilled whole, as generate does, and everything is bit for bit hf's."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    path = tiny_model_dir if which == "as_built" else long_model
    tm = TaskManager(include_path=str(TASKS_DIR))
    tasks = tm.match_tasks(["shop_*"])
    assert len(tasks) == 7
    hf, fast = _pair(path, {"prefill_tokens": prefill_tokens})
    runs = {}
    for name, lm in (("hf", hf), ("fast", fast)):
        runs[name] = lm_eval.simple_evaluate(
            model=lm, tasks=tasks, task_manager=tm, log_samples=True, bootstrap_iters=0
        )
    n = 0
    for t in tasks:
        a, b = runs["hf"]["samples"][t], runs["fast"]["samples"][t]
        assert [s["doc_id"] for s in a] == [s["doc_id"] for s in b]
        for x, y in zip(a, b, strict=True):
            if t.endswith("_ll") and prefill_tokens < 8192:
                (xs,), (ys,) = zip(*x["resps"], strict=True), zip(*y["resps"], strict=True)
                assert [ll for ll, _ in xs] == pytest.approx([ll for ll, _ in ys], rel=1e-5, abs=1e-5)
                assert max(range(len(xs)), key=lambda i: xs[i][0]) == max(range(len(ys)), key=lambda i: ys[i][0])
            else:
                assert x["resps"] == y["resps"], (t, x["doc_id"])
                assert x["filtered_resps"] == y["filtered_resps"]
            n += 1
        for key, value in runs["hf"]["results"][t].items():
            if key == "alias":
                continue
            other = runs["fast"]["results"][t][key]
            assert other == value or (isinstance(value, float) and math.isnan(value) and math.isnan(other)), (t, key)
    assert n >= 2 * 27  # every row of the sample, both filter pipelines of the generative tasks
    # the generations went through the fast loop, not generate: batches of 4 (and a smaller last one)
    assert fast.stats and {s.path for s in fast.stats} == {"fast"}
    batches = {s.batch for s in fast.stats}
    assert 4 in batches and min(batches) < 4
    widths = [s.new_tokens for s in fast.stats if s.max_new_tokens > 1]
    if which == "no_early_eos":
        assert max(widths) == 100 and min(widths) == 100  # every row decoded its full budget
    else:
        assert max(widths) < 100  # stopped at the model's own EOS


# ----------------------------------------------------------------------------- token for token


@pytest.fixture(scope="module")
def random_model(tiny_model_dir, tmp_path_factory) -> Path:
    """A randomly initialised model with the tiny tokenizer: its greedy texts differ from prompt to prompt
    (the trained tiny model answers every prompt alike), so rows stop at different steps."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-random")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _first_steps(tensors: list[torch.Tensor], new: int) -> dict[int, dict[int, int]]:
    """token -> {row: the step of its first occurrence among the new tokens}, over all batches."""
    found: dict[int, dict[int, int]] = {}
    row_id = 0
    for t in tensors:
        for row in t[:, t.shape[1] - new :].tolist() if t.shape[1] >= new else t.tolist():
            for step, tok in enumerate(row):
                found.setdefault(tok, {}).setdefault(row_id, step)
            row_id += 1
    return found


@pytest.mark.parametrize("prefill_tokens", [8192, 16])
def test_rows_stop_at_their_own_eos_token_for_token(random_model, prefill_tokens):
    """EOS set to a token that different rows first emit at different steps: each row stops at its own
    (pad tokens after it), the batch ends when its last row stops; the tensors equal generate's — also
    with the prefill cut into chunks of rows of similar length (prefill_tokens=16)."""
    hf, _ = _pair(random_model)
    probe = _record_generate(hf)
    reqs = _requests(PROMPTS, max_gen_toks=40)
    hf.generate_until(reqs, disable_tqdm=True)
    assert all(t.shape[1] >= 40 for t in probe)  # nothing stopped: every batch ran its 40 steps
    found = _first_steps(probe, 40)
    eos = max((t for t in found if t > 6), key=lambda t: (len(set(found[t].values())), len(found[t])))
    assert len(set(found[eos].values())) >= 2
    hf, fast = _pair(random_model, {"prefill_tokens": prefill_tokens})
    for lm in (hf, fast):
        lm.model.generation_config.eos_token_id = eos
    a_seen, b_seen = _record_generate(hf), _record_generate(fast)
    assert hf.generate_until(reqs, disable_tqdm=True) == fast.generate_until(reqs, disable_tqdm=True)
    assert len(a_seen) == len(b_seen) == 2
    for x, y in zip(a_seen, b_seen, strict=True):
        assert torch.equal(x, y)  # same width (the batch ended at the same step), pads in the same places
    assert {s.path for s in fast.stats} == {"fast"}
    ends = set()
    for st, t in zip(fast.stats, b_seen, strict=True):
        for row in t[:, st.prompt_len :].tolist():
            ends.add(row.index(eos) if eos in row else None)
            if eos in row:
                assert set(row[row.index(eos) + 1 :]) <= {hf.tokenizer.pad_token_id}
    assert len(ends - {None}) >= 2  # rows stopped at different steps
    assert (max(st.prefill_chunks for st in fast.stats) > 1) == (prefill_tokens == 16)


def test_stop_sequences_end_the_batch_as_lm_eval_does(random_model):
    """lm-eval's stop sequences: the batch ends once one sequence has been seen in every row's last
    tokens; texts are cut at the first stop.  Token for token what generate returns with lm-eval's
    criteria, also with a thinking-end token (the whole tail is then post-processed)."""
    for extra in ({}, {"think_end_token": "</s>"}):
        hf, fast = _pair(random_model, **extra)
        a_seen, b_seen = _record_generate(hf), _record_generate(fast)
        reqs = _requests(PROMPTS, until=["e", "an"], max_gen_toks=30)
        a, b = hf.generate_until(reqs, disable_tqdm=True), fast.generate_until(reqs, disable_tqdm=True)
        assert a == b
        assert not any("e" in x or "an" in x for x in a)
        for x, y in zip(a_seen, b_seen, strict=True):
            assert torch.equal(x, y)
        assert any(t.shape[1] - s.prompt_len < 30 for t, s in zip(b_seen, fast.stats, strict=True))  # stopped early
        assert {s.path for s in fast.stats} == {"fast"}


def test_falls_back_to_generate_when_a_logits_processor_or_sampling_is_asked(tiny_model_dir):
    hf, fast = _pair(tiny_model_dir)
    reqs = _requests(PROMPTS[:3], repetition_penalty=1.3)
    assert fast.generate_until(reqs, disable_tqdm=True) == hf.generate_until(reqs, disable_tqdm=True)
    assert fast.stats and all("repetition_penalty" in s.path for s in fast.stats)
    torch.manual_seed(0)
    sampled = fast.generate_until(_requests(PROMPTS[:2], do_sample=True, temperature=0.7), disable_tqdm=True)
    assert len(sampled) == 2 and "do_sample=True" in fast.stats[-1].path
    from shop_eval.hf_fast import FastHFLM

    fast_off = FastHFLM(pretrained=str(tiny_model_dir), dtype="float32", device="cpu", batch_size=4, fast_decode=False)
    fast_off.generate_until(_requests(PROMPTS[:2]), disable_tqdm=True)
    assert fast_off.stats[-1].path == "fast_decode=False"


def test_peft_adapter_and_chat_template_through_the_command_line(tiny_model_dir, tmp_path, lm_eval_env):
    """``python -m shop_eval.hf_fast --model hf-fast`` (the wrapper registers the class before lm-eval
    looks the model up) with ``peft=`` and ``--apply_chat_template`` logs the same samples as ``hf``."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    lora = tmp_path / "lora"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False
    )
    get_peft_model(model, cfg).save_pretrained(lora)  # random A and B: the adapter changes the outputs
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_EVAL_")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    args = ["--model_args", f"pretrained={tiny_model_dir},peft={lora},dtype=float32", "--device", "cpu"]
    args += ["--batch_size", "4", "--include_path", str(TASKS_DIR), "--tasks", "shop_ner,shop_generation"]
    args += ["--apply_chat_template", "--limit", "3", "--log_samples"]
    samples = {}
    for name, cmd in (
        ("hf", [sys.executable, "-m", "lm_eval", "--model", "hf"]),
        ("fast", [sys.executable, "-m", "shop_eval.hf_fast", "--model", "hf-fast"]),
    ):
        run = subprocess.run(
            [*cmd, *args, "--output_path", str(tmp_path / name)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        (results,) = (tmp_path / name).rglob("results_*.json")
        res = json.loads(results.read_text())
        assert res["chat_template"] and res["config"]["model"] == ("hf" if name == "hf" else "hf-fast")
        samples[name] = {
            p.name.split("_20")[0]: [json.loads(x)["resps"] for x in p.read_text().splitlines()]
            for p in (tmp_path / name).rglob("samples_*.jsonl")
        }
    assert samples["hf"] == samples["fast"] and len(samples["hf"]) == 2
    assert any(r[0][0] for rows in samples["hf"].values() for r in rows)  # something was generated


# ----------------------------------------------------------------------------- pieces


def test_grouped_decode_attention_equals_attention_over_repeated_heads():
    """One query token, 8 query heads over 2 K/V heads, a padding mask: the grouped call equals softmax
    attention computed by hand (float64) with each query head on its own K/V head."""
    from shop_eval.hf_fast import grouped_decode_attention

    torch.manual_seed(0)
    b, h, kv, d, length = 3, 8, 2, 16, 11
    q, k, v = torch.randn(b, h, 1, d), torch.randn(b, kv, length, d), torch.randn(b, kv, length, d)
    mask = torch.ones(b, 1, 1, length, dtype=torch.bool)
    mask[0, ..., :4] = False  # left padding of row 0
    mask[2, ..., -3:] = False  # unused cache slots of row 2

    class Module:
        num_key_value_groups = h // kv

    out, _ = grouped_decode_attention(Module(), q, k, v, mask, scaling=d**-0.5)
    assert out.shape == (b, 1, h, d)
    ref = torch.empty(b, 1, h, d, dtype=torch.float64)
    for i in range(b):
        for j in range(h):
            kk, vv = k[i, j // (h // kv)].double(), v[i, j // (h // kv)].double()
            scores = (q[i, j, 0].double() @ kk.T) * d**-0.5
            scores[~mask[i, 0, 0]] = -math.inf
            ref[i, 0, j] = torch.softmax(scores, -1) @ vv
    assert torch.allclose(out.double(), ref, atol=1e-5)


class GemmaLikeRMSNorm(torch.nn.Module):
    """An RMS norm of another formula (Gemma's: times ``1 + weight``, the weight stored as zeros)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(d))
        self.variance_epsilon = 1e-6

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return (x32 * (1.0 + self.weight.float())).to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_rms_norm_replaces_only_norms_of_llamas_formula(dtype):
    """Every Llama RMS norm (trained-like weights) is found and the fused forward equals its own (float32: exactly;
    bfloat16: within one rounding); a norm of another formula in the same model is left alone."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from shop_eval.hf_fast import _fused_rms_norm_forward, fusable_rms_norms

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4)
    model = LlamaForCausalLM(cfg).to(dtype)
    for m in model.modules():
        if type(m).__name__ == "LlamaRMSNorm":
            m.weight.data.normal_(1.0, 0.3)
    model.other = GemmaLikeRMSNorm(32).to(dtype)
    found = fusable_rms_norms(model)
    assert len(found) == 2 * 3 + 1 and all(type(m).__name__ == "LlamaRMSNorm" for m in found)
    assert model.other not in found
    x = (5 * torch.randn(2, 7, 32)).to(dtype)
    for m in found:
        want, got = m(x), _fused_rms_norm_forward(m, x)
        if dtype == torch.float32:
            assert torch.equal(want, got)
        else:
            assert torch.allclose(want.float(), got.float(), rtol=2 * 2**-7, atol=0)
    assert fusable_rms_norms(GemmaLikeRMSNorm(32)) == []


def test_fused_norms_in_the_fast_paths_give_generates_tokens(random_model, monkeypatch):
    """``fused_norm=true`` (the CUDA default) on the CPU: the norms run through the fused forward during the prefill
    and every decode step, the tokens equal generate's, and the modules have their own forward back afterwards."""
    import shop_eval.hf_fast as hf_fast

    calls = []
    original = hf_fast._fused_rms_norm_forward

    def counted(module, x):
        calls.append(tuple(x.shape))
        return original(module, x)

    monkeypatch.setattr(hf_fast, "_fused_rms_norm_forward", counted)
    hf, fast = _pair(random_model, {"fused_norm": "true"})
    assert fast.fused_norm and not fast.cudnn_decode  # cudnn_decode's auto: CUDA only
    a_seen, b_seen = _record_generate(hf), _record_generate(fast)
    reqs = _requests(PROMPTS, max_gen_toks=12)
    assert hf.generate_until(reqs, disable_tqdm=True) == fast.generate_until(reqs, disable_tqdm=True)
    for x, y in zip(a_seen, b_seen, strict=True):
        assert torch.equal(x, y)
    assert {s.path for s in fast.stats} == {"fast"}
    assert len(fast._norms) == 5  # 2 layers x 2 + the final norm
    in_model = [shape for shape in calls if len(shape) == 3]  # the check on load runs [4, hidden] inputs
    assert len({shape[1] for shape in in_model}) > 1  # prefill widths and the decode step's one position
    assert all("forward" not in m.__dict__ for m in fast._norms)


def test_fused_norms_leave_accelerate_hooks_and_nest():
    """A norm that carries an instance forward (accelerate's device-map / offload hook) is not fused and keeps its
    hook after the block; an inner block's exit leaves the outer block's norms fused."""
    from accelerate.hooks import ModelHook, add_hook_to_module
    from transformers import LlamaConfig, LlamaForCausalLM

    from shop_eval.hf_fast import FastHFLM, fusable_rms_norms

    class Counting(ModelHook):
        calls = 0

        def pre_forward(self, module, *args, **kwargs):
            Counting.calls += 1
            return args, kwargs

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    model = LlamaForCausalLM(cfg)
    add_hook_to_module(model.model.norm, Counting())
    found = fusable_rms_norms(model)
    assert len(found) == 4 and model.model.norm not in found
    lm = FastHFLM.__new__(FastHFLM)  # the context's state only: no tokenizer or weights loading
    lm.fused_norm, lm._norms, lm._model = True, None, model
    with lm._fused_norms():
        with lm._fused_norms():
            pass
        assert all("forward" in m.__dict__ for m in lm._norms)  # still fused in the outer block
        model(torch.tensor([[1, 2, 3]]))
    assert all("forward" not in m.__dict__ for m in lm._norms)
    assert "forward" in model.model.norm.__dict__ and Counting.calls == 1  # the hook ran, and is still there
    model(torch.tensor([[1, 2, 3]]))
    assert Counting.calls == 2


def test_a_decode_step_that_fails_with_cudnn_runs_again_without_it(random_model, monkeypatch, caplog):
    """cuDNN accepts a shape but fails to run it (no execution plan): the step is run again with the other kernels —
    the layers that had already written this token's keys and values are put back first — and the tokens are still
    generate's; cuDNN stays off from then on, with one warning."""
    from transformers import AttentionInterface

    import shop_eval.hf_fast as hf_fast

    hf, fast = _pair(random_model)
    fast.cudnn_decode = True  # as on CUDA (on a CPU its context is a no-op; the failure is simulated below)
    real = hf_fast.grouped_decode_attention

    def flaky(module, query, *a, **k):
        if fast.cudnn_decode and module.layer_idx == 1 and query.shape[2] == 1:
            raise RuntimeError("cuDNN Frontend error: No execution plans support the graph.")
        return real(module, query, *a, **k)

    monkeypatch.setitem(AttentionInterface._global_mapping, hf_fast.DECODE_ATTENTION, flaky)
    a_seen, b_seen = _record_generate(hf), _record_generate(fast)
    reqs = _requests(PROMPTS, max_gen_toks=12)
    with caplog.at_level("WARNING", logger="shop_eval.hf_fast"):
        assert hf.generate_until(reqs, disable_tqdm=True) == fast.generate_until(reqs, disable_tqdm=True)
    for x, y in zip(a_seen, b_seen, strict=True):
        assert torch.equal(x, y)
    assert fast.cudnn_decode is False
    assert sum("failed with cuDNN attention" in r.getMessage() for r in caplog.records) == 1


def test_one_forward_per_prompt_for_one_token_options(tiny_model_dir, lm_eval_env):
    """shop_multiple_choice_ll's options are one token each: lm-eval's log-likelihood path (inherited
    unchanged) runs one forward row per prompt and reads every option from it; same numbers as hf."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(TASKS_DIR))
    hf, fast = _pair(tiny_model_dir)
    rows = []
    original = fast._model_call

    def counted(inps, *a, **k):
        rows.append(inps.shape[0])
        return original(inps, *a, **k)

    fast._model_call = counted
    res = {}
    for name, lm in (("hf", hf), ("fast", fast)):
        res[name] = lm_eval.simple_evaluate(
            model=lm, tasks=["shop_multiple_choice_ll"], task_manager=tm, log_samples=True, bootstrap_iters=0
        )
    docs = res["fast"]["samples"]["shop_multiple_choice_ll"]
    options = sum(len(s["arguments"]) for s in docs)
    assert options > len(docs) and sum(rows) == len(docs)
    for x, y in zip(res["hf"]["samples"]["shop_multiple_choice_ll"], docs, strict=True):
        assert x["resps"] == y["resps"]


@pytest.mark.parametrize("early_eos", [False, True])
def test_a_kept_cache_serves_smaller_and_shorter_batches(random_model, early_eos):
    """A batch smaller than an earlier one (a task's last one) or needing fewer positions runs in the kept
    larger static cache, its spare rows as finished filler rows: the texts and the tensors equal generate's, and
    one cache served every batch — also when rows stop at their own EOS (the filler rows must not keep a batch
    running) and with the prefill cut into chunks (prefill_tokens=16)."""
    from shop_eval import hf_fast

    batches = ((PROMPTS[:4], 24), (PROMPTS[5:7], 40), (PROMPTS[:1], 6))
    hf, fast = _pair(random_model, {"prefill_tokens": 16} if early_eos else None)
    if early_eos:  # EOS: a token some rows of the smaller batch emit before its budget ends
        probe = _record_generate(hf)
        hf.generate_until(_requests(batches[1][0], max_gen_toks=batches[1][1]), disable_tqdm=True)
        found = _first_steps(probe, batches[1][1])
        eos = max((t for t in found if t > 6), key=lambda t: (len(found[t]), -max(found[t].values())))
        assert len(found[eos]) == 2 and max(found[eos].values()) < batches[1][1] - 1  # every row emits it early
        hf, fast = _pair(random_model, {"prefill_tokens": 16})
        for lm in (hf, fast):
            lm.model.generation_config.eos_token_id = eos
    a_seen, b_seen = _record_generate(hf), _record_generate(fast)
    for prompts, n in batches:
        reqs = _requests(prompts, max_gen_toks=n)
        assert hf.generate_until(reqs, disable_tqdm=True) == fast.generate_until(reqs, disable_tqdm=True)
    for x, y in zip(a_seen, b_seen, strict=True):
        assert torch.equal(x, y)  # same width: the batch ended at the same step
    if early_eos:
        assert b_seen[1].shape[1] - fast.stats[1].prompt_len < batches[1][1]  # that batch ended at its EOS
        assert max(st.prefill_chunks for st in fast.stats) > 1
    assert [s.batch for s in fast.stats] == [4, 2, 1] and {s.path for s in fast.stats} == {"fast"}
    assert len(fast._slots) == 1 and fast._slots[0].batch == 4  # the first batch's cache served the later ones
    assert len({s.cache_len for s in fast.stats}) == 1
    # a cache whose extra reads would exceed the budget is not reused: a new one is made
    big = fast._slots[0]
    excess = (big.batch * big.length - 1 * 2) * 10**9 * fast._kv_bytes_per_token()
    assert excess > hf_fast.SLOT_REUSE_EXCESS_BYTES
    assert fast._get_slot(1, 2, big.eos_ids, big.pad_id, 10**9) is not big


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("fused_norm", "ture", "fused_norm='ture': expected true, false or auto"),
        ("cuda_graphs", "2", "cuda_graphs='2': expected true, false or 1/0"),
        ("graph_slots", True, "graph_slots=True: expected a whole number >= 1"),
        ("prefill_tokens", float("inf"), "prefill_tokens=inf: expected a whole number >= 0"),
        ("graph_slots", "0", "graph_slots='0': expected a whole number >= 1"),
        ("prefill_tokens", "-5", "prefill_tokens='-5': expected a whole number >= 0"),
        ("prefill_tokens", "8k", "prefill_tokens='8k': expected a whole number >= 0"),
    ],
)
def test_a_bad_model_arg_is_named_before_the_model_loads(option, value, message, tmp_path):
    """A value hf-fast cannot read is named with the option before anything is loaded (the model path here does not
    exist: a load would fail differently)."""
    from shop_eval import hf_fast

    with pytest.raises(hf_fast.OptionError, match=message.replace("(", r"\(")):
        hf_fast.FastHFLM(pretrained=str(tmp_path / "no-model"), **{option: value})


@pytest.mark.parametrize("bad", ["model_arg", "data"])
def test_bad_input_on_the_command_line_is_one_line_and_exit_2(bad, tmp_path, tiny_model_dir):
    """A --model_args value hf-fast cannot read, or a data file the tasks cannot read: one line, exit 2."""
    model_args = (
        f"pretrained={tmp_path / 'no-model'},fused_norm=ture" if bad == "model_arg" else f"pretrained={tiny_model_dir}"
    )
    argv = ["--model", "hf-fast", "--model_args", model_args]
    argv += ["--device", "cpu", "--include_path", str(TASKS_DIR), "--tasks", "shop_ner", "--limit", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["SHOP_EVAL_DATA"] = str(tmp_path / "missing.json")
    proc = subprocess.run(
        [sys.executable, "-m", "shop_eval.hf_fast", *argv], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    if bad == "model_arg":
        assert err[-1] == "error: hf-fast: fused_norm='ture': expected true, false or auto"
    else:
        assert err[-1].startswith("error: ") and "missing.json" in err[-1]
    assert "Traceback" not in proc.stderr


def test_flags_read_as_lm_eval_passes_them():
    from shop_eval.hf_fast import _count, _truthy

    assert [_truthy(v) for v in (True, False, 1, 0, "true", "False", " ON ", "no", "1", "0")] == [
        True, False, True, False, True, False, True, False, True, False
    ]  # fmt: skip
    assert _count("64", "x", 0) == 64 and _count(0, "x", 0) == 0


def _tokenized_requests(lm, requests) -> list:
    """What ``loglikelihood`` hands to ``_loglikelihood_tokens``: ((context, continuation), context ids, ids)."""
    seen: list = []

    def record(reqs, *a, **k):
        seen.extend(reqs)
        return [(0.0, False)] * len(reqs)

    lm._loglikelihood_tokens = record
    lm.loglikelihood(requests, disable_tqdm=True)
    return seen


def _ll_requests(pairs):
    from lm_eval.api.instance import Instance

    return [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]


@pytest.mark.parametrize("add_bos_token", [None, True])
def test_requests_are_tokenized_as_lm_eval_does_from_one_batched_call_a_distinct_string(
    tiny_model_dir, monkeypatch, add_bos_token
):
    """Log-likelihood requests (contexts shared by several options, trailing spaces moved into the continuation, an
    empty context, a context that starts with the BOS text, non-ASCII; with and without a BOS added) get exactly the
    token ids lm-eval's hf gives them; the tokenizer's one-string ``encode`` runs only for the spot check, not twice
    a request."""
    hf, fast = _pair(tiny_model_dir, add_bos_token=add_bos_token)
    bos = hf.tokenizer.decode(hf.prefix_token_id)
    pairs = [(f"Question {q}: which one? Answer:", f" {o}") for q in range(6) for o in "ABCD"]
    pairs += [("Trailing spaces   ", "B"), ("", "Only a continuation"), (bos + "Starts with BOS:", " yes")]
    pairs += [("Größe 42, Schuhe – welche Farbe?", " braun"), ("Question 0: which one? Answer:", " A")]
    reqs = _ll_requests(pairs)
    want = _tokenized_requests(hf, reqs)
    calls = []
    original = type(fast.tokenizer).encode
    monkeypatch.setattr(
        type(fast.tokenizer), "encode", lambda self, *a, **k: calls.append(a) or original(self, *a, **k)
    )
    got = _tokenized_requests(fast, reqs)
    assert got == want
    assert len(calls) <= 16 + 3 < 2 * len(reqs)  # the spot check: a spread of 16 and the first of each group


@pytest.mark.parametrize("fault", ["every_batch", "only_the_small_group", "no_batches"])
def test_a_batched_tokenization_that_differs_or_fails_falls_back_to_lm_evals_own(
    tiny_model_dir, monkeypatch, caplog, fault
):
    """The batched ids are wrong for every batch, or only for a group far smaller than a sixteenth of the strings
    (the two empty contexts: ``add_special_tokens=False``), or the tokenizer cannot batch at all: the requests still
    get lm-eval's ids, one warning says so, and later calls do not batch again."""
    hf, fast = _pair(tiny_model_dir)
    pairs = [(f"Question {q}: which one? Answer:", f" {o}") for q in range(40) for o in "ABCD"]
    pairs += [("", " Only a continuation"), ("", " Another one")]
    reqs = _ll_requests(pairs)
    want = _tokenized_requests(hf, reqs)
    real_call = type(fast.tokenizer).__call__
    batches = []

    def faulty(self, text, *a, **k):
        if isinstance(text, list):
            batches.append(len(text))
            if fault == "no_batches":
                raise TypeError("batch input not supported")
        out = real_call(self, text, *a, **k)
        if isinstance(text, list) and (fault == "every_batch" or k.get("add_special_tokens") is False):
            out["input_ids"] = [ids + [1] for ids in out["input_ids"]]
        return out

    monkeypatch.setattr(type(fast.tokenizer), "__call__", faulty)
    with caplog.at_level("WARNING", logger="shop_eval.hf_fast"):
        assert _tokenized_requests(fast, reqs) == want
        n = len(batches)
        assert _tokenized_requests(fast, reqs) == want
    assert n >= 1 and len(batches) == n  # the second call went straight to lm-eval's path
    assert sum("tokenizing one at a time" in r.getMessage() for r in caplog.records) == 1
