"""Packed rows are isolated: axolotl's packed batch, built from the recipes' own attention and packing settings
(``attn_implementation: sdpa``, ``sdpa_varlen: true``, ``sample_packing``, ``pad_to_sequence_len``), gives each
token the same loss as its example run alone — on the CPU path (stock SDPA with the block-diagonal mask
axolotl derives from ``position_ids``).  The GPU varlen path is checked by the same code on a GPU
(``bench/packing_check.py``, docs/performance.md).  The reference is independent of packing: each document
is run on its own, with nothing before it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import packing_check as pc  # noqa: E402


def test_segments_split_at_position_resets():
    pos = torch.tensor([0, 1, 2, 0, 1, 0, 1, 2, 3])
    assert pc.segments(pos) == [(0, 3), (3, 5), (5, 9)]
    assert pc.segments(torch.tensor([0, 1])) == [(0, 2)]


def test_per_token_loss_by_hand():
    # two positions predict tokens 1 and 2 of a 3-token sequence; the second label is masked
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    ids = torch.tensor([0, 1, 2])
    labels = torch.tensor([-100, 1, -100])
    got = pc._per_token(logits, ids, labels)
    assert got[0].item() == pytest.approx(-torch.log(torch.tensor(0.25)).item(), abs=1e-6)
    assert torch.isnan(got[1])


def test_alone_same_path_is_the_document_alone():
    # the trailing token that routes a lone document through the packed-row path changes none of its logits
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, attn_implementation="sdpa",
    )  # fmt: skip
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (9,))
    with torch.no_grad():
        want = model(input_ids=ids[None]).logits[0]
        got = pc.alone_same_path(model, ids)
        assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["sft.yml", "cpt.yml"])
def test_packed_losses_equal_one_example_at_a_time(recipe, tiny_model_dir, tmp_path, clean_env):
    res = pc.packed_vs_single(REPO / "recipes" / recipe, tiny_model_dir, tmp_path)
    assert res["attn_implementation"] == "sdpa" and res["sdpa_varlen"] is True  # the recipe's settings
    assert res["rows"] == 2 and res["documents"] >= 4  # several documents share each row
    assert res["documents_after_the_first"] >= 2
    assert res["max_abs_diff"] <= 1e-4, res  # fp32 on CPU
    assert res["stock_alone_max_abs_diff"] <= 1e-4, res  # the lone document through stock SDPA agrees too
    # the same rows as plain causal rows (documents see the ones before them) differ far more
    assert res["leak_max_abs_diff"] > 1e-2, res
    assert res["isolated"] and res["leak_detectable"]
