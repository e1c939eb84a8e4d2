"""The tiny model: builds deterministically, loads with transformers, has a working chat template, generates."""

from __future__ import annotations

import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from shop_eval.tiny import build_tiny_model


def test_tiny_model_loads_and_generates(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert tok.bos_token == "<s>" and tok.eos_token == "</s>" and tok.pad_token == "<pad>"
    assert model.config.model_type == "llama"
    assert model.config.eos_token_id == tok.eos_token_id
    prompt = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Which color is it?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert prompt.startswith("<s><|system|>\nBe brief.") and prompt.endswith("<|assistant|>\n")
    enc = tok(prompt, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > enc.input_ids.shape[1]
    # the byte-level tokenizer round-trips arbitrary text, digits are single tokens
    text = "Norvik wireless headphones, 12 €, ünïcode"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    assert len(tok("2", add_special_tokens=False).input_ids) == 1


def test_pretraining_lowers_loss(tiny_model_dir):
    info = json.loads((tiny_model_dir / "tiny_build.json").read_text())
    assert info["quick"] is True
    assert info["loss_last"] < info["loss_first"] - 0.5


def test_build_is_deterministic(tmp_path, tiny_model_dir):
    out = build_tiny_model(tmp_path / "again", seed=0, quick=True)
    a = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    b = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
