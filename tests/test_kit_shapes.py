"""The shapes of the kit's development set (tests/fixtures/kit_dev.jsonl, written by hand): the five official task
types and no classification, a translation task with `bleu` rows and one `jp-bleu` row, a ranking response that
names index 0, four tracks holding 4, 2, 1 and 2 task names.  Every number below is computed by hand from the
protocol document (rouge-L by its LCS formula, BLEU of exact or empty answers, NDCG by its sum), then compared
with `shop-eval score`, and in tests/test_lm_eval_tasks.py with lm-eval + the leaderboard."""

from __future__ import annotations

import json
import math

import pytest

from shop_eval.cli import main

A = "amazon-kdd-cup-24-understanding-shopping-concepts"
B = "amazon-kdd-cup-24-shopping-knowledge-reasoning"
C = "amazon-kdd-cup-24-user-behavior-alignment"
D = "amazon-kdd-cup-24-multi-lingual-abilities"


def _f1(tp, fp, fn):
    p, r = tp / (tp + fp), tp / (tp + fn)
    return 2 * p * r / (p + r)


def _gain(w):
    return 2.0**w - 1


def _dcg(rels):
    return sum(_gain(r) / math.log2(i + 2) for i, r in enumerate(rels))


# ---------------------------------------------------------------------------- hand-computed, per protocol

# task1, rouge-L (stemmed tokens): "stainless steel bottl" vs "stainless steel water bottl": LCS 3, P 1, R 3/4;
# "a red chair" vs "red wooden chair": LCS 2, P = R = 2/3
ROUGE = ((2 * 1 * 0.75 / 1.75) + (2 / 3)) / 2
# task6: truth [1, 0.01, 0.1, 1, 0.5], response "0, 1, 4": index 0 reads truth[-1] = 0.5 (the kit's Python indexing)
T6 = [1, 0.01, 0.1, 1, 0.5]
NDCG6_KIT = _dcg([0.5, 1, 1]) / _dcg(sorted(T6, reverse=True))
# task7 row 2: "1, 1" repeats an index: the kit's parser gives [] (0); the authors' keep both: above 1
T7B = [1.0, 0.01]
NDCG7B_AUTHORS = _dcg([1.0, 1.0]) / _dcg(T7B)

OFFICIAL = {
    "task1": ROUGE,
    "task2": 2 / 3,  # "0" right; "\n3" right (strip); "The answer is 1": "T" is no digit -> -1
    "task3": (2 / 3 + 1) / 2,  # [6, 9, 2] of [6, 9, 15]; "[1, 2]" cleaned to "1, 2"
    "task4": _f1(3, 1, 0),  # sony: tp 1; "usb cable, charger, cable": tp 2, fp 1; pooled
    "task5": 1.0,  # "2"; full-width "０" is int 0 in Python
    "task6": NDCG6_KIT,
    "task7": (1.0 + 0.0) / 2,
    "task8": (1.0 + 0.0 + 1.0 + 1.0) / 4,  # exact bleu, empty bleu, first line exact, exact jp-bleu: mean of rows
    "task9": _f1(1, 1, 0),  # the list literal ['casque', 'audio']
}
SHOPPINGMMLU = {
    "task1": ROUGE,  # the raw response: the same here
    "task2": 1 / 3,  # spaces only are stripped: "\n3" starts with a newline; "T" != "1"
    "task3": (2 / 3 + 0) / 2,  # "[1, 2]" split on "," gives "[1" and " 2]": neither is an int
    "task4": _f1(3, 1, 0),
    "task5": 0.5,  # "０" != "0"
    "task6": NDCG6_KIT,  # no repeat; index 0 reads the last weight there too
    "task7": (1.0 + NDCG7B_AUTHORS) / 2,
    "task8": 0.75,
    "task9": 0.0,  # no list-literal reading: "['casque'" and "'audio']" are the entities
}
TRACKS = {A: ["task1", "task2", "task3", "task4"], B: ["task5", "task6"], C: ["task7"], D: ["task8", "task9"]}


def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def result(fixtures_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "result.json"
    rc = main(["score", str(fixtures_dir / "kit_dev.jsonl"), str(fixtures_dir / "kit_dev_responses.jsonl"),
               "--out", str(out)])  # fmt: skip
    assert rc == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("protocol, expected", [("official", OFFICIAL), ("shoppingmmlu", SHOPPINGMMLU)])
def test_task_track_and_overall_scores_are_the_hand_computed_ones(result, protocol, expected):
    r = result["protocols"][protocol]
    for name, score in expected.items():
        assert r["tasks"][name]["score"] == pytest.approx(score, abs=1e-12), name
    for track, names in TRACKS.items():
        assert r["tracks"][track]["score"] == pytest.approx(_mean(expected[n] for n in names), abs=1e-12)
        assert r["tracks"][track]["n_tasks"] == len(names)
    # the all-around score (mean of the four track means) and the kit's printed overall (mean of the 9 tasks)
    all_around = _mean(_mean(expected[n] for n in names) for names in TRACKS.values())
    kit_overall = _mean(expected.values())
    assert r["mean_of_tracks"]["score"] == pytest.approx(all_around, abs=1e-12)
    assert r["mean_of_tasks"]["score"] == pytest.approx(kit_overall, abs=1e-12)
    assert all_around != pytest.approx(kit_overall)  # unequal tracks: the two differ, and both are reported


def test_a_task_with_bleu_and_jp_bleu_rows_counts_in_both_metric_views(result):
    r = result["protocols"]["official"]
    assert r["tasks"]["task8"]["metrics"] == ["bleu", "jp-bleu"] and r["tasks"]["task8"]["metric"] == "bleu"
    assert r["metrics"]["bleu"]["score"] == pytest.approx(2 / 3)  # task8's three bleu rows
    assert r["metrics"]["jp-bleu"]["score"] == pytest.approx(1.0)
    gen = r["task_types"]["generation"]
    assert gen["score"] == pytest.approx((ROUGE + 0.75) / 2)
    assert gen["by_metric"]["bleu"]["score"] == pytest.approx(2 / 3)
    assert gen["by_metric"]["rougel"]["score"] == pytest.approx(ROUGE)


def test_index_zero_reads_the_last_weight_and_a_repeat_is_no_ranking(result):
    off, flex = result["protocols"]["official"], result["protocols"]["flexible"]
    assert off["tasks"]["task6"]["score"] == pytest.approx(NDCG6_KIT, abs=1e-12)
    # flexible reads candidate numbers 1..5 only, so it drops the 0: [1, 4]
    assert flex["tasks"]["task6"]["score"] == pytest.approx(_dcg([1, 1]) / _dcg(sorted(T6, reverse=True)), abs=1e-12)
    assert off["tasks"]["task7"]["parse_failures"] == 1


def test_absent_type_is_marked_not_scored(result):
    for protocol in ("official", "flexible", "shoppingmmlu"):
        cls = result["protocols"][protocol]["task_types"]["classification"]
        assert cls["absent"] is True and cls["n"] == 0 and cls["score"] is None
    assert "NaN" not in json.dumps(result)
