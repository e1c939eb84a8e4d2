"""The lm-eval tasks in lm_eval_tasks/: they load and validate from any working directory, read any data
the loaders accept, and every per-task number lm-eval reports equals what `shop-eval score` computes from
the same run's --log_samples files (on a canned model whose answers exercise both extractors, and on the
tiny model through the real `lm_eval` command line)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shop_eval import lm_eval_bridge as bridge
from shop_eval.loaders import load
from shop_eval.prompts import SYSTEM_PROMPT, format_answer
from shop_eval.records import SHORT_NAMES

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "lm_eval_tasks"
SAMPLE = TASKS_DIR / "data" / "sample.jsonl"
BIN = Path(sys.executable).parent
GENERATIVE = [
    "shop_multiple_choice",
    "shop_retrieval",
    "shop_ranking",
    "shop_ner",
    "shop_generation",
    "shop_classification",
]
ALL_SHOP = sorted([*GENERATIVE, "shop_multiple_choice_ll"])
TYPE_OF = {f"shop_{s}": t for t, s in SHORT_NAMES.items()} | {"shop_multiple_choice_ll": "multiple-choice"}
SHOPMMLU = REPO / "tests" / "fixtures" / "shoppingmmlu" / "data"


def _type_of(task: str) -> str:
    """The task type of any shop_* / shopchat_* / shopmmlu_* task name."""
    from shop_eval.leaderboard import family_of

    return family_of(task)[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (bridge.DATA_ENV, bridge.FORMAT_ENV, bridge.SKIP_ENV)}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env


@pytest.fixture
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR))


# --------------------------------------------------------------------------- task definitions


def test_glob_selects_the_tasks_once_not_the_group_or_tags(task_manager):
    assert task_manager.match_tasks(["shop_*"]) == ALL_SHOP
    # Shopping MMLU: 4 skills x (5 types + log-likelihood MC); the groups are named shoppingmmlu*, not shopmmlu_*
    mmlu = task_manager.match_tasks(["shopmmlu_*"])
    assert len(mmlu) == 24 and not any(t.startswith("shoppingmmlu") for t in mmlu)
    assert task_manager.task_index["shoppingmmlu"]["type"] == "group"
    assert sorted(task_manager._get_config("shoppingmmlu")["task"]) == sorted(
        f"shoppingmmlu_{s}" for s in ("concept", "reasoning", "behavior", "multilingual")
    )
    index = task_manager.task_index
    assert index["shopbench"]["type"] == "group"
    assert index["shopbench_tasks"]["type"] == "tag" and index["shopchat"]["type"] == "tag"
    assert sorted(task_manager._get_config("shopbench")["task"]) == sorted(GENERATIVE)
    assert sorted(index["shopbench_tasks"]["task"]) == sorted(GENERATIVE)
    assert sorted(t for t in task_manager.all_tasks if t.startswith("shopchat_")) == sorted(
        t.replace("shop_", "shopchat_") for t in GENERATIVE
    )


def test_lm_eval_validate_passes_from_another_directory(tmp_path):
    names = ",".join([*ALL_SHOP, "shopbench", "shopbench_budget", "shopbench_tasks", "shopchat"])
    out = subprocess.run(
        [str(BIN / "lm-eval"), "validate", "--tasks", names, "--include_path", str(TASKS_DIR)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All tasks found and valid" in out.stdout


def test_every_task_builds_with_the_kits_prompt_and_decoding(task_manager, tmp_path, monkeypatch):
    """`lm-eval validate` only checks names: build every task and group (datasets, filters, metrics,
    prompts) the way `lm_eval` does, from another working directory."""
    from lm_eval.tasks import get_task_dict

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(bridge.DATA_ENV, raising=False)
    names = [*ALL_SHOP, "shopchat", "shopbench"]
    tasks = {}

    def walk(d):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v)
            else:
                tasks[k] = v

    walk(get_task_dict(names, task_manager))
    assert set(tasks) == set(ALL_SHOP) | {t.replace("shop_", "shopchat_") for t in GENERATIVE}
    records = load(SAMPLE)
    for name, task in tasks.items():
        ttype = TYPE_OF[name.replace("shopchat_", "shop_")]
        docs = list(task.eval_docs)
        assert len(docs) == sum(r.task_type == ttype for r in records), name
        doc = docs[0]
        rec = bridge.doc_to_record(doc)
        assert task.doc_to_text(doc) == f"{SYSTEM_PROMPT}\n\n{rec.input_field}"
        if name == "shop_multiple_choice_ll":
            assert task.OUTPUT_TYPE == "multiple_choice"
            for d in docs:
                choices = task.doc_to_choice(d)
                assert choices[task.doc_to_target(d)] == str(bridge.doc_to_record(d).output_field)
            continue
        assert task.doc_to_target(doc) == format_answer(rec)
        gen = task.config.generation_kwargs
        assert gen["do_sample"] is False and gen["until"] == []
        expected = 512 if name.startswith("shopchat_") else (1 if ttype == "multiple-choice" else 100)
        assert gen["max_gen_toks"] == expected, name
        assert [f.name for f in task._filters] == ["official", "flexible", "shoppingmmlu"]


def test_data_option_reads_any_loader_format(task_manager, tmp_path, monkeypatch):
    from lm_eval.tasks import get_task_dict

    rows = [json.loads(x) for x in SAMPLE.read_text().splitlines() if x.strip()]
    ner = [r for r in rows if r["task_type"] == "named_entity_recognition"][:2]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ner))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(bridge.DATA_ENV, "mine.jsonl")  # relative to the working directory
    task = get_task_dict(["shop_ner"], task_manager)["shop_ner"]
    assert [d["input_field"] for d in task.eval_docs] == [r["input_field"] for r in ner]
    # the same through lm-eval's --metadata (TaskManager metadata), which wins over the environment
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv(bridge.DATA_ENV, str(SAMPLE))
    tm = TaskManager(include_path=str(TASKS_DIR), metadata={"data": str(data)})
    task = get_task_dict(["shop_ner"], tm)["shop_ner"]
    assert [d["input_field"] for d in task.eval_docs] == [r["input_field"] for r in ner]
    monkeypatch.setenv(bridge.DATA_ENV, "mine.jsonl")
    # a data file without some task type: that task is absent (one placeholder doc, never scored)
    task = get_task_dict(["shop_ranking"], task_manager)["shop_ranking"]
    assert [d["origin"] for d in task.eval_docs] == [bridge.ABSENT]


def test_data_option_seed_testsets(seed_testsets_dir, task_manager, monkeypatch):
    """The seed project's alpaca test sets: a bad row stops loading with its place named, unless
    SHOP_EVAL_SKIP_INVALID=1, which skips (and logs) bad rows; then each task gets its type's rows."""
    from collections import Counter

    from lm_eval.tasks import get_task_dict

    from shop_eval.loaders import load_records

    monkeypatch.setenv(bridge.DATA_ENV, str(seed_testsets_dir))
    loaded = load_records(seed_testsets_dir, skip_invalid=True)
    if loaded.skipped:
        with pytest.raises(Exception, match=r"seed-testsets/.*row \d+"):
            get_task_dict(["shop_multiple_choice"], task_manager)
    monkeypatch.setenv(bridge.SKIP_ENV, "1")
    tasks = get_task_dict(GENERATIVE, task_manager)
    expected = Counter(r.task_type for r in loaded.records)
    assert {name: len(t.eval_docs) for name, t in tasks.items()} == {
        f"shop_{SHORT_NAMES[t]}": n for t, n in expected.items()
    }
    assert len(expected) == 6 and sum(expected.values()) > 1000


