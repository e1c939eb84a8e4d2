"""Decontamination that tells template from content: exact copies, shared content (13-word runs, whole items),
instruction text shared with other items reported apart and kept; the fixtures under fixtures/decontam built like
EC-Guide against the kit's development set; the seed's mistake (training on the examples it is scored on) caught
end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shop_eval.cli import main
from shop_eval.decontam import DecontamIndex, build_index, decontaminate, normalize, tokens
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


def test_template_words_and_content_runs():
    """Three prompts of one task share an instruction: its 5-word runs are template, and so are the first /
    last words that the prompts share ("A product entitled", "Output"); each title is one content run."""
    template = (
        "A product entitled '{}' exists on an online shopping website. Generate an adequate title for the product "
        "when it appears on a(n) German online shopping website.\nOutput: "
    )
    titles = ["Red Kettle 1.7 L", "Blue Lamp Shade with Brass Base", "Oak Desk Organiser, Four Slots"]
    index = build_index([rec(template.format(t), "mt") for t in titles], name="dev")
    assert [index.content_runs(i) for i in range(3)] == [
        ["red kettle 1 7 l"],
        ["blue lamp shade with brass base"],
        ["oak desk organiser four slots"],
    ]
    assert index.template_text(0) == (
        "a product entitled … exists on an online shopping website generate an adequate title for the product when "
        "it appears on a n german online shopping website output"
    )
    # the same template with another product: no content shared (it shares no 13-word run either: None)
    assert index.find(template.format("Green Teapot, 1 L")) is None
    # the 6-word title under another instruction: the whole content run is there
    assert index.match("Translate 'Blue Lamp Shade with Brass Base' into French.") == "item dev/mt"
    # a 5-word title is too short to identify an item (min_item 6) unless min_item allows it
    assert index.match("Translate 'Oak Desk Organiser Four Slots' into French.") is None
    short = build_index([rec(template.format(t), "mt") for t in titles], name="dev", min_item=5)
    assert short.match("Translate 'Oak Desk Organiser Four Slots' into French.") == "item dev/mt"
    # a run must be there whole: a part of it is not the item
    assert index.match("Translate 'Blue Lamp Shade with Brass' into French.") is None


def test_numbers_alone_are_no_item():
    """Numeric options ("0. 12 1. 40 ...") form a content run of 7 words, but a run mostly of numbers does not
    identify an item; a title with a model number and a year does."""
    sums = [rec(f"Solve: {q}. Pick one option from the list\n{o}\nAnswer: ", "acr") for q, o in (
        ("5 + 7", "0. 12\n1. 40\n2. 7\n3. 9"), ("8 * 5", "0. 3\n1. 11\n2. 25\n3. 40"))]  # fmt: skip
    index = build_index(sums, name="dev")
    assert index.content_runs(0) == ["5 7", "12 1 40 2 7 3 9"]
    assert index.find("Which number is the largest?\n0. 12\n1. 40\n2. 7\n3. 9") is None
    words = [rec(f"Solve: {q}. Pick one option from the list\n{o}\nAnswer: ", "w") for q, o in (
        ("fruit", "0. red apple\n1. green pear\n2. ripe fig"), ("sky", "0. sky\n1. six\n2. ten"))]  # fmt: skip
    assert build_index(words, name="dev").match("Fruit?\n0. red apple\n1. green pear\n2. ripe fig") == "item dev/w"
    title = "Hotwheels Pop Culture 2013 Popeye 52 Chevy 1:64"  # 9 words, 4 of them numbers
    index = build_index([rec(f"Query: {title}\nOutput: ", "ner"), rec("Query: lego set\nOutput: ", "ner")], name="dev")
    assert index.content_runs(0) == [normalize(title)]
    assert index.match(f"Is '{title}' a toy? Answer yes or no.") == "item dev/ner"


def test_a_template_needs_two_prompts_of_one_task():
    """With one prompt per task nothing tells the template apart: every word is content."""
    instruction = "Please read the product title below and extract every phrase that names the brand of the product"
    one = [rec(f"{instruction}: Makita angle grinder", "a"), rec(f"{instruction}: Bosch drill", "b")]
    two = [rec(f"{instruction}: Makita angle grinder", "a"), rec(f"{instruction}: Bosch drill", "a")]
    train = rec(f"{instruction}: Dyson fan heater")
    assert str(decontaminate([train], {"dev": one})[1][0][1]) == "13-gram dev/a"
    kept, removed, report = decontaminate([train], {"dev": two})
    assert kept == [train] and not removed and report["template_overlap"] == 1
    assert report["eval_sets"]["dev"]["by_task"]["a"]["train_template_overlap"] == 1
    # the same prompt twice counts once: it does not make its own words template
    assert build_index([one[0], one[0]]).content_runs(0) == [normalize(one[0].input_field)]


def test_same_template_other_item_is_kept_and_reported():
    """Eval prompts of one task share a long instruction; a training prompt with the same instruction and its own
    product is a template overlap: kept and counted apart.  Without the template tests (both off) the plain
    13-gram test removes it."""
    instruction = (
        "You are a helpful shop assistant. Read the product title below and extract every phrase that names "
        "the brand of the product, then list them."
    )
    evals = [rec(f"{instruction}\nTitle: product number {i} by maker {i}", "ner") for i in range(3)]
    train = [rec(f"{instruction}\nTitle: a completely different cordless drill")]
    kept, removed, report = decontaminate(train, {"dev": evals})
    assert len(kept) == 1 and not removed
    assert (report["content_overlap"], report["template_overlap"]) == (0, 1)
    s = report["eval_sets"]["dev"]
    assert (s["eval_examples_found"], s["eval_examples_template_only"], s["eval_fraction_template_only"]) == (0, 3, 1.0)
    ex = report["examples"]["template"][0]
    assert ex["match"] == "template dev/ner" and ex["shared"] == normalize(instruction) + " title"
    kept, removed, report = decontaminate(train, {"dev": evals}, remove_template=True)
    assert not kept and str(removed[0][1]) == "template dev/ner" and report["eval_sets"]["dev"]["train_removed"] == 1
    assert report["eval_sets"]["dev"]["eval_fraction_found"] == 0.0  # removed, but no content was found
    kept, removed, _ = decontaminate(train, {"dev": evals}, template_df=None, template_train_df=None)
    assert len(removed) == 1 and str(removed[0][1]) == "13-gram dev/ner"


def test_train_side_templates_count_distinct_training_prompts():
    """One eval prompt cannot show its template; training prompts that copy the instruction can, once
    ``template_train_df`` distinct prompts hold it (a prompt repeated counts once)."""
    instruction = (
        "Please answer the following question about this product and give only the answer without any explanation"
    )
    evals = [rec(f"{instruction}: is the red kettle cordless?")]
    train = [rec(f"{instruction}: question {i} about item {i}?") for i in range(3)]
    kept, removed, report = decontaminate(train, {"dev": evals}, template_train_df=3)
    assert len(kept) == 3 and report["template_overlap"] == 3 and report["template_kgrams"]["train_side"] > 0
    assert len(decontaminate(train, {"dev": evals}, template_train_df=4)[1]) == 3
    assert len(decontaminate(train, {"dev": evals}, template_train_df=None)[1]) == 3
    repeated = [train[0]] * 3
    assert len(decontaminate(repeated, {"dev": evals}, template_train_df=3)[1]) == 3


def test_settings_are_checked():
    with pytest.raises(ValueError, match="min_item"):
        DecontamIndex(k=5, min_item=4)
    with pytest.raises(ValueError, match="template_df"):
        DecontamIndex(template_df=1)


def test_report_counts_per_set_and_task():
    seed = [rec("Is the red kettle cordless? Answer yes or no.", "mc"), rec(REVIEW, "gen")]
    other = [rec("What colour is the blue lamp shade that ships in a box?", "mc")]
    train = [rec(REVIEW.lower()), rec("Is the red kettle cordless? Answer yes or no."), rec("unrelated prompt")]
    kept, removed, report = decontaminate(train, {"seed": seed, "other": other})
    assert [r.input_field for r in kept] == ["unrelated prompt"]
    s = report["eval_sets"]["seed"]
    assert s["train_removed"] == 2 and s["by_kind"] == {"exact": 2}
    assert {t: v["train_content_overlap"] for t, v in s["by_task"].items()} == {"gen": 1, "mc": 1}
    assert s["eval_examples_found"] == 2 and s["eval_fraction_found"] == 1.0
    assert report["eval_sets"]["other"]["train_removed"] == 0
    assert report["eval_sets"]["other"]["by_task"]["mc"] == {
        "eval_examples": 1, "eval_found": 0, "eval_template_only": 0,
        "train_content_overlap": 0, "train_template_overlap": 0,
    }  # fmt: skip
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
    assert sum(t["train_content_overlap"] for t in report["eval_sets"]["dev"]["by_task"].values()) == n_dev
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
    assert gone == [{"match": "exact dev/gen", "shared": "", "row": rows[0]}]
    report = json.loads((tmp_path / "kept.report.json").read_text())
    assert report["bad_rows"] == 1 and "line 2" in report["bad_row_examples"][0]
    assert report["eval_sets"]["dev"]["eval_fraction_found"] == 1.0


# --------------------------------------------------------------------------- fixtures built like the real case

FIX = Path(__file__).parent / "fixtures" / "decontam"


@pytest.fixture
def fixture_sft(tmp_path) -> Path:
    """``data sft`` on the training fixture, as on EC-Guide: chat rows."""
    assert main(["data", "sft", str(FIX / "train.jsonl"), "--out", str(tmp_path / "sft"), "--val-fraction", "0"]) == 0
    return tmp_path / "sft" / "train.jsonl"


def test_fixture_template_kept_content_removed(fixture_sft, tmp_path):
    """fixtures/decontam: an evaluation set of 11 rows in 4 tasks (2-3 rows per task, one template each: a title
    to adapt, NER on a query, a review's aspect keyphrase, a product's fabric) and 21 training rows:
    (a) 11 rows, each task's template with another item -> kept, template overlaps;
    (b) 5 rows, an evaluation item under another instruction: 3 titles of 10-11 words and a query of 7 words
        (``item``), a review under a title-writing instruction (``13-gram``) -> removed;
    (c) 2 evaluation rows copied verbatim (``exact``) -> removed;
    and 3 rows that share nothing -> kept.  Evaluation rows whose content training holds: 3 titles, 1 query,
    2 reviews, 1 fabric title = 7 of 11; the other 4 share only their template."""
    clean, gone = tmp_path / "clean.jsonl", tmp_path / "removed.jsonl"
    argv = ["data", "decontam", str(fixture_sft), "--eval", f"dev={FIX / 'eval.jsonl'}", "--out", str(clean)]
    assert main([*argv, "--removed", str(gone)]) == 0
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert (report["train"], report["kept"], report["removed"]) == (21, 14, 7)
    assert report["removed_by_kind"] == {"item": 4, "13-gram": 1, "exact": 2}
    assert (report["content_overlap"], report["template_overlap"]) == (7, 11)
    assert report["template_overlap_by_train_task"] == {"EC/aspect": 3, "EC/fabric": 2, "EC/ner": 3, "EC/title": 3}
    assert report["removed_by_train_task"] == {
        "EC/aspect": 1, "EC/count": 1, "EC/query": 1, "EC/review-title": 1, "EC/title": 1, "EC/translate": 2,
    }  # fmt: skip
    dev = report["eval_sets"]["dev"]
    assert (dev["eval_examples"], dev["train_removed"], dev["train_template_overlap"]) == (11, 7, 11)
    assert (dev["eval_examples_found"], dev["eval_fraction_found"]) == (7, 0.6364)
    assert (dev["eval_examples_template_only"], dev["eval_fraction_template_only"]) == (4, 0.3636)
    per_task = {t: [v[k] for k in ("eval_examples", "eval_found", "eval_template_only", "train_content_overlap",
                                   "train_template_overlap")] for t, v in dev["by_task"].items()}  # fmt: skip
    assert per_task == {"aspect": [3, 2, 1, 2, 3], "fabric": [2, 1, 1, 1, 2], "ner": [3, 1, 2, 1, 3],
                        "title": [3, 3, 0, 3, 3]}  # fmt: skip
    kept_tasks = [json.loads(x)["task_name"] for x in clean.read_text().splitlines()]
    assert sorted(set(kept_tasks)) == ["EC/aspect", "EC/describe", "EC/fabric", "EC/mc", "EC/ner", "EC/title"]
    removed = {json.loads(x)["shared"] for x in gone.read_text().splitlines()}
    assert {
        "kelvar soft modelling clay starter pack 12 x 57 g blocks",  # 11 words, under "Translate ... into French"
        "bosch cordless drill 18v with two batteries",  # the NER query, in a query-product question
        "maravé women s linen blend wide leg trousers with pockets beige",
    } <= removed
    content = {e["match"] for e in report["examples"]["content"]}
    assert content == {"exact dev/aspect", "exact dev/title", "item dev/fabric", "item dev/ner", "item dev/title",
                       "13-gram dev/aspect"}  # fmt: skip
    template = report["examples"]["template"]
    assert len(template) == 11  # every row of (a), with the instruction text it shares
    shared = {e["match"]: e["shared"] for e in template}
    assert shared["template dev/title"] == (
        "exists on an online shopping website generate an adequate title for the product when it appears on a n "
        "german online shopping website output"
    )
    assert shared["template dev/fabric"] == (
        "appears on an e commerce website what type of fabric is used in it 0 spandex polyester 1 cotton 2 "
        "microfiber 3 it cannot be inferred answer"
    )
    assert (
        "please extract phrases from the query that correspond to the entity type brand" in shared["template dev/ner"]
    )


def test_fixture_options_remove_template_overlap_and_plain_13grams(fixture_sft, tmp_path):
    """``--remove-template-overlap`` also removes the 11 rows of (a) but finds the same content (7 of 11).  A plain
    13-gram test (no template words) gets both sides wrong: it removes the 11 rows of (a) and misses the 4 items
    of (b) shorter than 13 words (14 removed: 11 + 1 review + 2 copies), and reports all 11 examples found."""
    argv = [
        "data",
        "decontam",
        str(fixture_sft),
        "--eval",
        f"dev={FIX / 'eval.jsonl'}",
        "--out",
        str(tmp_path / "c.jsonl"),
    ]
    assert main([*argv, "--remove-template-overlap"]) == 0
    report = json.loads((tmp_path / "c.report.json").read_text())
    assert (report["kept"], report["removed"], report["removed_by_kind"]["template"]) == (3, 18, 11)
    assert report["eval_sets"]["dev"]["eval_fraction_found"] == 0.6364
    from shop_eval.data.readers import read_eval_prompts, read_train_rows

    train = read_train_rows(str(fixture_sft), "auto")[0]
    evals = read_eval_prompts(FIX / "eval.jsonl")[0]
    _, removed, plain = decontaminate(train, {"dev": evals}, template_df=None, template_train_df=None)
    assert len(removed) == 14 and plain["removed_by_kind"] == {"13-gram": 12, "exact": 2}
    assert plain["template_overlap"] == 0 and plain["eval_sets"]["dev"]["eval_examples_found"] == 11
    assert not {m.kind for _, m in removed} & {"item"}


def test_cli_min_item_below_template_words_is_a_usage_error(tmp_path, capsys):
    argv = [
        "data",
        "decontam",
        str(FIX / "train.jsonl"),
        "--eval",
        str(FIX / "eval.jsonl"),
        "--out",
        str(tmp_path / "o.jsonl"),
    ]
    assert main([*argv, "--min-item-words", "4"]) == 2
    err = capsys.readouterr().err
    assert "--min-item-words (4) must be at least --template-words (5)" in err and "Traceback" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_two_eval_sets_with_one_name_are_a_usage_error(tmp_path, capsys):
    other = tmp_path / "b"
    other.mkdir()
    (other / "eval.jsonl").write_bytes((FIX / "eval.jsonl").read_bytes())
    out = tmp_path / "o.jsonl"
    argv = ["data", "decontam", str(FIX / "train.jsonl"), "--eval", str(FIX / "eval.jsonl"), "--out", str(out)]
    assert main([*argv, "--eval", str(other / "eval.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "the name 'eval' is already used by another --eval" in err and "Traceback" not in err
    assert not out.exists()
    assert main([*argv, "--eval", f"second={other / 'eval.jsonl'}"]) == 0
    report = json.loads((tmp_path / "o.report.json").read_text())
    assert set(report["eval_sets"]) == {"eval", "second"}
