"""The `shoppingmmlu` protocol: every point where the Shopping MMLU authors' scorer differs from the kit
(../shared/docs/shopping-mmlu-format.md), one hand-worked case each, against the `official` reading of the same
response; and where their code raises or yields NaN, a score of 0 counted as a parse failure."""

from __future__ import annotations

import math

import pytest

from shop_eval.metrics import Counts
from shop_eval.records import make_record
from shop_eval.scoring import score_rows
from shop_eval.scoring.protocols import read, score_value

MC_PROMPT = "Q\n0. a\n1. b\n2. c\n3. d\nAnswer: "


def _score(protocol, ttype, metric, response, truth, prompt=None):
    e = read(protocol, ttype, response, prompt)
    value, metric_failed = score_value(protocol, ttype, metric, e.value, truth)
    return value, e.failed or metric_failed


@pytest.mark.parametrize(
    "response, official, authors",
    [
        ("2", 1.0, 1.0),
        ("  2  ", 1.0, 1.0),
        ("\n2", 1.0, 0.0),  # the authors strip spaces only
        ("\t2", 1.0, 0.0),
        ("\uff12", 1.0, 0.0),  # full-width 2: int() reads it, the character is not "2"
        ("", 0.0, 0.0),
        ("2, because", 1.0, 1.0),
    ],
)
def test_multiple_choice(response, official, authors):
    assert _score("official", "multiple-choice", "accuracy", response, 2, MC_PROMPT)[0] == official
    assert _score("shoppingmmlu", "multiple-choice", "accuracy", response, 2, MC_PROMPT)[0] == authors


def test_multiple_choice_empty_answer_is_a_parse_failure_for_the_authors():
    assert _score("shoppingmmlu", "multiple-choice", "accuracy", "   ", 0, MC_PROMPT) == (0.0, True)


@pytest.mark.parametrize(
    "response, truth, official, authors",
    [
        ("1, 2, 3", [1, 2, 3], 1.0, 1.0),
        ("[1, 2, 3]", [1, 2, 3], 1.0, 1 / 3),  # no character cleaning: only " 2" is an int
        ("1,\n2,\n3", [1, 2, 3], 1.0, 1.0),  # the whole response is split, newlines included (int strips them)
        ("1 2 3", [1, 2, 3], 0.0, 0.0),
        ("4, 5, 6, 1", [1], 0.0, 0.0),  # first three only
    ],
)
def test_retrieval(response, truth, official, authors):
    assert _score("official", "retrieval", "hit rate@3", response, truth)[0] == pytest.approx(official)
    assert _score("shoppingmmlu", "retrieval", "hit rate@3", response, truth)[0] == pytest.approx(authors)


def _dcg(rels):
    return sum((2.0**r - 1) / math.log2(i + 2) for i, r in enumerate(rels))


def test_ranking_readings():
    truth = [1.0, 0.0, 0.5]
    ideal = _dcg(sorted(truth, reverse=True))
    # repeated index: the kit's parser empties the list; the authors count it twice (above 1 is possible)
    assert _score("official", "ranking", "ndcg", "1, 1, 3", truth) == (0.0, True)
    assert _score("shoppingmmlu", "ranking", "ndcg", "1, 1, 3", truth)[0] == pytest.approx(_dcg([1, 1, 0.5]) / ideal)
    # the kit keeps values <= 5 only; the authors keep 7 (out of range: relevance 0)
    assert _score("official", "ranking", "ndcg", "7, 1, 3", truth)[0] == pytest.approx(_dcg([1, 0.5]) / ideal)
    assert _score("shoppingmmlu", "ranking", "ndcg", "7, 1, 3", truth)[0] == pytest.approx(_dcg([0, 1, 0.5]) / ideal)
    # a multi-line answer: the authors take its first line
    assert _score("shoppingmmlu", "ranking", "ndcg", "\n1, 3, 2\n2, 1, 3", truth)[0] == pytest.approx(1.0)
    # index 0 reads the last weight in both
    assert _score("official", "ranking", "ndcg", "0", truth)[0] == pytest.approx(_dcg([0.5]) / ideal)
    assert _score("shoppingmmlu", "ranking", "ndcg", "0", truth)[0] == pytest.approx(_dcg([0.5]) / ideal)


