"""Shopping MMLU's data/ folder as the authors ship it (tests/fixtures/shoppingmmlu*/, written by hand): every
layout read into records (task, type, metric, skill as track), the choices cell read safely, bad rows named by
file, line and column, `shop-eval convert` / `score` on the folder with the three protocols' numbers computed by
hand."""

from __future__ import annotations

import json

import pytest

from shop_eval.cli import main
from shop_eval.errors import DataError
from shop_eval.loaders import load_records
from shop_eval.shoppingmmlu import generation_metric, render_mc, skill_of

#: one response per row of tests/fixtures/shoppingmmlu/data, in load order (files sorted by path)
RESPONSES = [
    "Navy blue",  # generation/attribute_value_extraction (rougel): exact
    "steel",  # ... "stainless steel": LCS 1, P 1, R 1/2 -> 2/3
    "赤い木製の椅子",  # generation/product_title_translation_JP (jp-bleu): exact
    "0",  # multiple_choice/attribute_synonym: truth 0
    "\n2",  # truth 2: the kit strips the newline, the authors do not
    "1",  # truth 0
    "4",  # multiple_choice/review_rating_prediction: truth 4 (a rating, no options)
    "5",  # truth 1
    "sony",  # named_entity_recognition: ["sony"]
    "['usb cable', 'wall charger']",  # ["usb cable", "wall charger"]: a list literal only the kit reads
    "2, 1, 3",  # ranking [0.1, 1.0, 0.0]: the ideal order
    "1, 2",  # ranking [1.0, 0.01]: the ideal order
    "1, 3",  # retrieval [1, 3]
    "[1]",  # retrieval [1]: the kit cleans the brackets, the authors' int("[1]") fails
]
ROUGE2 = 2 * 1 * 0.5 / 1.5
TASKS = {
    "official": {
        "attribute_value_extraction": (1 + ROUGE2) / 2,
        "product_title_translation_JP": 1.0,
        "attribute_synonym": 2 / 3,
        "review_rating_prediction": 0.5,
        "query_named_entity_recognition": 1.0,  # pooled tp 3, fp 0, fn 0
        "query_product_ranking": 1.0,
        "product_keyphrase_retrieval": 1.0,
    },
    "shoppingmmlu": {
        "attribute_value_extraction": (1 + ROUGE2) / 2,
        "product_title_translation_JP": 1.0,
        "attribute_synonym": 1 / 3,
        "review_rating_prediction": 0.5,
        "query_named_entity_recognition": 1 / 3,  # tp 1, fp 2, fn 2: P = R = 1/3
        "query_product_ranking": 1.0,
        "product_keyphrase_retrieval": 0.5,
    },
}
SKILLS = {
    "skill1_concept": ["attribute_value_extraction", "attribute_synonym", "query_named_entity_recognition",
                       "product_keyphrase_retrieval"],
    "skill3_behavior": ["review_rating_prediction", "query_product_ranking"],
    "skill4_multilingual": ["product_title_translation_JP"],
}  # fmt: skip


def test_every_layout_becomes_records(fixtures_dir):
    res = load_records(fixtures_dir / "shoppingmmlu" / "data")
    by_task = {}
    for r in res.records:
        by_task.setdefault(r.task_name, set()).add((r.task_type, r.metric, r.track))
    assert by_task == {
        "attribute_value_extraction": {("generation", "rougel", "skill1_concept")},
        "product_title_translation_JP": {("generation", "jp-bleu", "skill4_multilingual")},
        "attribute_synonym": {("multiple-choice", "accuracy", "skill1_concept")},
        "review_rating_prediction": {("multiple-choice", "accuracy", "skill3_behavior")},
        "query_named_entity_recognition": {("named_entity_recognition", "micro f1", "skill1_concept")},
        "query_product_ranking": {("ranking", "ndcg", "skill3_behavior")},
        "product_keyphrase_retrieval": {("retrieval", "hit rate@3", "skill1_concept")},
    }
    assert len(res.records) == len(RESPONSES) and not res.skipped


