"""shop-eval data corpus: clean-up, filters, exact + MinHash deduplication, bad rows reported with lines."""

from __future__ import annotations

import json

import pytest

from shop_eval.cli import main
from shop_eval.data.corpus import build_corpus, clean_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<p>Boils in <b>3</b> minutes.</p><p>Safe &amp; quiet.</p>", "Boils in 3 minutes.\n\nSafe & quiet."),
        ("<script>var x = '<b>';</script>Only this", "Only this"),
        ("a\u00a0\u00a0b\t\tc \r\n\r\n\r\n\r\nd", "a b c\n\nd"),
        ("line<br>break<br/>here", "line\nbreak\nhere"),
        ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),  # not tags
        ("ctrl\x00chars\x07gone", "ctrl chars gone"),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_fixture_every_row_accounted_for(fixtures_dir):
    rows, rep = build_corpus(
        [fixtures_dir / "corpus_products.jsonl"], text_fields=("title", "description"), languages=["en"]
    )
    d = rep.to_dict()
    # 13 lines: 4 kept, 6 removed, 3 bad rows (hand-counted from the fixture)
    assert d["rows"] == 13 and d["kept"] == 4 == len(rows)
    assert d["removed_by_reason"] == {
        "empty": 1,  # line 9: only a <br/>
        "too_short": 1,  # line 7: "Ok"
        "language": 1,  # line 10: German
        "exact_duplicate": 2,  # lines 2 and 3 (3 differs only in case, punctuation, spaces)
        "near_duplicate": 1,  # line 5: one word added to line 4
    }
    assert d["rows"] == d["kept"] + d["removed"] + d["bad_rows"]
    assert [b.split(": ", 1)[0].rsplit(":", 1)[1] for b in d["bad_row_examples"]] == ["line 8", "line 11", "line 12"]
    assert rows[0]["text"].startswith("Stainless Steel Electric Kettle 1.7 L\n\nBoils water in three minutes.")
    assert all("<" not in r["text"] and "&amp;" not in r["text"] for r in rows)


def test_without_language_filter_and_near_dup(fixtures_dir):
    rows, rep = build_corpus(
        [fixtures_dir / "corpus_products.jsonl"], text_fields=("title", "description"), near_dup_threshold=None
    )
    assert rep.removed["language"] == 0 and rep.removed["near_duplicate"] == 0
    assert len(rows) == 6  # + the German text and the near-duplicate


def test_json_array_and_text_field(tmp_path):
    data = [{"review": "Great blender, crushes ice in seconds and is easy to clean."}, {"review": ["Too", "short"]}]
    (tmp_path / "reviews.json").write_text(json.dumps(data))
    rows, rep = build_corpus([tmp_path], text_fields=("review",))
    assert rows == [{"text": "Great blender, crushes ice in seconds and is easy to clean."}]
    assert rep.removed["too_short"] == 1


def test_json_array_syntax_error_is_reported(tmp_path):
    (tmp_path / "bad.json").write_text('[{"text": "one two three four five six"},\n {"text": oops}]')
    rows, rep = build_corpus([tmp_path / "bad.json"])
    assert len(rows) == 1
    assert "row 2 (line 2)" in rep.bad_rows[0]


def test_cli_writes_corpus_and_report(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "corpus" / "corpus.jsonl"
    rc = main(
        ["data", "corpus", str(fixtures_dir / "corpus_products.jsonl"), "--text-field", "title",
         "--text-field", "description", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    report = json.loads((tmp_path / "corpus" / "corpus.report.json").read_text())
    assert len(rows) == report["kept"] == 5
    assert report["bad_rows"] == 3
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left nothing behind
