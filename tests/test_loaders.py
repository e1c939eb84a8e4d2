"""Loaders: the three formats, their conversions, and errors that name file, line/row and field."""

from __future__ import annotations

import json
import re

import pytest

from shop_eval.loaders import canonical_task_type, load, load_records
from shop_eval.records import DataError
from shop_eval.task_types.ranking import ordering_to_weights

GOOD = {
    "input_field": "Pick one.\n0. a\n1. b\nAnswer: ",
    "output_field": 1,
    "task_name": "task1",
    "task_type": "multiple-choice",
    "metric": "accuracy",
    "is_multiple_choice": True,
    "track": "t",
}


def _jsonl(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return p


def test_shopbench_fixture(fixtures_dir):
    res = load_records(fixtures_dir / "shopbench_dev.jsonl")
    assert len(res) == 17 and not res.skipped
    assert {r.task_type for r in res.records} == {
        "multiple-choice",
        "retrieval",
        "ranking",
        "named_entity_recognition",
        "generation",
        "classification",
    }
    assert res.origins[0].endswith("shopbench_dev.jsonl:line 1")


def test_official_dev_json_is_json_lines(tmp_path):
    # the kit ships development.json as JSON Lines under a .json name
    p = _jsonl(tmp_path, [GOOD, {**GOOD, "output_field": 0}], name="development.json")
    assert [r.output_field for r in load(p)] == [1, 0]


@pytest.mark.parametrize(
    "row, pattern",
    [
        ('{"input_field": "x", ', r"d\.jsonl:line 2: invalid JSON"),
        ({k: v for k, v in GOOD.items() if k != "output_field"}, r"line 2: field 'output_field': missing"),
        ({**GOOD, "colour": "red"}, r"line 2: field 'colour': unknown field"),
        ({**GOOD, "output_field": "b"}, r"line 2: field 'output_field': expected an int"),
        ({**GOOD, "output_field": True}, r"line 2: field 'output_field': expected an int"),
        (
            {**GOOD, "task_type": "retrieval", "metric": "hit rate@3", "output_field": []},
            r"field 'output_field': expected a non-empty list of int",
        ),
        ({**GOOD, "task_type": "ranking", "metric": "ndcg", "output_field": [1, "x"]}, r"field 'output_field'"),
        (
            {**GOOD, "task_type": "named_entity_recognition", "metric": "micro f1", "output_field": "sony"},
            r"field 'output_field': expected a list of str",
        ),
        ({**GOOD, "metric": "rougel"}, r"line 2: field 'metric': 'rougel' does not fit task_type 'multiple-choice'"),
        ({**GOOD, "task_type": "summarisation"}, r"line 2: field 'task_type'"),
        ({**GOOD, "input_field": 5}, r"line 2: field 'input_field'"),
        ("[1, 2]", r"line 2: expected a JSON object"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, row, pattern):
    p = _jsonl(tmp_path, [GOOD, row, GOOD])
    with pytest.raises(DataError, match=pattern):
        load(p)
    res = load_records(p, skip_invalid=True)
    assert len(res) == 2 and len(res.skipped) == 1
    assert res.report()["skipped"] == 1


def test_non_utf8_names_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(
        json.dumps(GOOD).encode() + b"\n" + json.dumps({**GOOD, "input_field": "caf"}).encode()[:-3] + b'\xe9"}\n'
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:line 2: not UTF-8 \(byte 0xe9"):
        load(p)


def test_json_array_errors_name_row_and_line(tmp_path):
    p = tmp_path / "MCQ" / "X.json"
    p.parent.mkdir()
    good = {k: v for k, v in GOOD.items() if k not in ("task_name", "track", "is_multiple_choice")}
    p.write_text("[\n" + json.dumps(good) + ",\n" + json.dumps({**good, "output_field": [1]}) + "\n]", encoding="utf-8")
    with pytest.raises(DataError, match=r"X\.json:row 2 \(line 3\): field 'output_field'"):
        load(p)
    p.write_text("[\n" + json.dumps(good) + ",\n{broken\n]", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): invalid JSON"):
        load(p)
    res = load_records(p, skip_invalid=True)  # rows before the syntax error are kept
    assert len(res) == 1 and len(res.skipped) == 1


def test_ec_guide_quirks_are_reported_not_dropped(fixtures_dir):
    res = load_records(fixtures_dir / "ec_guide_style")
    names = [r.task_name for r in res.records]
    assert names == [
        "Generation/MIX",
        "Generation/MIX",
        "Generation/MIX#rougel",
        "MCQ/QA",
        "MCQ/QA",
        "MCQ/QA#bool",
        "MCQ/QA#generation",
    ]
    by_name = {r.task_name: r for r in res.records}
    assert by_name["MCQ/QA#bool"].task_type == "classification"
    assert res.records[4].output_field == 2  # digit string read as the int
    quirks = " | ".join(res.quirks)
    for text in (
        "task_type 'generation' in a multiple-choice file",
        "non-official metric 'bool'",
        "truth given as a string",
        "rows with metric 'rougel'",
    ):
        assert text in quirks


def test_alpaca_conversion(fixtures_dir):
    res = load_records(fixtures_dir / "alpaca_seed_style.json")
    recs = {r.task_type: r for r in res.records}
    assert recs["multiple-choice"].output_field == 1
    assert recs["ranking"].output_field == [2.0, 3.0, 1.0, 4.0]  # "4, 2, 1, 3": n - rank + 1
    assert recs["retrieval"].output_field == [1, 4, 5]
    assert recs["named_entity_recognition"].output_field == ["Sony WH-1000XM4"]
    assert recs["generation"].output_field == "A kettle boils water." and recs["generation"].metric == "rougel"
    assert recs["classification"].output_field == ": Positive"
    assert any("'rank' read as 'ranking'" in q for q in res.quirks)


def test_ordering_to_weights_round_trip():
    from shop_eval.prompts import ranking_order

    for order in ([4, 2, 1, 3], [1], [3, 1, 2], [2, 5]):
        w = ordering_to_weights(order)
        assert ranking_order(w)[: len(order)] == order
    assert ordering_to_weights([2, 5]) == [0.0, 2.0, 0.0, 0.0, 1.0]


def test_alpaca_bad_rows(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps([{"instruction": "x", "output": "a, b", "task_type": "rank"}]))
    with pytest.raises(DataError, match=r"a\.json:row 1 \(line 1\): field 'output': ranking truth must be"):
        load(p)
    p.write_text(json.dumps([{"instruction": "x", "output": "1", "task_type": "poetry"}]))
    with pytest.raises(DataError, match=r"field 'task_type': unknown task type 'poetry'"):
        load(p)


@pytest.mark.parametrize(
    "label, expected",
    [
        ("Multiple Choice", "multiple-choice"),
        ("multi-choice", "multiple-choice"),
        ("named entity recognition", "named_entity_recognition"),
        ("Named-Entity-Recognition", "named_entity_recognition"),
        ("rank", "ranking"),
        ("Rankings", "ranking"),
        ("Classification", "classification"),
        ("poem", None),
    ],
)
def test_canonical_task_type(label, expected):
    assert canonical_task_type(label) == expected


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: no such file or folder"):
        load(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="holds no .json"):
        load(tmp_path)


# ---------------------------------------------------------------------------- real data (optional)


def test_real_ec_guide(ec_guide_dir):
    res = load_records(ec_guide_dir, skip_invalid=True)
    assert len(res) + len(res.skipped) == 52422 == res.rows_read
    # five MCQ/SAP truths name an option the prompt does not have (3 of 0-2): rejected, with their place
    assert len(res.skipped) == 5
    assert all("MCQ/SAP.json" in e.source and "not one of the prompt's options [0, 1, 2]" in e.message
               for e in res.skipped)  # fmt: skip
    assert res.positions == sorted(res.positions) and len(set(res.positions)) == len(res)
    assert res.quirks["MCQ/ACR: task_type 'generation' in a multiple-choice file"] == 5828
    assert sum(n for q, n in res.quirks.items() if "'bool'" in q) == 1001


def test_real_seed_testsets(seed_testsets_dir):
    res = load_records(seed_testsets_dir, skip_invalid=True)
    counts = {}
    for r in res.records:
        counts[r.task_type] = counts.get(r.task_type, 0) + 1
    assert set(counts) == {
        "classification",
        "generation",
        "multiple-choice",
        "named_entity_recognition",
        "ranking",
        "retrieval",
    }
    assert len(res) + len(res.skipped) == 58 + 312 + 171 + 227 + 248 + 241  # rows in the six files
    for err in res.skipped:  # whatever is skipped says where and why
        assert re.search(r"seed-testsets/.+\.json:row \d+ \(line \d+\)", str(err))


def test_alpaca_quoted_index_truths_are_read(tmp_path):
    p = tmp_path / "q.json"
    p.write_text(
        json.dumps([{"instruction": "Pick:\n0. a\n1. b\n2. c", "output": '"2"\n', "task_type": "multiple choice"}])
    )
    res = load_records(p)
    assert res.records[0].output_field == 2
    assert any("quoted multiple-choice truth" in q for q in res.quirks)
