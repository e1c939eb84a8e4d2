"""Decontamination: normalised exact match and 13-gram overlap; instruction boilerplate ignored; the seed's
mistake (training on the examples it is scored on) caught end to end."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from shop_eval.cli import main
from shop_eval.decontam import build_index, decontaminate, normalize, tokens
from shop_eval.loaders import load
from shop_eval.records import Record

REVIEW = (
    "The blender crushed ice for smoothies in under a minute, but the lid leaked twice "
    "and the motor smelled hot after ten minutes of use."
)


def rec(prompt: str, task: str = "reviews") -> Record:
    return Record(input_field=prompt, output_field="x", task_name=task, task_type="generation", metric="rougel")


def test_normalize():
    assert normalize("  Ｆｕｌｌ-width\tTEXT,  and   “quotes”!\n") == "full width text and quotes"
    assert tokens("Hello, world!") == ["hello", "world"]


def test_cjk_characters_are_words():
    assert tokens("防水 スマホケース, iPhone15用") == ["防", "水", "ス", "マ", "ホ", "ケ", "ー", "ス", "iphone15", "用"]
    title = "ワイヤレスイヤホンノイズキャンセリング長時間再生"  # 24 characters, no spaces
    index = build_index([f"この商品のタイトルを英語に翻訳してください: {title}"], name="jp")
    assert index.match(f"Translate: {title[:13]}") == "13-gram jp"
    assert index.match(f"Translate: {title[:12]}") is None


def test_exact_match_after_normalisation():
    index = build_index([rec("Which is a fruit?\n0. chair\n1. apple\nAnswer: ", "mc")], name="dev")
    assert index.match("which is a FRUIT?  0) chair 1) apple. answer:") == "exact dev/mc"
    assert index.match("Which is a vegetable?\n0. chair\n1. apple\nAnswer: ") is None
    assert index.match("") is None


def test_13gram_overlap_and_its_length():
    index = build_index([rec(f"Summarise this review: {REVIEW}")], name="dev")
    words = REVIEW.split()
    # the review pasted under another instruction: a 13-word run is shared
    assert index.match("Write a title for: " + " ".join(words[3:16])) == "13-gram dev/reviews"
    # 12 shared words are not enough
    assert index.match("Write a title for: " + " ".join(words[3:15])) is None
    assert build_index([REVIEW], n=8).match(" ".join(words[:8])) == "8-gram"


def test_strings_and_dicts_are_accepted():
    index = build_index([REVIEW, {"instruction": "Rate it", "input": "5 stars, works well"}])
    assert index.match(REVIEW.upper()).startswith("exact")
    assert index.match("Rate it\n5 stars, works well") == "exact"
    chat = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": REVIEW}]}
    assert index.find(REVIEW).kind == "exact" and decontaminate([chat], {"e": [REVIEW]})[2]["removed"] == 1


def test_instruction_boilerplate_is_not_contamination():
    """Eleven eval prompts share a long instruction; a training prompt with the same instruction but its
    own product is kept — unless boilerplate filtering is turned off, which would flag it."""
    instruction = (
        "You are a helpful shop assistant. Read the product title below and extract every phrase that names "
        "the brand of the product, then list them."
    )
    evals = [rec(f"{instruction}\nTitle: product number {i} by maker {i}") for i in range(11)]
    train = [rec(f"{instruction}\nTitle: a completely different cordless drill")]
    kept, removed, report = decontaminate(train, {"dev": evals})
    assert len(kept) == 1 and not removed
    assert report["template_ngrams_ignored"]["eval_side"] > 0
    kept, removed, _ = decontaminate(train, {"dev": evals}, template_df=None)
    assert len(removed) == 1 and str(removed[0][1]) == "13-gram dev/reviews"


def test_train_side_boilerplate_is_ignored():
    instruction = (
        "Please answer the following question about this product and give only the answer without any explanation"
    )
    evals = [rec(f"{instruction}: is the red kettle cordless?")]
    train = [rec(f"{instruction}: question {i} about item {i}?") for i in range(5)]
    assert len(decontaminate(train, {"dev": evals}, train_template_df=3)[0]) == 5
    assert len(decontaminate(train, {"dev": evals}, train_template_df=None)[1]) == 5


def test_report_counts_per_set_and_task():
    seed = [rec("Is the red kettle cordless? Answer yes or no.", "mc"), rec(REVIEW, "gen")]
    other = [rec("What colour is the blue lamp shade that ships in a box?", "mc")]
    train = [rec(REVIEW.lower()), rec("Is the red kettle cordless? Answer yes or no."), rec("unrelated prompt")]
    kept, removed, report = decontaminate(train, {"seed": seed, "other": other})
    assert [r.input_field for r in kept] == ["unrelated prompt"]
    s = report["eval_sets"]["seed"]
    assert s["train_removed"] == 2 and s["by_task"] == {"gen": 1, "mc": 1} and s["by_kind"] == {"exact": 2}
    assert s["eval_examples_found"] == 2 and s["eval_fraction_found"] == 1.0
    assert report["eval_sets"]["other"]["train_removed"] == 0
    assert (report["train"], report["kept"], report["removed"]) == (3, 1, 2)


def test_eval_examples_found_counts_every_overlapped_example():
    a = "the red kettle has a cordless base and boils a full litre of water in under four minutes flat"
    b = "this trail shoe has a rock plate and a grippy outsole that holds on wet stone and loose gravel"
    evals = [rec(a, "x"), rec(b, "y"), rec("never seen in training at all", "z")]
    train = [rec(f"Compare: {a} versus {b}")]  # one training row holding two evaluation examples
    _, removed, report = decontaminate(train, {"dev": evals})
    s = report["eval_sets"]["dev"]
    assert len(removed) == 1 and s["train_removed"] == 1
    assert s["eval_examples_found"] == 2 and s["eval_fraction_found"] == round(2 / 3, 4)


words = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8), min_size=1, max_size=30
)


@settings(max_examples=60, deadline=None)
@given(words, st.randoms(use_true_random=False))
def test_property_case_space_punctuation_do_not_hide_a_copy(ws, rnd):
    text = " ".join(ws)
    index = build_index([text])
    noisy = "".join(
        (c.upper() if rnd.random() < 0.5 else c) + (rnd.choice([",", "!", "  ", "\n", ""]) if c == " " else "")
        for c in text
    )
    assert index.match("  " + noisy + " ?") == "exact"


@settings(max_examples=60, deadline=None)
@given(words, words, words)
def test_property_any_13_word_run_is_found(prefix, middle, suffix):
    source = " ".join(prefix + middle + suffix)
    index = build_index([source])
    toks = tokens(source)
    if len(toks) >= 13:
        assert index.match("something else " + " ".join(toks[-13:])) is not None
    other = " ".join(w + "q" for w in toks)  # every word changed: nothing shared
    assert index.match(other) is None


def test_seed_mistake_caught_end_to_end(fixtures_dir, tmp_path, capsys):
    """The seed project trained on its own test set.  Build SFT data from the dev examples plus other
    data, decontaminate against the dev set: exactly the dev-derived rows go, with a per-task report."""
    dev = fixtures_dir / "shopbench_dev.jsonl"
    other = tmp_path / "other.jsonl"
    other_records = [
        rec(f"Write a one-line title for a review of product {i}: it arrived quickly and works as described {i}.", "t")
        for i in range(8)
    ]
    other.write_text("".join(r.model_dump_json() + "\n" for r in other_records))
    assert main(["data", "sft", str(dev), str(other), "--out", str(tmp_path / "sft"), "--val-fraction", "0"]) == 0
    clean = tmp_path / "clean.jsonl"
    rc = main(["data", "decontam", str(tmp_path / "sft" / "train.jsonl"), "--eval", f"dev={dev}", "--out", str(clean)])
    assert rc == 0
    n_dev = len(load(dev))
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert report["train"] == n_dev + 8 and report["removed"] == n_dev and report["kept"] == 8
    assert report["eval_sets"]["dev"]["eval_examples_found"] == n_dev
    assert sum(report["eval_sets"]["dev"]["by_task"].values()) == n_dev
    kept_rows = [json.loads(line) for line in clean.read_text().splitlines()]
    assert {r["task_name"] for r in kept_rows} == {"t"}


def test_seed_mistake_on_the_real_seed_testsets(seed_testsets_dir, tmp_path):
    """The real case: SFT data built from the seed's own test sets is removed entirely."""
    sft = tmp_path / "sft"
    assert main(["data", "sft", str(seed_testsets_dir), "--out", str(sft), "--val-fraction", "0"]) == 0
    clean = tmp_path / "clean.jsonl"
    assert (
        main(["data", "decontam", str(sft / "train.jsonl"), "--eval", str(seed_testsets_dir), "--out", str(clean)]) == 0
    )
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert report["train"] > 900 and report["kept"] == 0
    assert report["removed_by_kind"] == {"exact": report["train"]}
    assert set(report["eval_sets"]["seed-testsets"]["by_task"]) == {p.stem for p in seed_testsets_dir.glob("*.json")}