def test_skip_invalid_is_read_strictly_from_the_environment_and_metadata(tmp_path, monkeypatch):
    """``SHOP_EVAL_SKIP_INVALID`` / ``--metadata skip_invalid``: yes-words skip a bad row, no-words (or unset, or
    empty) stop at it with its place named, and anything else is a usage error naming where it came from — a
    typo is never a silent "don't skip"."""
    from shop_eval.errors import DataError, UsageError

    good = (Path(bridge.__file__).parents[1] / "lm_eval_tasks" / "data" / "sample.jsonl").read_text().splitlines()[0]
    data = tmp_path / "mixed.jsonl"
    data.write_text(good + "\n" + json.dumps({"input_field": 3, "task_type": "generation"}) + "\n")
    kw = {"task_type": json.loads(good)["task_type"], "data": str(data)}
    for value in ("1", " YES ", "on", "true"):
        monkeypatch.setenv(bridge.SKIP_ENV, value)
        assert len(bridge.load_docs(**kw)) == 1
    for value in ("0", "no", "off", ""):
        monkeypatch.setenv(bridge.SKIP_ENV, value)
        with pytest.raises(DataError, match=r"mixed\.jsonl.*line 2"):
            bridge.load_docs(**kw)
    monkeypatch.setenv(bridge.SKIP_ENV, "ture")
    with pytest.raises(UsageError, match=r"^SHOP_EVAL_SKIP_INVALID='ture': expected true or false"):
        bridge.load_docs(**kw)
    monkeypatch.delenv(bridge.SKIP_ENV)
    assert len(bridge.load_docs(**kw, skip_invalid=True)) == 1  # --metadata '{"skip_invalid": true}'
    with pytest.raises(UsageError, match=r"skip_invalid \(--metadata\)=2"):
        bridge.load_docs(**kw, skip_invalid=2)


