"""The offline scorer end to end: hand-computed scores, aggregation order, prediction formats, errors."""

from __future__ import annotations

import json
import math

import pytest

from shop_eval.cli import main
from shop_eval.loaders import load, load_records
from shop_eval.scoring import label_sets, score_rows
from shop_eval.scoring.predictions import read_predictions


@pytest.fixture(scope="module")
def scored(fixtures_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("score")
    rc = main(
        [
            "score",
            str(fixtures_dir / "shopbench_dev.jsonl"),
            str(fixtures_dir / "shopbench_dev_responses.jsonl"),
            "--out",
            str(out / "result.json"),
            "--per-example",
            str(out / "per_example.jsonl"),
        ]
    )
    assert rc == 0
    result = json.loads((out / "result.json").read_text())
    rows = [json.loads(x) for x in (out / "per_example.jsonl").read_text().splitlines()]
    return result, rows


def test_hand_computed_task_scores(scored):
    result, _ = scored
    off, flex = result["protocols"]["official"]["tasks"], result["protocols"]["flexible"]["tasks"]
    # MC: "1" right, "The answer is 1." -> -1 officially, "2" wrong
    assert off["task1"]["score"] == pytest.approx(1 / 3)
    assert off["task1"]["parse_failures"] == 1
    assert flex["task1"]["score"] == pytest.approx(2 / 3)
    # retrieval: both hit fully ("Answer: [3, 1]" keeps " 3", " 1")
    assert off["task2"]["score"] == pytest.approx(1.0)
    # ranking: a perfect order, then [4, 3, 1] against [1, 0, 0.1, 0.01]
    dcg = (2**0.01 - 1) + (2**0.1 - 1) / math.log2(3) + 1 / 2
    idcg = 1 + (2**0.1 - 1) / math.log2(3) + (2**0.01 - 1) / 2
    assert off["task3"]["score"] == pytest.approx((1 + dcg / idcg) / 2, abs=1e-12)
    # NER pooled: tp 4, fp 1, fn 1 -> P = R = 0.8
    assert off["task4"]["score"] == pytest.approx(0.8)
    assert off["task4"]["metric"] == "micro f1"
    # classification: "Positive." matches; a sentence does not (official), but flexible finds the label
    assert off["task9"]["score"] == pytest.approx(0.5)
    assert flex["task9"]["score"] == pytest.approx(1.0)


def test_aggregation_task_then_track_then_overall(scored):
    result, _ = scored
    for ext in ("official", "flexible"):
        r = result["protocols"][ext]
        tracks = {}
        for t in r["tasks"].values():
            tracks.setdefault(t["track"], []).append(t["score"])
        for track, scores in tracks.items():
            assert r["tracks"][track]["score"] == pytest.approx(sum(scores) / len(scores))
        assert r["mean_of_tracks"]["score"] == pytest.approx(sum(r["tracks"][k]["score"] for k in tracks) / len(tracks))
        gen = r["task_types"]["generation"]
        assert set(gen["by_metric"]) == {"rougel", "sent-transformer", "bleu", "jp-bleu"}
        assert gen["by_metric"]["bleu"]["score"] == pytest.approx(r["tasks"]["task7"]["score"])
        assert r["mean_of_tracks"]["n"] == 17
        for t in r["tasks"].values():
            assert t["stderr"] is not None and t["stderr"] >= 0


def test_bleu_row_uses_first_line(scored):
    result, rows = scored
    # "\nStainless steel bottle 750 ml\nsecond line": the first line after trimming newlines
    from shop_eval.metrics import bleu

    assert result["protocols"]["official"]["tasks"]["task7"]["score"] == pytest.approx(
        bleu("Stainless steel bottle 750 ml", "Stainless steel drinking bottle 750 ml")
    )
    assert rows[13]["official"]["extracted"].startswith("Stainless steel bottle")


def test_per_example_rows(scored):
    _, rows = scored
    assert len(rows) == 17
    assert rows[1]["official"] == {"extracted": -1, "failed": True, "score": 0.0}
    assert rows[1]["flexible"]["extracted"] == 1
    assert rows[9]["official"]["tp_fp_fn"] == [0, 0, 1]


def test_truth_as_response_scores_one(fixtures_dir, tmp_path):
    out = tmp_path / "r.json"
    assert main(["score", str(fixtures_dir / "shopbench_dev.jsonl"), "truth", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    for ext in ("official", "flexible"):
        for name, t in r["protocols"][ext]["tasks"].items():
            assert t["score"] == pytest.approx(1.0, abs=1e-6), (ext, name)


def test_lm_eval_samples_are_matched_by_doc(fixtures_dir, tmp_path):
    loaded = load_records(fixtures_dir / "shopbench_dev.jsonl")
    records = loaded.records
    samples = tmp_path / "samples_shop_multiple_choice.jsonl"
    lines = []
    for doc_id, i in enumerate([2, 0]):
        doc = records[i].model_dump()
        for filt in ("official", "flexible"):  # one line per filter pipeline, same raw response
            lines.append({"doc_id": doc_id, "doc": doc, "filter": filt, "resps": [[f" {i}"]], "filtered_resps": ["x"]})
    samples.write_text("\n".join(json.dumps(x) for x in lines))
    idx, responses = read_predictions([samples], loaded)
    assert idx == [0, 2] and responses == [" 0", " 2"]
    # log-likelihood multiple choice: the argmax option
    ll = tmp_path / "samples_ll.jsonl"
    ll.write_text(
        json.dumps(
            {"doc_id": 0, "doc": records[0].model_dump(), "resps": [[[-3.0, False]], [[-0.5, True]], [[-9.0, False]]]}
        )
    )
    assert read_predictions([ll], loaded) == ([0], ["1"])


def test_lm_eval_sample_not_in_data_is_an_error(fixtures_dir, tmp_path):
    loaded = load_records(fixtures_dir / "shopbench_dev.jsonl")
    p = tmp_path / "samples_x.jsonl"
    p.write_text(json.dumps({"doc_id": 0, "doc": {"input_field": "??", "task_name": "task1"}, "resps": [["1"]]}))
    with pytest.raises(Exception, match=r"samples_x\.jsonl:line 1: field 'doc': .*not in DATA"):
        read_predictions([p], loaded)


@pytest.mark.parametrize(
    "lines, pattern",
    [
        (lambda n: ['{"response": "1"}'] * (n - 1), r"16 predictions for 17 data rows"),
        (lambda n: ['{"response": "1"}'] * (n - 1) + ['{"reply": "1"}'], r"line 17: field 'response': missing"),
        (
            lambda n: ['{"response": "1"}'] * (n - 1) + ['{"response": 1}'],
            r"line 17: field 'response': expected a string",
        ),
        (
            lambda n: ['{"response": "1", "input_field": "other"}'] + ['{"response": "1"}'] * (n - 1),
            r"line 1: field 'input_field': does not match",
        ),
        (lambda n: ['{"response": "1"'] + ['{"response": "1"}'] * (n - 1), r"line 1: invalid JSON"),
    ],
)
def test_prediction_errors(fixtures_dir, tmp_path, capsys, lines, pattern):
    p = tmp_path / "pred.jsonl"
    p.write_text("\n".join(lines(17)) + "\n")
    rc = main(["score", str(fixtures_dir / "shopbench_dev.jsonl"), str(p), "--out", str(tmp_path / "o.json")])
    assert rc == 2
    import re

    assert re.search(pattern, capsys.readouterr().err)
    assert not (tmp_path / "o.json").exists()


def test_score_responses_api_counts_parse_failures(fixtures_dir):
    records = load(fixtures_dir / "shopbench_dev.jsonl")
    r = score_rows(records, ["no idea"] * len(records), ("official",))
    mc = r.protocols["official"].task_types["multiple-choice"]
    assert mc.parse_failure_rate == 1.0 and mc.score == 0.0


def test_real_ec_guide_truths_score_one(ec_guide_dir, tmp_path):
    """Every exact metric reaches its protocol ceiling on the truths themselves (retrieval truths
    longer than 3 cap hit rate@3 below 1; NER truths with surrounding spaces never match a stripped
    prediction; BLEU of strings shorter than 4 tokens is 0 without effective order)."""
    out = tmp_path / "r.json"
    assert main(["score", str(ec_guide_dir), "truth", "--out", str(out), "--no-embeddings", "--skip-invalid"]) == 0
    r = json.loads(out.read_text())
    records = load(ec_guide_dir, skip_invalid=True)
    ceiling_retrieval = {}
    for rec in records:
        if rec.task_type == "retrieval":
            ceiling_retrieval.setdefault(rec.task_name, []).append(
                min(3, len(set(rec.output_field))) / len(rec.output_field)
            )
    for ext in ("official", "flexible"):
        tasks = r["protocols"][ext]["tasks"]
        for name, t in tasks.items():
            if t["metric"] in ("accuracy",) and ext == "official":
                assert t["score"] == 1.0, name
            if t["metric"] == "hit rate@3":
                c = ceiling_retrieval[name]
                assert t["score"] == pytest.approx(sum(c) / len(c)), name
        assert tasks["NER/NER"]["score"] > 0.998


def test_two_samples_files_answering_one_row_is_an_error(fixtures_dir, tmp_path):
    loaded = load_records(fixtures_dir / "shopbench_dev.jsonl")
    doc = loaded.records[0].model_dump()
    a, b = tmp_path / "samples_shop_multiple_choice.jsonl", tmp_path / "samples_shop_multiple_choice_ll.jsonl"
    a.write_text(json.dumps({"doc_id": 0, "doc": doc, "resps": [["1"]]}))
    b.write_text(json.dumps({"doc_id": 0, "doc": doc, "resps": [[["-1.0", "False"]], [["-0.1", "True"]]]}))
    with pytest.raises(Exception, match=r"DATA row 1 is also answered by .*samples_shop_multiple_choice\.jsonl"):
        read_predictions([a, b], loaded)


def test_label_sets_come_from_all_rows(fixtures_dir):
    records = load(fixtures_dir / "shopbench_dev.jsonl")
    assert label_sets(records) == {"task9": ["Positive", "Negative"]}
    # a subset (lm-eval --limit) scored with the whole file's label sets reads a response as the full
    # run does; with only its own rows' labels, "positive" would not be a label and the answer changes
    resp = "Not positive at all. Negative."
    full = score_rows(records, ["x"] * 16 + [resp], ("flexible",))
    sub = score_rows([records[16]], [resp], ("flexible",), labels=label_sets(records))
    alone = score_rows([records[16]], [resp], ("flexible",))
    assert full.protocols["flexible"].tasks["task9"].score == 0.0  # "positive" is named first
    assert sub.protocols["flexible"].tasks["task9"].score == 0.0
    assert alone.protocols["flexible"].tasks["task9"].score == 1.0


def test_atomic_write_gives_a_normal_file_mode(tmp_path):
    import os

    from shop_eval.io import write_json

    write_json(tmp_path / "x.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask
