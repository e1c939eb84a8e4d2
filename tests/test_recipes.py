"""Every recipe in recipes/ passes axolotl's own config validation (on CPU, offline).

Each recipe is loaded as written, with only what cannot exist here replaced: ``base_model`` points at the
tiny model, dataset paths at small local files, output paths at a temp dir.  Validation runs with the
capabilities of the GPU the recipes are written for (bf16, sm_90, 6 processes), so ``bf16: true``, flash
attention and DeepSpeed are validated as they are, not switched off.  Then axolotl's ``normalize_config``
(which reads the model config and the DeepSpeed JSON) runs, and for the SFT recipes axolotl's own
chat-template strategy tokenizes a row to show the loss falls on the answer (and EOS) only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
RECIPE_FILES = sorted(p.name for p in RECIPES.glob("*.yml"))
GPU_CAPABILITIES = {"bf16": True, "fp8": False, "tf32": True, "n_gpu": 6, "compute_capability": "sm_90"}

CHAT_ROW = {
    "messages": [
        {"role": "system", "content": "You are a helpful online shopping assistant."},
        {"role": "user", "content": "Which is a fruit?\n0. chair\n1. apple\nAnswer: "},
        {"role": "assistant", "content": "1"},
    ]
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("recipe-data")
    (d / "chat.jsonl").write_text(json.dumps(CHAT_ROW) + "\n")
    (d / "text.jsonl").write_text(json.dumps({"text": "A stainless steel kettle boils water fast."}) + "\n")
    return d


def load_recipe(name: str) -> dict:
    return yaml.safe_load((RECIPES / name).read_text())


def localise(raw: dict, model_dir: Path, data_dir: Path, out_dir: Path) -> dict:
    """Replace only what cannot exist on this machine: the model, the data files, the output paths."""
    raw = dict(raw)
    raw["base_model"] = str(model_dir)
    for key in ("datasets", "test_datasets"):
        for ds in raw.get(key) or []:
            ds["path"] = str(data_dir / ("text.jsonl" if ds.get("type") == "completion" else "chat.jsonl"))
    raw["output_dir"] = str(out_dir / "out")
    raw["dataset_prepared_path"] = str(out_dir / "prepared")
    raw["dataset_num_proc"] = 1
    if raw.get("deepspeed"):
        raw["deepspeed"] = str(REPO / raw["deepspeed"])
    return raw


def axolotl_validate(raw: dict):
    """axolotl 0.19's own path (as in ``axolotl.cli.config.load_cfg``): plugins, validation, normalisation."""
    from axolotl.cli.config import prepare_plugins
    from axolotl.utils.config import normalize_cfg_datasets, normalize_config, validate_config
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault(raw)
    prepare_plugins(cfg)
    cfg = validate_config(cfg, capabilities=GPU_CAPABILITIES, env_capabilities={"torch_version": "2.13.0"})
    normalize_config(cfg)
    normalize_cfg_datasets(cfg)
    return cfg


def test_recipes_present():
    assert {"cpt.yml", "sft.yml", "qlora.yml", "cpt-80gb.yml", "sft-80gb.yml"} <= set(RECIPE_FILES)


@pytest.mark.parametrize("name", RECIPE_FILES)
def test_recipe_passes_axolotl_validation(name, tiny_model_dir, data_dir, tmp_path, clean_env):
    raw = load_recipe(name)
    cfg = axolotl_validate(localise(raw, tiny_model_dir, data_dir, tmp_path))
    assert cfg.model_config_type == "llama"
    assert cfg.adapter in ("lora", "qlora")
    assert cfg.lora_target_linear is True  # all linear layers (the seed adapted q,v only)
    assert cfg.sequence_len == 4096 and cfg.sample_packing is True
    # cpt.yml evaluates one unpacked row at a time: two packed rows' logits overflow a 24 GB card (rank 64)
    assert cfg.eval_sample_packing is (name != "cpt.yml")
    if not cfg.eval_sample_packing:
        assert cfg.eval_batch_size == 1
    assert cfg.attn_implementation == "sdpa" and cfg.sdpa_varlen is True  # no flash-attn build needed
    # 80 GB variants spend memory on speed (no recomputation); the 24 GB recipes checkpoint
    assert cfg.bf16 is True and cfg.gradient_checkpointing is ("80gb" not in name)
    assert "axolotl.integrations.liger.LigerPlugin" in cfg.plugins
    assert cfg.liger_fused_linear_cross_entropy and cfg.liger_rms_norm and cfg.liger_glu_activation
    if raw.get("deepspeed"):  # normalize_config read the JSON
        assert cfg.deepspeed["zero_optimization"]["stage"] == 2