def test_flags_take_the_yes_and_no_words_and_refuse_the_rest():
    from shop_eval.errors import UsageError
    from shop_eval.options import flag

    yes = [True, 1, "1", "true", "True", " yes ", "ON"]
    no = [False, 0, "0", "false", "FALSE", "no", " off"]
    assert [flag(v, "x") for v in yes + no] == [True] * len(yes) + [False] * len(no)
    for bad in ("ture", "2", 2, -1, "", "y", 1.0, None, ["true"]):
        with pytest.raises(UsageError, match=r"^x="):
            flag(bad, "x")


def test_ll_choices_come_from_the_one_option_parser():
    from shop_eval.prompt_options import parse_options

    base = load(SAMPLE)[0]
    doc = bridge.record_to_doc(
        base.model_copy(update={"input_field": "Q\n0. a\n1. b\n2. c\nAnswer: ", "output_field": 2})
    )
    assert bridge.doc_to_choice(doc) == ["0", "1", "2"] and bridge.doc_to_choice_target(doc) == 2
    # the tricky prompt of issue 15: "12.9 inch" is no option line, "Option: 2) green" is one
    tricky = "0. red case\n1. blue case\n12.9 inch sleeve\nOption: 2) green"
    doc = bridge.record_to_doc(base.model_copy(update={"input_field": tricky, "output_field": 1}))
    assert bridge.doc_to_choice(doc) == ["0", "1", "2"] == [str(i) for i in parse_options(tricky).numbers]
    # no option list (Shopping MMLU's rating prediction): the ten digits, whatever the truth
    doc = bridge.record_to_doc(base.model_copy(update={"input_field": "Rate it.\nAnswer: ", "output_field": 4}))
    assert bridge.doc_to_choice(doc) == [str(i) for i in range(10)]


# --------------------------------------------------------------------------- equality with shop-eval score


