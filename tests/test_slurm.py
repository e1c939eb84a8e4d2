"""The SLURM scripts (recipes/slurm/) render the chain's commands: each one is run by bash with ``DRY_RUN=1``
under a fake SLURM environment (``scontrol`` and ``sbatch`` stubs on PATH), and the commands it prints are
parsed with accelerate's own ``accelerate launch`` parser and checked against the recipes and configs they
name.  No GPU, no SLURM."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "recipes" / "slurm"


@pytest.fixture
def fake_slurm(tmp_path) -> dict:
    """PATH with `scontrol` (host names of the job) and `sbatch` (logs its arguments, prints a job id)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "gpu17\\ngpu18\\n"\n')
    log = tmp_path / "sbatch.log"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {log}\necho $((4100 + $(wc -l < {log})))\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update({"PATH": f"{bin_dir}:{env['PATH']}", "DRY_RUN": "1", "SLURM_SUBMIT_DIR": str(REPO)})
    return {"env": env, "sbatch_log": log}


def render(script: str, env: dict, **extra) -> list[list[str]]:
    proc = subprocess.run(
        ["bash", str(SLURM / script)], env={**env, **extra}, capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line[2:]) for line in proc.stdout.splitlines() if line.startswith("+ ")]


def sbatch_header(script: str) -> dict:
    out = {}
    for line in (SLURM / script).read_text().splitlines():
        if line.startswith("#SBATCH --"):
            key, _, value = line[len("#SBATCH --") :].partition("=")
            out[key] = value
    return out


def parse_launch(argv: list[str]):
    """accelerate's own parser on `accelerate launch ...` (argv from the word after `launch`)."""
    from accelerate.commands.launch import launch_command_parser

    i = argv.index("launch")
    return launch_command_parser().parse_args(argv[i + 1 :])


def test_one_node_renders_the_chain(fake_slurm):
    cmds = render("train-1node.sbatch", fake_slurm["env"], SLURM_GPUS_ON_NODE="6")
    assert cmds[0] == ["export", "PYTORCH_ALLOC_CONF=expandable_segments:True"]
    cpt, merge_cpt, sft, merge_sft = cmds[1:]
    for cmd, recipe in ((cpt, "recipes/cpt.yml"), (sft, "recipes/sft.yml")):
        args = parse_launch(cmd)
        assert args.config_file == "recipes/accelerate/6gpu.yaml" and (REPO / args.config_file).exists()
        assert args.num_processes == 6 and args.module and args.training_script == "axolotl.cli.train"
        assert args.training_script_args == [recipe]
    assert merge_cpt == [".venv/bin/axolotl", "merge-lora", "recipes/cpt.yml", "--lora-model-dir", "outputs/cpt"]
    assert merge_sft == [".venv/bin/axolotl", "merge-lora", "recipes/sft.yml", "--lora-model-dir", "outputs/sft"]
    head = sbatch_header("train-1node.sbatch")
    assert head["nodes"] == "1" and head["gpus-per-node"] == "6" and head["ntasks-per-node"] == "1"


def test_one_node_variants_and_overrides(fake_slurm):
    cmds = render(
        "train-1node.sbatch",
        fake_slurm["env"],
        STAGES="sft merge-sft",
        SFT_RECIPE="recipes/sft-80gb.yml",
        SFT_BASE="01-ai/Yi-9B",
        GPUS="2",
        TRAIN_ARGS="--gradient_accumulation_steps 6",
    )
    args = parse_launch(cmds[1])
    assert args.num_processes == 2
    assert args.training_script_args == [
        "recipes/sft-80gb.yml", "--base_model", "01-ai/Yi-9B", "--gradient_accumulation_steps", "6"
    ]  # fmt: skip
    assert cmds[2][-2:] == ["--base-model", "01-ai/Yi-9B"] and cmds[2][2] == "recipes/sft-80gb.yml"
    assert (REPO / "recipes" / "sft-80gb.yml").exists()


def test_unknown_stage_is_one_clear_error(fake_slurm):
    proc = subprocess.run(
        ["bash", str(SLURM / "train-1node.sbatch")],
        env={**fake_slurm["env"], "STAGES": "cpt train-it"}, capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: unknown stage 'train-it' in STAGES (cpt, merge-cpt, sft, merge-sft)"
    ]