def test_ranking_failures_of_the_authors_code_score_zero_as_parse_failures():
    # an index below -len(truth) raises IndexError in their code ("-5" is an int to them, no cleaning)
    assert _score("shoppingmmlu", "ranking", "ndcg", "-5, 1", [1.0, 0.0]) == (0.0, True)
    # all-zero weights: their 0/0 is NaN; the kit's guard gives 0 without failing the parse
    assert _score("shoppingmmlu", "ranking", "ndcg", "1, 2", [0.0, 0.0]) == (0.0, True)
    assert _score("official", "ranking", "ndcg", "1, 2", [0.0, 0.0]) == (0.0, False)


def test_ner_readings():
    off = read("official", "named_entity_recognition", "['Sony', 'Bose']").value
    authors = read("shoppingmmlu", "named_entity_recognition", "['Sony', 'Bose']").value
    assert off == ["Sony", "Bose"] and authors == ["['Sony'", " 'Bose']"]
    # leading newlines off, first line only, spaces stripped, exactly-empty pieces dropped (" " survives)
    assert read("shoppingmmlu", "named_entity_recognition", "\n\n sony, , bose \nlg").value == ["sony", " ", " bose"]
    assert read("official", "named_entity_recognition", "\n\n sony, , bose \nlg").value == ["sony", "bose \nlg"]
    value, _ = score_value("shoppingmmlu", "named_entity_recognition", "micro f1", ["sony", " ", " bose"],
                           ["sony", "bose"])  # fmt: skip
    assert value == Counts(2, 1, 0)  # " " is an (empty) entity: a false positive


def test_generation_reads_the_raw_response():
    kit = _score("official", "generation", "rougel", "  red chair\n", "red chair")[0]
    authors = _score("shoppingmmlu", "generation", "rougel", "  red chair\n", "red chair")[0]
    assert kit == authors == pytest.approx(1.0)  # rouge tokenises away the white space
    # BLEU: the first line after trimming newlines, in both
    assert _score(
        "shoppingmmlu", "generation", "bleu", "\nroter Holzstuhl mit Armlehnen\nx", "roter Holzstuhl mit Armlehnen"
    )[0] == pytest.approx(1.0)


def _ner_records(n):
    return [
        make_record(
            {
                "input_field": f"q{i}",
                "output_field": ["x"],
                "task_name": "t",
                "task_type": "named_entity_recognition",
                "metric": "micro f1",
            },
            "s",
            "",
        )  # fmt: skip
        for i in range(n)
    ]


def test_micro_f1_with_nothing_predicted():
    """The kit's pooled F1 is 0 when nothing was predicted; the authors' divides by zero: 0 and every row of the
    task a parse failure."""
    records = _ner_records(3)
    res = score_rows(records, ["", "", ""], ("official", "shoppingmmlu"))
    kit, authors = res.protocols["official"].tasks["t"], res.protocols["shoppingmmlu"].tasks["t"]
    assert kit.score == 0.0 and authors.score == 0.0
    assert kit.parse_failures == 3  # empty answers are parse failures under both
    res = score_rows(records, ["y", "", ""], ("official", "shoppingmmlu"))
    assert res.protocols["shoppingmmlu"].tasks["t"].score == 0.0  # predicted "y": tp 0, fp 1 -> F1 0, no raise
    assert res.protocols["shoppingmmlu"].tasks["t"].parse_failures == 2


def test_shoppingmmlu_mc_truth_is_compared_as_a_string():
    """Their `accuracy(generation, str(truth))`: the rating task's truth 4 against the first character."""
    prompt = "Review: fine kettle.\nWhat rating (1-5) did the reviewer give?\nAnswer: "
    assert _score("shoppingmmlu", "multiple-choice", "accuracy", "4 stars", 4, prompt)[0] == 1.0
    assert _score("shoppingmmlu", "multiple-choice", "accuracy", "four", 4, prompt) == (0.0, True)