def test_cli_keeps_chat_rows_as_they_are_and_reports_bad_lines(tmp_path):
    def chat(prompt):
        return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": "1"}], "extra": 7}

    train = tmp_path / "train.jsonl"
    rows = [chat(REVIEW), chat("A prompt about garden hoses and their brass fittings.")]
    train.write_text(json.dumps(rows[0]) + "\n{broken\n" + json.dumps(rows[1]) + "\n")
    evals = tmp_path / "dev.jsonl"
    evals.write_text(rec(REVIEW, "gen").model_dump_json() + "\n")
    out, removed = tmp_path / "kept.jsonl", tmp_path / "removed.jsonl"
    assert (
        main(["data", "decontam", str(train), "--eval", str(evals), "--out", str(out), "--removed", str(removed)]) == 0
    )
    assert [json.loads(x) for x in out.read_text().splitlines()] == [rows[1]]  # unchanged, extra field kept
    gone = [json.loads(x) for x in removed.read_text().splitlines()]
    assert gone == [{"match": "exact dev/gen", "row": rows[0]}]
    report = json.loads((tmp_path / "kept.report.json").read_text())
    assert report["bad_rows"] == 1 and "line 2" in report["bad_row_examples"][0]
    assert report["eval_sets"]["dev"]["eval_fraction_found"] == 1.0