def _scorer(data: Path, samples: list[Path], out: Path) -> dict:
    from shop_eval.cli import main

    assert main(["score", str(data), *map(str, samples), "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _assert_equal_to_scorer(results_file: Path, data: Path, tmp_path: Path) -> int:
    """Every shop task's lm-eval numbers == shop-eval score on that task's samples file."""
    res = json.loads(results_file.read_text())
    stamp = results_file.name.removeprefix("results_").removesuffix(".json")
    checked = 0
    for task, nums in res["results"].items():
        if not task.startswith(("shop_", "shopchat_", "shopmmlu_")):
            continue
        samples = results_file.parent / f"samples_{task}_{stamp}.jsonl"
        assert samples.exists(), samples
        ttype = _type_of(task)
        if not any("," in k for k in nums):  # an absent task: no metrics
            continue
        scored = _scorer(data, [samples], tmp_path / f"{task}.json")
        filters = ["none"] if task.endswith("_ll") else ["official", "flexible", "shoppingmmlu"]
        # sentence-transformer cosines differ in the 8th digit with the batch a text was embedded in
        # (padding); every other metric is exact
        tol = 1e-6 if ttype == "generation" else 1e-12
        for filt in filters:
            ext = "official" if filt == "none" else filt
            ours = scored["protocols"][ext]["task_types"][ttype]
            assert nums[f"shop_score,{filt}"] == pytest.approx(ours["score"], abs=tol), (task, filt)
            if filt != "none":
                assert nums[f"parse_failure,{filt}"] == pytest.approx(ours["parse_failure_rate"], abs=1e-12)
            checked += 1
            if ttype == "generation":
                by_metric = ours.get("by_metric") or {ours["metrics"][0]: ours}
                for metric, key in bridge.METRIC_KEYS.items():
                    if metric in by_metric:
                        assert nums[f"{key},{filt}"] == pytest.approx(by_metric[metric]["score"], abs=tol)
                        checked += 1
                    else:
                        assert math.isnan(nums[f"{key},{filt}"]), (task, key)
    return checked


def _canned_lm():
    """A model whose answers follow each doc: the truth as the official parser reads it, the truth inside a
    chatty sentence (the official parser mostly fails, the flexible one reads it), or no answer."""
    from lm_eval.api.model import LM

    class Canned(LM):
        def generate_until(self, requests):
            out = []
            for req in requests:
                rec = bridge.doc_to_record(req.doc)
                answer = format_answer(rec)
                kind = req.doc["row"] % 3
                if kind == 0:
                    out.append(answer)
                elif kind == 1:
                    out.append(f"Sure! After reading the question carefully, the answer is: {answer}.")
                else:
                    out.append("I am not sure.")
            return out

        def loglikelihood(self, requests):
            out = []
            for req in requests:
                truth = bridge.doc_to_choice_target(req.doc)
                guess = truth if req.doc["row"] % 2 == 0 else (truth - 1 if truth > 0 else truth + 1)
                out.append((-abs(int(req.args[1].strip()) - guess) - 0.5, False))
            return out

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    return Canned()


def _run_canned(task_manager, names: list[str], out: Path, lm=None) -> tuple[dict, Path]:
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    res = simple_evaluate(
        model=lm or _canned_lm(), tasks=names, task_manager=task_manager, log_samples=True, evaluation_tracker=tracker
    )
    samples = res.pop("samples")
    tracker.save_results_aggregated(results=res, samples=samples)
    for task in res["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    (results_file,) = out.rglob("results_*.json")
    return res, results_file


def test_lm_eval_numbers_equal_shop_eval_score(task_manager, tmp_path):
    res, results_file = _run_canned(task_manager, [*ALL_SHOP, "shopchat_ner"], tmp_path / "out")
    # the canned answers give non-trivial numbers, and the two extractors differ
    r = res["results"]
    assert 0 < r["shop_retrieval"]["shop_score,official"] < 1
    assert r["shop_multiple_choice"]["shop_score,flexible"] > r["shop_multiple_choice"]["shop_score,official"] > 0
    assert r["shop_multiple_choice"]["parse_failure,official"] > r["shop_multiple_choice"]["parse_failure,flexible"]
    # even rows right: per task name the share of its rows with an even row number, then the mean over names
    mc = [(i, rec) for i, rec in enumerate(load(SAMPLE)) if rec.task_type == "multiple-choice"]
    by_task: dict[str, list[float]] = {}
    for i, rec in mc:
        by_task.setdefault(rec.task_name, []).append(float(i % 2 == 0))
    expected = sum(sum(v) / len(v) for v in by_task.values()) / len(by_task)
    assert r["shop_multiple_choice_ll"]["shop_score,none"] == pytest.approx(expected)
    assert _assert_equal_to_scorer(results_file, SAMPLE, tmp_path) >= 2 * len(GENERATIVE) + 1 + 2


def test_duplicate_prompts_stay_separate_rows(task_manager, tmp_path, monkeypatch):
    """Real data repeats prompts (EC-Guide: ~1.3k rows share input_field and task_name with another row,
    often with a different truth): lm-eval scores every row, and so must `shop-eval score` on its samples."""
    rows = [json.loads(x) for x in SAMPLE.read_text().splitlines() if x.strip()]
    mc = [r for r in rows if r["task_type"] == "multiple-choice"]
    dup = dict(mc[0], output_field=(mc[0]["output_field"] + 1) % 4)
    data = tmp_path / "dups.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [*mc, dup, dict(mc[2])]))
    monkeypatch.setenv(bridge.DATA_ENV, str(data))
    res, results_file = _run_canned(task_manager, ["shop_multiple_choice", "shop_multiple_choice_ll"], tmp_path / "o")
    assert res["n-samples"]["shop_multiple_choice"]["effective"] == len(mc) + 2
    assert _assert_equal_to_scorer(results_file, data, tmp_path) == 4  # three protocols + log-likelihood


def test_data_option_ec_guide(ec_guide_dir, task_manager, monkeypatch):
    from collections import Counter

    from lm_eval.tasks import get_task_dict

    from shop_eval.loaders import load_records

    monkeypatch.setenv(bridge.DATA_ENV, str(ec_guide_dir))
    monkeypatch.setenv(bridge.SKIP_ENV, "1")  # five MCQ/SAP truths name an option their prompt lacks
    expected = Counter(r.task_type for r in load_records(ec_guide_dir, skip_invalid=True).records)
    names = [f"shop_{SHORT_NAMES[t]}" for t in expected]
    tasks = get_task_dict(names, task_manager)
    assert {n: len(t.eval_docs) for n, t in tasks.items()} == {f"shop_{SHORT_NAMES[t]}": c for t, c in expected.items()}
    if "ranking" not in expected:  # EC-Guide's public part has no ranking file: the task is absent
        task = get_task_dict(["shop_ranking"], task_manager)["shop_ranking"]
        assert [d["origin"] for d in task.eval_docs] == [bridge.ABSENT]


@pytest.mark.slow
def test_tiny_model_lm_eval_cli_equals_shop_eval_score(tiny_model_dir, tmp_path):
    """The real command line, on the tiny model, from another directory: all `shop_*` tasks, then a
    chat-template run; lm-eval's numbers equal `shop-eval score` on its samples."""
    out = tmp_path / "out"
    base = [str(BIN / "lm_eval"), "--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32"]
    base += ["--device", "cpu", "--batch_size", "8", "--include_path", str(TASKS_DIR), "--log_samples"]

    def lm_eval(cmd: list[str], name: str) -> Path:
        """Run lm_eval into out/<name>; its one results file."""
        run = subprocess.run(
            [*cmd, "--output_path", str(out / name)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        (results,) = (out / name).rglob("results_*.json")
        return results

    results_file = lm_eval([*base, "--tasks", "shop_*"], "plain")
    assert set(json.loads(results_file.read_text())["results"]) == set(ALL_SHOP)
    assert _assert_equal_to_scorer(results_file, SAMPLE, tmp_path) >= 2 * len(GENERATIVE) + 1
    chat_file = lm_eval(
        [*base, "--tasks", "shop_multiple_choice,shop_ner", "--apply_chat_template", "--limit", "2"], "chat"
    )
    chat_res = json.loads(chat_file.read_text())
    assert chat_res["chat_template"]  # the tiny tokenizer's template was applied
    _assert_equal_to_scorer(chat_file, SAMPLE, tmp_path)

    # a LoRA adapter on the base (peft=), and the leaderboard over base and adapter runs
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from shop_eval.leaderboard import build_leaderboard

    lora = tmp_path / "lora"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    get_peft_model(model, cfg).save_pretrained(lora)
    peft_base = [*base[:4], f"pretrained={tiny_model_dir},peft={lora},dtype=float32", *base[5:]]
    lora_file = lm_eval([*peft_base, "--tasks", "shop_ner,shop_multiple_choice_ll"], "lora")
    _assert_equal_to_scorer(lora_file, SAMPLE, tmp_path)
    board = build_leaderboard([results_file, lora_file])
    base_entry, lora_entry = board.models
    assert base_entry.adapter is None and lora_entry.adapter == str(lora)
    assert lora_entry.name == f"{tiny_model_dir.name}+lora"
    assert all(m.agreement["ok"] for m in board.models)


@pytest.mark.slow
def test_data_parallel_ranks_gather_the_same_numbers(tiny_model_dir, tmp_path):
    """`accelerate launch --num_processes 2` (CPU, gloo): each rank emits every metric key, so the gathered
    numbers equal `shop-eval score` on the merged samples."""
    out = tmp_path / "dp"
    cmd = [str(BIN / "accelerate"), "launch", "--cpu", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", "-m", "lm_eval", "--model", "hf"]
    cmd += ["--model_args", f"pretrained={tiny_model_dir},dtype=float32", "--include_path", str(TASKS_DIR)]
    cmd += ["--tasks", "shop_generation,shop_multiple_choice_ll", "--batch_size", "8", "--log_samples"]
    cmd += ["--output_path", str(out)]
    run = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    res = json.loads(results_file.read_text())
    assert res["n-samples"]["shop_generation"]["effective"] == sum(r.task_type == "generation" for r in load(SAMPLE))
    assert _assert_equal_to_scorer(results_file, SAMPLE, tmp_path) >= 3


def test_group_reports_the_mean_of_its_six_tasks(task_manager, tmp_path):
    res, _ = _run_canned(task_manager, ["shopbench"], tmp_path / "g")
    r = res["results"]
    for filt in ("official", "flexible"):
        expected = sum(r[t][f"shop_score,{filt}"] for t in GENERATIVE) / len(GENERATIVE)
        assert r["shopbench"][f"shop_score,{filt}"] == pytest.approx(expected, abs=1e-12)
        n = {t: res["n-samples"][t]["effective"] for t in GENERATIVE}
        pooled = sum(r[t][f"parse_failure,{filt}"] * n[t] for t in GENERATIVE) / sum(n.values())
        assert r["shopbench"][f"parse_failure,{filt}"] == pytest.approx(pooled, abs=1e-12)


# --------------------------------------------------------------------------- absent task types, Shopping MMLU


BUDGETS = {"shop_retrieval": 16, "shop_ranking": 32, "shop_ner": 32, "shop_generation": 100, "shop_classification": 8}


def test_budget_group_is_the_recommended_settings_in_one_run(task_manager, tmp_path):
    """`--tasks shopbench_budget`: multiple choice by log-likelihood and each generative task with its own
    decoding budget, in one run — the same numbers as each task run alone with `--gen_kwargs max_gen_toks=N`,
    and every number equal to `shop-eval score` on the run's samples."""
    from lm_eval.tasks import get_task_dict

    assert task_manager.task_index["shopbench_budget"]["type"] == "group"
    (members,) = get_task_dict(["shopbench_budget"], task_manager).values()
    assert sorted(members) == sorted(["shop_multiple_choice_ll", *BUDGETS])
    for name, task in members.items():
        if name == "shop_multiple_choice_ll":
            assert task.OUTPUT_TYPE == "multiple_choice"
            continue
        gen = task.config.generation_kwargs  # the kit's greedy decoding, stop at EOS only, the task's budget
        assert gen == {"until": [], "do_sample": False, "temperature": 0.0, "max_gen_toks": BUDGETS[name]}, name
    seen: dict[str, set] = {}
    canned = _canned_lm()
    real = type(canned).generate_until

    def spy(self, requests):
        for r in requests:
            seen.setdefault(r.task_name, set()).add(r.args[1]["max_gen_toks"])
        return real(self, requests)

    type(canned).generate_until = spy
    try:
        res, results_file = _run_canned(task_manager, ["shopbench_budget"], tmp_path / "budget", lm=canned)
    finally:
        type(canned).generate_until = real
    assert seen == {t: {n} for t, n in BUDGETS.items()}  # each task's requests carry its own budget
    assert _assert_equal_to_scorer(results_file, SAMPLE, tmp_path) >= 3 * len(BUDGETS) + 1
    alone, _ = _run_canned(task_manager, [*BUDGETS, "shop_multiple_choice_ll"], tmp_path / "alone")
    for t in [*BUDGETS, "shop_multiple_choice_ll"]:  # the group changes no number (its members are indented)
        assert {k: v for k, v in res["results"][t].items() if k != "alias"} == {
            k: v for k, v in alone["results"][t].items() if k != "alias"
        }, t
    assert not any("," in k for k in res["results"]["shopbench_budget"])  # no aggregate across protocols


def test_absent_task_types_run_and_are_reported_absent(task_manager, tmp_path, monkeypatch):
    """The kit's file has no classification rows: `--tasks 'shop_*'` runs, the absent task reports no metric,
    and the leaderboard marks it absent (no NaN, no 0) while the other numbers equal `shop-eval score`."""
    from shop_eval.leaderboard import build_leaderboard, render_markdown

    data = REPO / "tests" / "fixtures" / "kit_dev.jsonl"
    monkeypatch.setenv(bridge.DATA_ENV, str(data))
    res, results_file = _run_canned(task_manager, ALL_SHOP, tmp_path / "kit")
    assert not any("," in k for k in res["results"]["shop_classification"])  # absent: no metric at all
    assert _assert_equal_to_scorer(results_file, data, tmp_path) >= 5 * 3
    board = build_leaderboard([results_file])
    shop = board.models[0].scores["shop"]
    assert shop.type_score("official", "classification") == (None, None, True)
    assert board.models[0].agreement["ok"] and board.models[0].tasks["shop_classification"].n == 0
    md = render_markdown(board)
    assert "classification" not in md  # a type no model has is no column
    assert "NaN" not in json.dumps(board.to_json()) and "nan" not in md
    # the overall numbers: the scorer's, on the same samples
    generative = [p for p in sorted(results_file.parent.glob("samples_shop_*.jsonl")) if "_ll_" not in p.name]
    scored = _scorer(data, generative, tmp_path / "all.json")
    for p in ("official", "flexible", "shoppingmmlu"):
        ours = board.models[0].scores["shop"].protocols[p]
        assert ours.mean_of_tracks.score == pytest.approx(scored["protocols"][p]["mean_of_tracks"]["score"], abs=1e-12)
        assert ours.mean_of_tasks.score == pytest.approx(scored["protocols"][p]["mean_of_tasks"]["score"], abs=1e-12)


def test_shopmmlu_tasks_equal_shop_eval_score_and_the_leaderboard_shows_four_skills(task_manager, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    from shop_eval.leaderboard import build_leaderboard, render_markdown

    monkeypatch.setenv(bridge.SHOPMMLU_ENV, str(SHOPMMLU))
    res, results_file = _run_canned(task_manager, ["shoppingmmlu", "shopmmlu_concept_multiple_choice_ll"],
                                    tmp_path / "mmlu")  # fmt: skip
    present = [t for t, v in res["results"].items() if t.startswith("shopmmlu_") and any("," in k for k in v)]
    assert len(present) == 8  # concept: mc, retrieval, ner, generation; behavior: mc, ranking; multilingual: gen; ll
    assert _assert_equal_to_scorer(results_file, SHOPMMLU, tmp_path) >= 7 * 3 + 1
    board = build_leaderboard([results_file])
    m = board.models[0]
    assert m.agreement["ok"]
    official = m.scores["shopmmlu"].protocols["official"]
    assert set(official.tracks) == {"skill1_concept", "skill3_behavior", "skill4_multilingual"}
    md = render_markdown(board)
    assert "skill 2: shopping knowledge reasoning" in md and "| absent |" in md


def test_generated_shopmmlu_files_are_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen", TASKS_DIR / "_generate_shopmmlu.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for name, text in gen.files().items():
        assert (TASKS_DIR / name).read_text(encoding="utf-8") == text, (
            f"{name}: run lm_eval_tasks/_generate_shopmmlu.py"
        )
