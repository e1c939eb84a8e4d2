"""Sample data: deterministic in the seed, valid records the loaders accept, disjoint train/test splits."""

from __future__ import annotations

import json
from collections import Counter

from shop_eval.loaders import load_records
from shop_eval.prompts import SYSTEM_PROMPT, format_answer
from shop_eval.records import TASK_TYPES, Record
from shop_eval.sample_data import (
    CATEGORIES,
    TASK_NAMES,
    build_sample_data,
    catalogue,
    corpus_texts,
    split_products,
)


def _visible_relevance(prompt: str) -> list[float]:
    """Relevance recomputed from what the prompt shows: the query's color and product word against each
    candidate title (1 both, 0.1 the product only, 0.01 the color only, else 0)."""
    query = prompt.split('searches for "', 1)[1].split('"', 1)[0]
    color, noun = query.split(" ", 1)
    cat = next(c for c, (_, nouns) in CATEGORIES.items() if nouns[0] == noun)
    out = []
    for line in prompt.splitlines():
        if line[:1].isdigit():
            title = line.split(". ", 1)[1]
            same_cat = any(title.endswith(" " + n) for n in CATEGORIES[cat][1])
            same_color = f" {color} " in title
            out.append(1.0 if same_cat and same_color else 0.1 if same_cat else 0.01 if same_color else 0.0)
    return out


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    build_sample_data(a, seed=3, preset="small")
    build_sample_data(b, seed=3, preset="small")
    build_sample_data(c, seed=4, preset="small")
    for name in ("corpus.jsonl", "train.jsonl", "test.jsonl", "sft_train.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
        assert (a / name).read_bytes() != (c / name).read_bytes(), name


def test_records_valid_loadable_all_six_types(tmp_path):
    info = build_sample_data(tmp_path, seed=0, preset="small")
    for split, n in (("train", info["n_train"]), ("test", info["n_test"])):
        res = load_records(tmp_path / f"{split}.jsonl")  # the loaders' own auto-detection and validation
        assert not res.skipped and not res.quirks
        counts = Counter(r.task_type for r in res.records)
        assert counts == {t: n for t in TASK_TYPES}
        assert {r.task_name for r in res.records} == set(TASK_NAMES.values())
        for r in res.records:
            assert r.is_multiple_choice == (r.task_type == "multiple-choice")
            if r.task_type == "named_entity_recognition":  # entities appear verbatim in the text
                assert all(e in r.input_field for e in r.output_field)
            if r.task_type == "ranking":
                assert len(r.output_field) == 5  # the official ranking parser keeps values <= 5
                assert _visible_relevance(r.input_field) == r.output_field
            if r.task_type == "retrieval":
                assert 1 <= len(r.output_field) <= 3 and max(r.output_field) <= 6
                rel = _visible_relevance(r.input_field)
                assert r.output_field == [i for i, w in enumerate(rel, 1) if w == 1.0]


def test_splits_disjoint_in_products_and_prompts(tmp_path):
    build_sample_data(tmp_path, seed=0, preset="demo")
    train, test = _lines(tmp_path / "train.jsonl"), _lines(tmp_path / "test.jsonl")
    assert not {r["input_field"] for r in train} & {r["input_field"] for r in test}
    products = catalogue(0, 400)
    train_p, test_p = split_products(products, 0)
    assert not {p.pid for p in train_p} & {p.pid for p in test_p}
    assert len({p.title for p in products}) == len(products)
    train_text = "\n".join(r["input_field"] for r in train)
    corpus_text = (tmp_path / "corpus.jsonl").read_text(encoding="utf-8")
    # no held-out product's title appears in any train prompt or in the corpus
    for p in test_p:
        assert p.title not in train_text and p.title not in corpus_text, p.title
    # and every test prompt is about held-out products only
    test_titles = {p.title for p in test_p}
    for r in test:
        if r["task_type"] in ("multiple-choice", "retrieval", "ranking"):
            named = [line.split(". ", 1)[1] for line in r["input_field"].splitlines() if line[:1].isdigit()]
            named = [n for n in named if n not in ("Electronics", "Kitchen", "Shoes", "Bags", "Home", "Sports")]
            assert set(named) <= test_titles


def test_sft_rows_are_protocol_chat(tmp_path):
    build_sample_data(tmp_path, seed=0, preset="small")
    train, chat = _lines(tmp_path / "train.jsonl"), _lines(tmp_path / "sft_train.jsonl")
    assert len(train) == len(chat)
    for row, c in zip(train, chat, strict=True):
        roles = [m["role"] for m in c["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert c["messages"][0]["content"] == SYSTEM_PROMPT
        assert c["messages"][1]["content"] == row["input_field"]
        assert c["messages"][2]["content"] == format_answer(Record.model_validate(row))


def test_corpus_is_text_about_train_products():
    products = catalogue(0, 50)
    texts = corpus_texts(products, 0)
    assert len(texts) == 3 * len(products)
    assert all(isinstance(t, str) and len(t) > 20 for t in texts)
    assert any(t.startswith("Review of") for t in texts) and any(t.startswith("Q:") for t in texts)