def test_recipe_header_gives_launch_command():
    for name in RECIPE_FILES:
        head = (RECIPES / name).read_text().split("\nbase_model:")[0]
        assert f"-m axolotl.cli.train recipes/{name}" in head, name
        assert "accelerate launch --config_file recipes/accelerate/" in head, name


@pytest.mark.parametrize("name", ["cpt.yml", "cpt-80gb.yml"])
def test_cpt_recipe_is_completion_lora(name):
    raw = load_recipe(name)
    assert raw["base_model"] == "01-ai/Yi-9B"
    assert [d["type"] for d in raw["datasets"]] == ["completion"]
    assert raw["lora_r"] >= 32 and raw["num_epochs"] == 1
    assert raw["output_dir"] == "outputs/cpt"  # either variant feeds stage 2 (outputs/cpt/merged)


def test_sft_recipes_chain_from_merged_cpt_and_do_not_overfit():
    for name in ("sft.yml", "sft-80gb.yml", "qlora.yml"):
        raw = load_recipe(name)
        assert raw["base_model"] == "outputs/cpt/merged"  # the merged stage-1 model
        assert 3 <= raw["num_epochs"] <= 5  # the seed's eval loss was lowest near epoch 5 of 25
        assert raw["test_datasets"] and raw["evals_per_epoch"] >= 1
        for ds in raw["datasets"] + raw["test_datasets"]:
            assert ds["type"] == "chat_template" and ds["roles_to_train"] == ["assistant"]
    assert load_recipe("qlora.yml")["load_in_4bit"] is True and "deepspeed" not in load_recipe("qlora.yml")


@pytest.mark.parametrize("name", ["sft.yml", "sft-80gb.yml", "qlora.yml"])
def test_sft_loss_on_answer_only(name, tiny_model_dir, data_dir, tmp_path, clean_env):
    """axolotl's chat-template strategy on the recipe's template: the prompt renders as the official
    prompt (system, blank line, input_field), and only the answer and EOS carry labels."""
    from axolotl.loaders.tokenizer import load_tokenizer
    from axolotl.prompt_strategies.chat_template import StrategyLoader

    raw = load_recipe(name)
    cfg = axolotl_validate(localise(raw, tiny_model_dir, data_dir, tmp_path))
    tokenizer = load_tokenizer(cfg)
    strategy = StrategyLoader()(tokenizer, cfg, cfg.datasets[0])
    out = strategy.tokenize_prompt(CHAT_ROW)
    ids, labels = out["input_ids"], out["labels"]
    system, user, answer = (m["content"] for m in CHAT_ROW["messages"])
    assert tokenizer.decode(ids, skip_special_tokens=True) == f"{system}\n\n{user}{answer}"
    trained = [i for i, lab in zip(ids, labels, strict=True) if lab != -100]
    assert tokenizer.decode(trained) == answer + tokenizer.eos_token


#: what an 80 GB variant may change against its 24 GB recipe: how memory is spent, never what is trained
SPEED_KEYS = {"gradient_checkpointing", "gradient_checkpointing_kwargs", "activation_offloading", "lora_dropout",
              "micro_batch_size", "gradient_accumulation_steps", "eval_batch_size", "eval_sample_packing"}  # fmt: skip


@pytest.mark.parametrize("stage", ["cpt", "sft"])
def test_80gb_variants_train_the_same_thing(stage):
    small, big = load_recipe(f"{stage}.yml"), load_recipe(f"{stage}-80gb.yml")
    differ = {k for k in set(small) | set(big) if small.get(k) != big.get(k)}
    assert differ <= SPEED_KEYS, differ - SPEED_KEYS
    # the same packed sequences per optimizer step on the same GPUs: the same schedule
    per_step = [r["micro_batch_size"] * r["gradient_accumulation_steps"] for r in (small, big)]
    assert per_step[0] == per_step[1] == {"cpt": 8, "sft": 4}[stage]  # x 6 GPUs = 48 / 24 sequences
    assert big["gradient_checkpointing"] is False and small["gradient_checkpointing"] is True