def test_multinode_renders_one_launch_per_node(fake_slurm):
    env = {**fake_slurm["env"], "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu[17-18]", "SLURM_GPUS_ON_NODE": "6"}
    cmds = render("train-multinode.sbatch", env, TRAIN_ARGS="--gradient_accumulation_steps 1")
    assert cmds[0] == ["export", "PYTORCH_ALLOC_CONF=expandable_segments:True"]
    prep, launch, merge = cmds[1:4]
    assert prep[:3] == ["srun", "--nodes=1", "--ntasks=1"] and prep[3:] == [
        ".venv/bin/axolotl",
        "preprocess",
        "recipes/cpt.yml",
    ]
    assert launch[:3] == ["srun", "--nodes=2", "--ntasks-per-node=1"] and launch[3:5] == ["bash", "-c"]
    inner = shlex.split(launch[5])
    assert inner[0] == "exec" and "$SLURM_NODEID" in inner  # expanded by each node's own shell
    node1 = [("1" if w == "$SLURM_NODEID" else w) for w in inner[1:]]
    args = parse_launch(node1)
    assert (args.num_machines, args.num_processes, args.machine_rank) == (2, 12, 1)
    assert args.main_process_ip == "gpu17" and args.main_process_port == 29500  # the first host of the job
    assert args.training_script == "axolotl.cli.train" and args.module
    assert args.training_script_args == ["recipes/cpt.yml", "--gradient_accumulation_steps", "1"]
    assert merge[:3] == ["srun", "--nodes=1", "--ntasks=1"] and merge[4:6] == ["merge-lora", "recipes/cpt.yml"]
    assert [c[4] if c[0] == "srun" and c[3].endswith("axolotl") else "launch" for c in cmds[1:]] == [
        "preprocess", "launch", "merge-lora", "preprocess", "launch", "merge-lora"
    ]  # fmt: skip
    head = sbatch_header("train-multinode.sbatch")
    assert int(head["nodes"]) >= 2 and head["ntasks-per-node"] == "1" and head["gpus-per-node"] == "6"


def test_multinode_outside_sbatch_says_so(fake_slurm):
    proc = subprocess.run(
        ["bash", str(SLURM / "train-multinode.sbatch")], env=fake_slurm["env"], capture_output=True, text=True,
        cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and "SLURM_NNODES is not set" in proc.stderr


def test_eval_renders_the_two_gpu_evaluation(fake_slurm):
    (cmd,) = render("eval-2gpu.sbatch", fake_slurm["env"])
    assert cmd == [".venv/bin/shop-eval", "eval", "--model", "outputs/sft/merged", "--num-gpus", "2",
                   "--backend", "hf", "--tasks", "shop_*"]  # fmt: skip
    (cmd,) = render("eval-2gpu.sbatch", fake_slurm["env"], MODEL="outputs/qlora/merged", EVAL_BACKEND="vllm")
    assert cmd[3] == "outputs/qlora/merged" and cmd[cmd.index("--backend") + 1] == "vllm"
    assert sbatch_header("eval-2gpu.sbatch")["gpus"] == "2"
    # the same command as the Makefile's eval target
    assert "--num-gpus $(NUM_GPUS)" in (REPO / "Makefile").read_text()


@pytest.mark.parametrize("nodes,script", [("1", "train-1node.sbatch"), ("2", "train-multinode.sbatch")])
def test_chain_submission_waits_for_training(fake_slurm, nodes, script):
    proc = subprocess.run(
        ["bash", str(SLURM / "submit-chain.sh")], env={**fake_slurm["env"], "NODES": nodes},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    train, evaluation = fake_slurm["sbatch_log"].read_text().splitlines()
    assert train.endswith(f"recipes/slurm/{script}") and ("--nodes=2" in train) == (nodes == "2")
    assert evaluation == "--parsable --dependency=afterok:4101 recipes/slurm/eval-2gpu.sbatch"
    assert proc.stdout.strip() == "training job 4101, evaluation job 4102 (runs after 4101 succeeds)"
