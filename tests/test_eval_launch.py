"""Command construction for `shop-eval eval` / `make eval` (CI has no GPU: the commands are checked, not run)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from shop_eval.cli import main
from shop_eval.eval_launch import EvalSpec, build_command
from shop_eval.resources import tasks_dir

TASKS_DIR = tasks_dir()

REPO = Path(__file__).resolve().parents[1]


def _model_args(cmd: list[str]) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in cmd[cmd.index("--model_args") + 1].split(","))


def _opt(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_cpu_single_process():
    cmd, env = build_command(EvalSpec(model="runs/tiny"))
    assert cmd[:3] == ["lm_eval", "--model", "hf"]
    assert _model_args(cmd) == {"pretrained": "runs/tiny", "dtype": "float32"}
    assert _opt(cmd, "--device") == "cpu"
    assert _opt(cmd, "--tasks") == "shop_*"
    assert _opt(cmd, "--include_path") == str(TASKS_DIR) and Path(_opt(cmd, "--include_path")).is_absolute()
    assert "--log_samples" in cmd and _opt(cmd, "--output_path") == "runs/eval/tiny"
    assert "--apply_chat_template" not in cmd and "SHOP_EVAL_DATA" not in env


def test_two_gpus_data_parallel_with_adapter():
    cmd, _ = build_command(EvalSpec(model="/m/Yi-9B", adapter="runs/sft/lora", num_gpus=2, chat_template=True))
    launcher = cmd[: cmd.index("lm_eval") + 1]
    assert launcher == ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "-m", "lm_eval"]
    assert _model_args(cmd) == {"pretrained": "/m/Yi-9B", "peft": "runs/sft/lora", "dtype": "bfloat16"}
    assert "--device" not in cmd  # accelerate places one copy per process
    assert _opt(cmd, "--batch_size") == "auto"
    assert "--apply_chat_template" in cmd
    assert _opt(cmd, "--output_path") == "runs/eval/Yi-9B+lora+chat"


def test_one_gpu():
    cmd, _ = build_command(EvalSpec(model="m", num_gpus=1))
    assert cmd[0] == "lm_eval" and _opt(cmd, "--device") == "cuda:0"


@pytest.mark.parametrize(("gpus", "tp", "dp"), [(2, None, 2), (2, 2, 1), (4, 2, 2), (1, None, 1)])
def test_vllm_tensor_and_data_parallel(gpus, tp, dp):
    cmd, _ = build_command(
        EvalSpec(model="m", adapter="a", backend="vllm", num_gpus=gpus, tensor_parallel_size=tp, max_lora_rank=32)
    )
    assert cmd[:3] == ["lm_eval", "--model", "vllm"]
    args = _model_args(cmd)
    assert int(args["tensor_parallel_size"]) * int(args["data_parallel_size"]) == gpus
    assert int(args["tensor_parallel_size"]) == (tp or 1) and int(args["data_parallel_size"]) == dp
    assert args["lora_local_path"] == "a" and args["max_lora_rank"] == "32"
    assert "peft" not in args and "--device" not in cmd


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        (EvalSpec(model=""), "MODEL is required"),
        (EvalSpec(model="m", backend="vllm", num_gpus=0), "at least one GPU"),
        (EvalSpec(model="m", backend="vllm", num_gpus=3, tensor_parallel_size=2), "must divide"),
        (EvalSpec(model="m", tensor_parallel_size=2, num_gpus=2), "vllm option"),
        (EvalSpec(model="m,x"), "comma"),
        (EvalSpec(model="m", backend="tgi"), "unknown backend"),
    ],
)
def test_bad_specs_are_refused(spec, msg):
    with pytest.raises(ValueError, match=msg):
        build_command(spec)


def test_data_option_sets_the_environment(tmp_path):
    (tmp_path / "dev.jsonl").write_text("")
    _, env = build_command(EvalSpec(model="m", data=str(tmp_path / "dev.jsonl")))
    assert env["SHOP_EVAL_DATA"] == str((tmp_path / "dev.jsonl").resolve())


def test_cli_dry_run_prints_the_command(capsys):
    rc = main(["eval", "--model", "m", "--adapter", "lo", "--num-gpus", "2", "--dry-run", "--", "--gen_kwargs", "x=1"])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    words = shlex.split(line)
    assert words[words.index("accelerate") : words.index("accelerate") + 6] == [
        "accelerate", "launch", "--multi_gpu", "--num_processes", "2", "-m",
    ]  # fmt: skip
    assert words[-2:] == ["--gen_kwargs", "x=1"]
    assert main(["eval", "--model", "m", "--backend", "vllm", "--dry-run"]) == 2


def _make_eval(*variables: str) -> subprocess.CompletedProcess:
    """``make -s eval VAR=... DRY_RUN=1``: the command it would run, printed, not run."""
    return subprocess.run(
        ["make", "-s", "eval", *variables, "DRY_RUN=1"], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_make_eval_builds_the_two_gpu_command():
    out = _make_eval("NUM_GPUS=2", "MODEL=/m/Yi-9B", "ADAPTER=runs/sft/lora")
    assert out.returncode == 0, out.stderr
    words = shlex.split(out.stdout.strip().splitlines()[-1])
    assert "accelerate" in words and words[words.index("--num_processes") + 1] == "2"
    assert "peft=runs/sft/lora" in words[words.index("--model_args") + 1]
    out = _make_eval("NUM_GPUS=2", "MODEL=m", "EVAL_BACKEND=vllm")
    assert out.returncode == 0, out.stderr
    assert "data_parallel_size=2" in out.stdout and "--model vllm" in out.stdout
    out = _make_eval()
    assert out.returncode != 0 and "MODEL" in out.stdout + out.stderr


@pytest.mark.parametrize(("gpus", "launcher"), [(1, ["python", "-m", "shop_eval.hf_fast"]),
                                                (2, ["accelerate", "launch", "--multi_gpu", "--num_processes", "2",
                                                     "-m", "shop_eval.hf_fast"])])  # fmt: skip
def test_hf_fast_runs_lm_eval_through_its_module(gpus, launcher):
    cmd, _ = build_command(EvalSpec(model="/m/Yi-9B", adapter="lo", backend="hf-fast", num_gpus=gpus))
    i = cmd.index("--model")
    assert cmd[:i] == launcher and cmd[i + 1] == "hf-fast"
    assert _model_args(cmd) == {"pretrained": "/m/Yi-9B", "peft": "lo", "dtype": "bfloat16"}
    assert _opt(cmd, "--batch_size") == "64"  # its static cache is sized by the batch: no "auto" probe
    assert ("--device" in cmd) == (gpus == 1)