def test_axolotl_rejects_a_bad_recipe(tiny_model_dir, data_dir, tmp_path, clean_env):
    """The check can fail: recipes axolotl would reject raise here."""
    raw = localise(load_recipe("sft.yml"), tiny_model_dir, data_dir, tmp_path)
    bad = json.loads(json.dumps(raw))
    bad["datasets"][0]["train_on_eos"] = "sometimes"  # not one of all/turn/last/none
    with pytest.raises(Exception, match="train_on_eos"):
        axolotl_validate(bad)
    bad = json.loads(json.dumps(raw))
    bad["chat_template_jinja"] = None  # chat_template: jinja needs the template text
    for ds in bad["datasets"] + bad["test_datasets"]:
        ds["chat_template"] = "jinja"
    with pytest.raises(Exception, match="chat_template_jinja"):
        axolotl_validate(bad)
    bad = json.loads(json.dumps(raw))
    bad["liger_swiglu"] = True  # conflicts with liger_glu_activation
    with pytest.raises(Exception, match="liger_swiglu"):
        axolotl_validate(bad)


def test_deepspeed_configs():
    z2 = json.loads((RECIPES / "deepspeed" / "zero2.json").read_text())
    z3 = json.loads((RECIPES / "deepspeed" / "zero3.json").read_text())
    assert z2["zero_optimization"]["stage"] == 2
    assert z2["zero_optimization"]["offload_optimizer"]["device"] == "none"  # no CPU offload
    assert z3["zero_optimization"]["stage"] == 3
    assert z3["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    for cfg in (z2, z3):
        assert cfg["train_micro_batch_size_per_gpu"] == "auto"  # taken from the recipe by the HF Trainer


def test_deepspeed_configs_accepted_by_deepspeed():
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    for name in ("zero2.json", "zero3.json"):
        zero = json.loads((RECIPES / "deepspeed" / name).read_text())["zero_optimization"]
        zero = {k: v for k, v in zero.items() if v != "auto"}  # "auto" is filled in by the HF Trainer
        DeepSpeedZeroConfig(**zero)


@pytest.mark.parametrize("n", [1, 2, 6])
def test_accelerate_configs(n):
    cfg = yaml.safe_load((RECIPES / "accelerate" / f"{n}gpu.yaml").read_text())
    assert cfg["num_processes"] == n and cfg["num_machines"] == 1
    assert cfg["distributed_type"] == ("NO" if n == 1 else "MULTI_GPU")
    assert cfg["mixed_precision"] == "bf16"
    from accelerate.commands.config.config_args import ClusterConfig

    parsed = ClusterConfig.from_yaml_file(RECIPES / "accelerate" / f"{n}gpu.yaml")  # accelerate's own loader
    assert parsed.num_processes == n


@pytest.mark.parametrize("name", ["cpt.yml", "sft.yml"])
def test_tiny_recipes_mirror_the_gpu_ones(name):
    """recipes/tiny/* (the CPU variants CI trains) keep the data format and the loss masking of these."""
    tiny_path = RECIPES / "tiny" / name
    if not tiny_path.exists():
        pytest.skip(f"recipes/tiny/{name} not present")
    big, tiny = load_recipe(name), yaml.safe_load(tiny_path.read_text())
    for key in ("chat_template", "chat_template_jinja", "adapter", "lora_target_linear", "sample_packing"):
        assert tiny.get(key) == big.get(key), key
    keep = ("ds_type", "type", "field", "field_messages", "roles_to_train", "train_on_eos")
    assert [{k: d.get(k) for k in keep} for d in tiny["datasets"]] == [
        {k: d.get(k) for k in keep} for d in big["datasets"]
    ]


def _bench_runs():
    import sys

    sys.path.insert(0, str(REPO))
    from bench.train_throughput import RUNS

    return RUNS


@pytest.mark.parametrize("run_name", sorted(set(_bench_runs()) - {"ours"}))
def test_benchmark_levers_pass_axolotl_validation(run_name, tiny_model_dir, data_dir, tmp_path, clean_env):
    """Each benchmark run (a recipe + its one change) is a config axolotl accepts, as the GPU run will load it."""
    from bench.train_throughput import axolotl_config

    run = _bench_runs()[run_name]
    raw = axolotl_config(load_recipe(Path(run.recipe).name), run.overrides)
    cfg = axolotl_validate(localise(raw, tiny_model_dir, data_dir, tmp_path))
    for key, value in run.overrides.items():
        if value is not None and key not in ("activation_offloading", "selective_checkpointing"):  # normalised
            assert cfg[key] == value, key
