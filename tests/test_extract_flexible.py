"""The flexible extractor on what chat models actually write."""

from __future__ import annotations

import pytest

from shop_eval.extract import count_candidates, extract, normalize_label

MC_PROMPT = "Which is footwear?\n0. kettle\n1. sneaker\n2. lamp\n3. pillow\nAnswer: "
RANK_PROMPT = "Rank:\n1. a\n2. b\n3. c\n4. d\n5. e\nOutput: "
RET_PROMPT = "Pick:\n1. a\n2. b\n3. c\n4. d\n5. e\n6. f\n7. g\nOutput: "


def flex(task_type, response, prompt=None, labels=None):
    return extract(task_type, response, "flexible", prompt=prompt, labels=labels)


@pytest.mark.parametrize(
    "response, expected",
    [
        ("1", 1),
        ("The answer is 1.", 1),
        ("Answer: 2", 2),
        ("**Answer:** 3 (pillow)", 3),
        ("<|im_start|>assistant\n1<|im_end|>", 1),
        ("Option 1 — the sneaker.", 1),
        ("I think the correct choice is (2) lamp", 2),
        ("1\n1\n1", 1),
        ("７", None),  # out of range for 4 options -> failure
        ("The sneaker, option ３? No: 1", 3),
    ],
)
def test_multiple_choice(response, expected):
    e = flex("multiple-choice", response, MC_PROMPT)
    if expected is None:
        assert e.failed and e.value == -1
    else:
        assert (e.value, e.failed) == (expected, False)


def test_multiple_choice_failure_is_reported():
    e = flex("multiple-choice", "I cannot tell.", MC_PROMPT)
    assert e.failed and e.value == -1


@pytest.mark.parametrize(
    "response, expected",
    [
        ("Answer: [1, 3]", [1, 3]),
        ("The relevant products are 2, 4 and 6.", [2, 4, 6]),
        ("1. Product 2\n2. Product 5\n3. Product 7", [2, 5, 7]),
        ("- 4: trail boot\n- 2: Gore-Tex boot", [4, 2]),
        ('```json\n{"answer": [6, 2, 2, 9]}\n```', [6, 2]),  # repeats and out-of-range dropped
        ("Output: 3, 1, 2, 5", [3, 1, 2]),
    ],
)
def test_retrieval(response, expected):
    e = flex("retrieval", response, RET_PROMPT)
    assert e.value == expected and not e.failed


@pytest.mark.parametrize(
    "response, expected",
    [
        ("4, 2, 1, 3, 5", [4, 2, 1, 3, 5]),
        ("Ranking: 4 > 2 > 1 > 3 > 5", [4, 2, 1, 3, 5]),
        ("[2, 2, 1]", [2, 1]),  # a repeat is dropped, not fatal
        ("1. Candidate 3\n2. Candidate 1\n3. Candidate 2", [3, 1, 2]),
    ],
)
def test_ranking(response, expected):
    e = flex("ranking", response, RANK_PROMPT)
    assert e.value == expected and not e.failed


@pytest.mark.parametrize(
    "response, expected",
    [
        ("['Sony', 'Bose']", ["Sony", "Bose"]),
        ('Entities: ["water bottle", "lunch box"]', ["water bottle", "lunch box"]),
        ('The brands are "Sony" and "Bose".', ["Sony", "Bose"]),
        ("- Sony\n- Bose\n- sony", ["Sony", "Bose"]),
        ("Output: 5.5 oz.", ["5.5 oz."]),
        ('["42\\""]', ['42"']),
        ("None", []),
    ],
)
def test_ner(response, expected):
    e = flex("named_entity_recognition", response)
    assert e.value == expected
    assert e.failed == (expected == [])


def test_generation_strips_role_tags_and_prefix():
    e = flex("generation", "<|im_start|>assistant\nAnswer: A glass teapot.<|im_end|>")
    assert e.value == "A glass teapot." and not e.failed
    assert flex("generation", "same\nsame\nsame").value == "same"
    assert flex("generation", "g/m²").value == "g/m²"  # no Unicode folding of free text
    assert flex("generation", "   ").failed


def test_classification_with_and_without_labels():
    labels = ["Positive", "Negative", "Neutral"]
    assert flex("classification", "The sentiment is **negative**.", labels=labels).value == "Negative"
    assert (
        flex("classification", "Positive, though not without flaws (negative: noise)", labels=labels).value
        == "Positive"
    )
    e = flex("classification", "Answer: Mixed", labels=labels)
    assert normalize_label(e.value) == "mixed" and not e.failed
    assert flex("classification", "", labels=labels).failed


def test_count_candidates():
    assert count_candidates(MC_PROMPT) == 4
    assert count_candidates(RANK_PROMPT) == 5
    assert count_candidates("Rate it on a scale of 1 to 5.\n1.5 L bottles\nOutput:") is None
    assert count_candidates("no options") is None


def test_normalize_label():
    assert normalize_label(" : Positive.\n") == "positive"
    assert normalize_label("a) Yes") == "yes"
    assert normalize_label("'Home & Kitchen'") == "home & kitchen"
    assert normalize_label("1") == "1"
