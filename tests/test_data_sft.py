"""shop-eval data sft: chat rows whose answers the official parser reads back as the truth; a seeded split
stratified by task that keeps shared content on one side; mixing weights; bad rows reported."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shop_eval.cli import main
from shop_eval.data.sft import apply_weights, build_sft, content_groups, parse_weights, stratified_split, to_chat
from shop_eval.extract import official_extract
from shop_eval.loaders import load
from shop_eval.prompts import SYSTEM_PROMPT
from shop_eval.records import Record

# one hand-written example per task type, with the value the official parser must read back
CASES = [
    (dict(task_type="multiple-choice", metric="accuracy", output_field=2), "2", 2),
    (dict(task_type="retrieval", metric="hit rate@3", output_field=[6, 9, 15]), "6, 9, 15", [6, 9, 15]),
    # weights per candidate in prompt order: candidate 4 best, then 2, 1, 3
    (dict(task_type="ranking", metric="ndcg", output_field=[1.0, 2.0, 0.0, 3.0]), "4, 2, 1, 3", [4, 2, 1, 3]),
    (
        dict(task_type="named_entity_recognition", metric="micro f1", output_field=["Nike", "running, trail"]),
        '["Nike", "running, trail"]',
        ["Nike", "running, trail"],
    ),
    (
        dict(task_type="generation", metric="rougel", output_field="A quiet kettle."),
        "A quiet kettle.",
        "A quiet kettle.",
    ),
    (dict(task_type="classification", metric="accuracy", output_field="Positive"), "Positive", "Positive"),
]


def make(prompt: str, task: str = "t", **kw) -> Record:
    kw = {"task_type": "generation", "metric": "rougel", "output_field": "ok", **kw}
    return Record(input_field=prompt, task_name=task, **kw)


@pytest.mark.parametrize(("fields", "answer", "parsed"), CASES, ids=[c[0]["task_type"] for c in CASES])
def test_chat_row_and_official_round_trip(fields, answer, parsed):
    r = make("Question?\nAnswer: ", "x", **fields)
    row = to_chat(r)
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][0]["content"] == SYSTEM_PROMPT
    assert row["messages"][1]["content"] == "Question?\nAnswer: "
    assert row["messages"][2]["content"] == answer
    assert official_extract(r.task_type, answer) == parsed
    assert (row["task_type"], row["task_name"]) == (r.task_type, "x")


def test_round_trip_on_fixture_records(fixtures_dir):
    from shop_eval.prompts import ranking_order

    for r in load(fixtures_dir / "shopbench_dev.jsonl"):
        got = official_extract(r.task_type, to_chat(r)["messages"][2]["content"])
        want = {"ranking": lambda t: ranking_order(t), "retrieval": lambda t: t[:3]}.get(r.task_type, lambda t: t)(
            r.output_field
        )
        if r.task_type == "generation" and isinstance(want, list):
            want = want[0]
        assert got == want, r


def test_stratified_split_counts_and_seed():
    records = [make(f"prompt {t} number {i}", task=t) for t, n in (("a", 100), ("b", 50), ("c", 10)) for i in range(n)]
    train, val = stratified_split(records, 0.1, seed=0)
    assert sorted(train + val) == list(range(len(records)))
    assert Counter(records[i].task_name for i in val) == {"a": 10, "b": 5, "c": 1}
    assert stratified_split(records, 0.1, seed=0) == (train, val)
    assert stratified_split(records, 0.1, seed=1)[1] != val
    assert stratified_split(records, 0.0, seed=0) == (list(range(len(records))), [])


def test_split_keeps_shared_content_on_one_side():
    review = "the vacuum picks up pet hair on carpet well but the cord is short and the bin is small"
    paraphrases = [
        make(f"Summarise this review. {review}", "s"),
        make(f"Give a title for the review below: {review}", "s"),
        make(f"Review: {review}\nWrite a short summary.", "s"),
    ]
    others = [make(f"unrelated prompt number {i}", "s") for i in range(27)]
    records = paraphrases + others
    groups = content_groups(records)
    assert groups[0] == groups[1] == groups[2] and len(set(groups[3:])) == 27
    for seed in range(10):
        train, val = stratified_split(records, 0.1, seed)
        sides = {0 in val, 1 in val, 2 in val}
        assert len(sides) == 1  # never split across train and validation
    # a prompt-only grouping would split the paraphrases
    assert len(set(stratified_split(records, 0.1, 0, group_by="prompt")[1])) == 3


def test_weights():
    assert parse_weights(["generation=0.5", "ranking=2"]) == {"generation": 0.5, "ranking": 2.0}
    for bad in ("generation", "gen=1", "ranking=x", "ranking=-1"):
        with pytest.raises(ValueError):
            parse_weights([bad])
    records = [make(f"g{i}") for i in range(10)] + [
        make(f"m{i}", task="m", task_type="multiple-choice", metric="accuracy", output_field=1) for i in range(4)
    ]
    idx = list(range(14))
    out = apply_weights(idx, records, {"generation": 0.5, "multiple-choice": 2.5}, seed=0)
    c = Counter(records[i].task_type for i in out)
    assert c == {"generation": 5, "multiple-choice": 10}
    assert len(set(i for i in out if i < 10)) == 5  # sampled without replacement
    assert Counter(i for i in out if i >= 10).most_common(1)[0][1] == 3  # two whole copies + a sample of 2
    assert all(i >= 10 for i in apply_weights(idx, records, {"generation": 0}, seed=0))


def test_build_sft_report():
    records = [make(f"p{i} about item {i}", task="a") for i in range(50)]
    train, val, rep = build_sft(records, val_fraction=0.1, weights={"generation": 2}, seed=3)
    assert (len(train), len(val)) == (90, 5)
    assert rep["train_by_type"] == {"generation": 90} and rep["validation_by_task"] == {"a": 5}
    val_prompts = {r["messages"][1]["content"] for r in val}
    assert not val_prompts & {r["messages"][1]["content"] for r in train}


def test_cli_sft_reports_bad_rows_with_line(tmp_path, fixtures_dir):
    data = tmp_path / "train.jsonl"
    good = make("Which kettle is cordless?").model_dump()
    bad = dict(good, task_type="multiple-choice", metric="accuracy", output_field="not an index")
    data.write_text("\n".join(json.dumps(x) for x in (good, bad, good | {"input_field": "another"})) + "\n")
    out = tmp_path / "sft"
    assert main(["data", "sft", str(data), "--out", str(out), "--val-fraction", "0"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rows_read"] == 3 and report["bad_rows"] == 1 and report["train"] == 2
    assert "line 2" in report["bad_row_examples"][0] and "output_field" in report["bad_row_examples"][0]
    assert len((out / "train.jsonl").read_text().splitlines()) == 2
    # --strict stops on the bad row, and writes nothing
    assert main(["data", "sft", str(data), "--out", str(tmp_path / "strict"), "--strict"]) == 2
    assert not (tmp_path / "strict").exists()
    assert main(["data", "sft", str(data), "--out", str(tmp_path / "w"), "--weight", "gen=2"]) == 2


def test_real_ec_guide_round_trip_and_split(ec_guide_dir):
    """All of EC-Guide: every answer reads back through the official parser as the protocol reads the truth."""
    from shop_eval.prompts import ranking_order

    records = load(ec_guide_dir, skip_invalid=True)
    assert len(records) > 50_000
    for r in records:
        got = official_extract(r.task_type, to_chat(r)["messages"][2]["content"])
        t = r.output_field
        want = {
            "ranking": ranking_order(t) if r.task_type == "ranking" else None,
            "retrieval": t[:3] if r.task_type == "retrieval" else None,  # the parser reads three
            "generation": (t[0] if isinstance(t, list) else t).strip() if r.task_type == "generation" else None,
            "classification": t.strip() if r.task_type == "classification" else None,
        }.get(r.task_type, t)
        assert got == want, r