def test_multiple_choice_rendering_and_the_choices_cell(fixtures_dir):
    recs = load_records(fixtures_dir / "shoppingmmlu" / "data" / "multiple_choice").records
    syn = [r for r in recs if r.task_name == "attribute_synonym"]
    # quotes and commas inside the choices survive; the authors' rendering, byte for byte
    assert syn[0].input_field == (
        'Which phrase means the same as "water resistant" for a watch?\n0. splash-proof, up to 3 bar\n'
        "1. it's 'waterproof' (100 m)\n2. magnetic\n3. shock absorbing\nAnswer: "
    )
    rating = [r for r in recs if r.task_name == "review_rating_prediction"]
    assert rating[0].input_field.endswith("give?\nAnswer: ") and "\n0. " not in rating[0].input_field
    assert [r.output_field for r in rating] == [4, 1]
    assert render_mc("x", "Q?", ["a", "b", "c", "d", "e"]) == "Q?\n0. a\n1. b\n2. c\n3. d\nAnswer: "


def test_choices_cell_is_never_executed(tmp_path):
    folder = tmp_path / "data" / "multiple_choice"
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    (folder / "evil_dataset.csv").write_text(
        f"question,choices,answer\n\"Q?\",\"__import__('pathlib').Path('{marker}').touch()\",0\n"
    )
    with pytest.raises(DataError, match=r"evil_dataset\.csv:line 2: field 'choices': not a Python list literal"):
        load_records(tmp_path / "data")
    assert not marker.exists()


def test_a_bad_row_is_named_or_counted(fixtures_dir):
    bad = fixtures_dir / "shoppingmmlu_bad" / "data"
    with pytest.raises(DataError, match=r"commonsense_dataset\.csv:line 3: field 'choices'"):
        load_records(bad)
    res = load_records(bad, skip_invalid=True)
    assert len(res.records) == 2 and len(res.skipped) == 1 and res.rows_read == 3
    assert res.positions == [0, 2]


def test_skill_files_name_the_skills(fixtures_dir):
    res = load_records(fixtures_dir / "shoppingmmlu_skills" / "data")
    assert [(r.task_name, r.track, r.metric) for r in res.records] == [
        ("attribute_synonym", "skill1_concept", "accuracy"),
        ("query_named_entity_recognition", "skill1_concept", "micro f1"),
        ("product_title_translation", "skill4_multilingual", "jp-bleu"),
        ("product_title_translation", "skill4_multilingual", "bleu"),
    ]


def test_generation_metric_and_skill_mapping_follow_the_documented_rules():
    assert generation_metric("attribute_value_extraction") == "rougel"
    assert generation_metric("product_title_translation_JP") == "jp-bleu"
    assert generation_metric("translation_DE") == "bleu"
    assert generation_metric("multilingual_explain") == "multilingual-sent-transformer"
    assert generation_metric("pt_name_explain") == "sent-transformer"
    assert skill_of("asin_compatibility") == "skill2_reasoning"
    assert skill_of("query_title_translation_ES") == "skill4_multilingual"
    assert skill_of("some_new_task") == "unassigned"


@pytest.fixture(scope="module")
def scored(fixtures_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("smmlu")
    preds = tmp / "preds.jsonl"
    preds.write_text("".join(json.dumps({"response": r}, ensure_ascii=False) + "\n" for r in RESPONSES))
    out = tmp / "result.json"
    assert main(["score", str(fixtures_dir / "shoppingmmlu" / "data"), str(preds), "--out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("protocol", ["official", "shoppingmmlu"])
def test_score_the_folder_per_task_and_skill(scored, protocol):
    r = scored["protocols"][protocol]
    for task, score in TASKS[protocol].items():
        assert r["tasks"][task]["score"] == pytest.approx(score, abs=1e-12), task
    for skill, tasks in SKILLS.items():
        expected = sum(TASKS[protocol][t] for t in tasks) / len(tasks)
        assert r["tracks"][skill]["score"] == pytest.approx(expected, abs=1e-12), skill
    assert set(r["tracks"]) == set(SKILLS)
    assert r["task_types"]["classification"]["absent"] is True


def test_convert_writes_shopbench_jsonl(fixtures_dir, tmp_path):
    out = tmp_path / "smmlu.jsonl"
    assert main(["convert", str(fixtures_dir / "shoppingmmlu" / "data"), str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(RESPONSES)
    assert {r["track"] for r in rows} == set(SKILLS)
    # the converted file reads back to the same records
    again = load_records(out).records
    assert [r.model_dump() for r in again] == rows
