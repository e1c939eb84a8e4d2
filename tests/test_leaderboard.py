"""`shop-eval leaderboard`: lm-eval results of several models -> JSON (schema shop-eval/leaderboard/v1),
Markdown and PNG.  Two canned models run the real lm-eval pipeline: one answers every row with its truth
(so every official score must be exactly 1), one never answers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shop_eval import lm_eval_bridge as bridge
from shop_eval.cli import main
from shop_eval.leaderboard import SCHEMA, build_leaderboard, render_markdown
from shop_eval.loaders import load
from shop_eval.prompts import format_answer
from shop_eval.records import DataError

REPO = Path(__file__).resolve().parents[1]
TASKS_DIR = REPO / "lm_eval_tasks"
SAMPLE = TASKS_DIR / "data" / "sample.jsonl"
TYPES = ["multiple-choice", "retrieval", "ranking", "named_entity_recognition", "generation", "classification"]


def _run_canned(out: Path, perfect: bool) -> Path:
    from lm_eval import simple_evaluate
    from lm_eval.api.model import LM
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    class Canned(LM):
        def generate_until(self, requests):
            return [format_answer(bridge.doc_to_record(r.doc)) if perfect else "I am not sure." for r in requests]

        def loglikelihood(self, requests):
            out = []
            for r in requests:
                right = int(r.args[1]) == bridge.doc_to_choice_target(r.doc)
                out.append((0.0 if right == perfect else -5.0, False))
            return out

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

    tracker = EvaluationTracker(output_path=str(out))
    tm = TaskManager(include_path=str(TASKS_DIR))
    res = simple_evaluate(
        model=Canned(),
        tasks=tm.match_tasks(["shop_*"]),
        task_manager=tm,
        log_samples=True,
        evaluation_tracker=tracker,
    )
    samples = res.pop("samples")
    tracker.save_results_aggregated(results=res, samples=samples)
    for task in res["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    (results_file,) = out.rglob("results_*.json")
    return results_file


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"perfect": _run_canned(root / "perfect", True), "silent": _run_canned(root / "silent", False)}


@pytest.fixture(scope="module")
def contamination_report(tmp_path_factory):
    from shop_eval.decontam import decontaminate

    records = load(SAMPLE)
    _, _, report = decontaminate(records[:3], {"sample": records})
    path = tmp_path_factory.mktemp("cont") / "report.json"
    path.write_text(json.dumps(report))
    return path, report


def test_json_schema_scores_and_agreement(runs, contamination_report):
    cpath, report = contamination_report
    board = build_leaderboard([runs["perfect"], runs["silent"]], ["perfect", "silent"], {"perfect": cpath}).to_json()
    assert board["schema"] == SCHEMA
    assert [m["name"] for m in board["models"]] == ["perfect", "silent"]
    perfect, silent = board["models"]
    for m in board["models"]:
        for key in ("model_args", "adapter", "lm_eval_version", "git_hash", "date", "config_hash", "data_hash"):
            assert key in m
        assert m["lm_eval_version"] == "0.4.11"
        assert m["lm_eval_agreement"]["ok"] and m["lm_eval_agreement"]["checked"] >= 13
        assert m["scores"]["shop"]["source"] == "samples"
    assert perfect["config_hash"] == silent["config_hash"] and perfect["data_hash"] == silent["data_hash"]
    assert board["comparable"] == {"same_config": True, "same_data": True, "same_task_types": True,
                                   "lm_eval_agreement": True}  # fmt: skip

    records = load(SAMPLE)
    for ext in ("official", "flexible"):
        res = perfect["scores"]["shop"]["protocols"][ext]
        assert res["mean_of_tracks"]["n"] == len(records) and res["mean_of_tracks"]["parse_failure_rate"] == 0
        assert set(res["tracks"]) == {r.track for r in records}
        assert set(res["tasks"]) == {r.task_name for r in records}
        for t in TYPES:
            assert res["task_types"][t]["n"] == sum(r.task_type == t for r in records)
            if t != "generation":
                assert res["task_types"][t]["score"] == pytest.approx(1.0, abs=1e-12), (ext, t)
        gen = res["task_types"]["generation"]["by_metric"]
        assert set(gen) == {"rougel", "sent-transformer", "bleu", "jp-bleu"}
        for m in ("rougel", "bleu", "jp-bleu"):
            assert gen[m]["score"] == pytest.approx(1.0, abs=1e-9), m
        # a row with two references scores the mean of the two cosines: below 1 even for the first one
        assert 0.5 < gen["sent-transformer"]["score"] < 1.0
        assert 0.95 < res["mean_of_tracks"]["score"] < 1.0
        assert 0.95 < res["mean_of_tasks"]["score"] < 1.0
    silent_off = silent["scores"]["shop"]["protocols"]["official"]
    for t in ("multiple-choice", "retrieval", "ranking"):
        assert silent_off["task_types"][t]["score"] == 0.0
        assert silent_off["task_types"][t]["parse_failure_rate"] == 1.0
    assert silent_off["mean_of_tracks"]["score"] < 0.2 and silent_off["mean_of_tracks"]["stderr"] is not None

    def ll(m):
        return m["scores"]["shop_ll"]["protocols"]["official"]["task_types"]["multiple-choice"]["score"]

    assert ll(perfect) == 1.0 and ll(silent) == 0.0
    # the contamination report rides along with its headline number
    cont = perfect["contamination"]
    assert cont["max_eval_fraction_found"] == report["eval_sets"]["sample"]["eval_fraction_found"] > 0
    assert silent["contamination"] is None
    # the numbers lm-eval printed are kept beside the re-scored ones
    lm = perfect["tasks"]["shop_generation"]["lm_eval"]["official"]
    ours = perfect["scores"]["shop"]["protocols"]["official"]["task_types"]["generation"]
    assert lm["shop_score"] == pytest.approx(ours["score"], abs=1e-6) and lm["multilingual_sent_transformer"] is None


def test_markdown_is_the_seed_shaped_table(runs):
    board = build_leaderboard([runs["perfect"], runs["silent"]], ["perfect", "silent"])
    md = render_markdown(board)
    lines = md.splitlines()
    head = next(ln for ln in lines if ln.startswith("| model | multiple choice"))
    cols = [c.strip() for c in head.strip("|").split("|")]
    assert cols[:7] == [
        "model",
        "multiple choice (accuracy)",
        "retrieval (hit rate@3)",
        "ranking (ndcg)",
        "NER (micro f1)",
        "generation (bleu, jp-bleu, rougel, sent-transformer)",
        "classification (accuracy)",
    ]
    i = lines.index(head)
    assert lines[i + 2].startswith("| `perfect` | 1.0000 ± 0.000 |")
    assert lines[i + 3].startswith("| `silent` | 0.0000 ± 0.000 |")
    assert "## flexible —" in md and "## shoppingmmlu —" in md and "multiple choice by log-likelihood" in md
    assert "all-around (mean of tracks)" in head and "kit overall (mean of tasks)" in head


def test_cli_writes_the_three_files(runs, contamination_report, tmp_path):
    cpath, _ = contamination_report
    out = tmp_path / "lb"
    rc = main(
        ["leaderboard", str(runs["perfect"].parent), str(runs["silent"]), "--names", "perfect,silent"]
        + ["--out", str(out / "leaderboard.json"), "--md", str(out / "leaderboard.md"), "--png", str(out / "lb.png")]
        + ["--contamination", str(cpath)]
    )
    assert rc == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["contamination"]["path"] == str(cpath)  # a bare path applies to the whole board
    assert "| `silent` |" in (out / "leaderboard.md").read_text()
    png = out / "lb.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    h, w, _ = matplotlib.image.imread(png).shape
    assert w >= 800 and h >= 600


def test_without_samples_only_lm_eval_numbers(runs, tmp_path):
    run = tmp_path / "nosamples"
    run.mkdir()
    shutil.copy(runs["silent"], run / runs["silent"].name)
    board = build_leaderboard([run / runs["silent"].name], ["silent"])
    shop = board.to_json()["models"][0]["scores"]["shop"]
    assert shop["source"] == "lm-eval"
    mc = shop["protocols"]["official"]["multiple-choice"]
    assert mc["score"] == 0.0 and mc["parse_failure_rate"] == 1.0
    assert "| `silent` |" in render_markdown(board)


def test_bad_input_is_named(tmp_path):
    bad = tmp_path / "results_x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(DataError, match="results_x.json.*not an lm-eval results file"):
        build_leaderboard([bad])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no lm-eval results"):
        build_leaderboard([tmp_path / "empty"])
