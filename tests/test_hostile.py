"""Every command under bad input, interruption and kills: one line ``error: ...`` naming the file, line, field or
option, exit code 2 (130 for Ctrl-C), no traceback, and the previous outputs byte for byte as they were.

The classes of issue 14, each parametrised over the commands that read or write: bad or empty input, outputs that
cannot be written or that equal an input, option values that cannot work, truths that must be rejected, readers
fed random bytes (hypothesis), SIGINT at every write of a run and SIGKILL at every write (each leaves the
complete old or the complete new set of outputs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop_eval import io as shop_io
from shop_eval.cli import main
from shop_eval.errors import ShopEvalError
from shop_eval.lm_eval_docs import record_to_doc
from shop_eval.loaders import load_records

FIX = Path(__file__).resolve().parent / "fixtures"
KIT, KIT_RESP = FIX / "kit_dev.jsonl", FIX / "kit_dev_responses.jsonl"


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return rc, err


def _snapshot(paths) -> dict[str, bytes | None]:
    return {str(p): (Path(p).read_bytes() if Path(p).is_file() else None) for p in paths}


_TIMING = ("seconds", "per_second", "per_minute", "generated")


def _untimed(snapshot: dict[str, bytes | None]) -> dict:
    """A snapshot with the timings of JSON outputs left out (two runs on the same input differ only there)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not any(t in k for t in _TIMING)}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    out = {}
    for path, data in snapshot.items():
        try:
            out[path] = strip(json.loads(data)) if data is not None and path.endswith(".json") else data
        except ValueError:
            out[path] = data
    return out


def _one_error_line(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def _lm_eval_run(folder: Path, records, responses, stamp: str = "2026-01-01T00-00-00.0") -> Path:
    """A minimal lm-eval run of ``shop_multiple_choice`` (a results file and its samples file)."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = folder / f"samples_shop_multiple_choice_{stamp}.jsonl"
    with samples.open("w", encoding="utf-8") as fh:
        for i, (r, resp) in enumerate(zip(records, responses, strict=True)):
            for filt in ("official", "flexible", "shoppingmmlu"):
                fh.write(json.dumps({"doc_id": i, "doc": record_to_doc(r, row=i), "filter": filt,
                                     "resps": [[resp]]}) + "\n")  # fmt: skip
    from shop_eval.scoring import score_rows

    scored = score_rows(records, responses)
    res = {
        "results": {
            "shop_multiple_choice": {
                f"shop_score,{p}": scored.protocols[p].task_types["multiple-choice"].score for p in scored.protocols
            }
            | {
                f"parse_failure,{p}": scored.protocols[p].task_types["multiple-choice"].parse_failure_rate
                for p in scored.protocols
            }  # fmt: skip
        },
        "n-samples": {"shop_multiple_choice": {"original": len(records), "effective": len(records)}},
        "configs": {"shop_multiple_choice": {"task": "shop_multiple_choice"}},
        "config": {"model": "hf", "model_args": "pretrained=m"},
        "lm_eval_version": "0.4.11",
    }
    results = folder / f"results_{stamp}.json"
    results.write_text(json.dumps(res))
    return results


@pytest.fixture
def env(tmp_path, fixtures_dir):
    """Inputs and one good run of every writing command, so that a bad run can be checked against them."""
    mc = [r for r in load_records(KIT).records if r.task_type == "multiple-choice"]
    run = _lm_eval_run(tmp_path / "run", mc, ["0", "3", "1", "2", "0"])
    e = {
        "tmp": tmp_path,
        "run": run,
        "score": [tmp_path / "out" / "result.json", tmp_path / "out" / "per.jsonl"],
        "sft": [tmp_path / "sft" / n for n in ("train.jsonl", "validation.jsonl", "report.json")],
        "corpus": [tmp_path / "corpus.jsonl", tmp_path / "corpus.report.json"],
        "decontam": [tmp_path / "clean.jsonl", tmp_path / "clean.report.json"],
        "board": [tmp_path / "lb.json", tmp_path / "lb.md"],
        "convert": [tmp_path / "conv.jsonl"],
    }
    assert (
        main(["score", str(KIT), str(KIT_RESP), "--out", str(e["score"][0]), "--per-example", str(e["score"][1])]) == 0
    )
    assert main(["data", "sft", str(fixtures_dir / "ec_guide_style"), "--out", str(tmp_path / "sft")]) == 0
    assert main(["data", "corpus", str(fixtures_dir / "corpus_products.jsonl"), "--text-field", "title",
                 "--text-field", "description", "--out", str(e["corpus"][0])]) == 0  # fmt: skip
    assert main(["data", "decontam", str(e["sft"][0]), "--eval", str(KIT), "--out", str(e["decontam"][0])]) == 0
    assert main(["leaderboard", str(run), "--out", str(e["board"][0]), "--md", str(e["board"][1])]) == 0
    assert main(["convert", str(KIT), str(e["convert"][0])]) == 0
    e["before"] = _snapshot([p for k in ("score", "sft", "corpus", "decontam", "board", "convert") for p in e[k]])
    return e


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return path


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _loop(tmp: Path) -> Path:
    a, b = tmp / "loop_a", tmp / "loop_b"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


# Each case: (name, builder(env) -> argv, text the error line must contain (or None: argparse's usage error)).
BAD_RUNS = [
    # --- bad or empty input
    ("score/empty data", lambda e: ["score", _write(e["tmp"] / "empty.jsonl", ""), KIT_RESP, "--out", e["score"][0]],
     "empty file"),
    ("score/[] data", lambda e: ["score", _write(e["tmp"] / "a.json", "[]"), "truth", "--out", e["score"][0]],
     "no valid rows"),
    ("score/predictions first line a list", lambda e: ["score", KIT, _write(e["tmp"] / "p.jsonl", '["x"]\n' * 19),
                                                       "--out", e["score"][0]], "line 1"),
    ("score/a folder as predictions", lambda e: ["score", KIT, _dir(e["tmp"] / "d"), "--out", e["score"][0]],
     "is a folder"),
    ("score/symlink loop", lambda e: ["score", _loop(e["tmp"]), "truth", "--out", e["score"][0]], "loop_a"),
    ("score/deep nesting", lambda e: ["score", _write(e["tmp"] / "d.jsonl", "[" * 100000 + "]" * 100000 + "\n"),
                                      "truth", "--out", e["score"][0]], "nested deeper"),
    ("score/5000-digit int", lambda e: ["score", _write(e["tmp"] / "i.jsonl", '{"input_field": "q", "output_field": '
                                        + "9" * 5000 + "}\n"), "truth", "--out", e["score"][0]], "4300 digits"),
    ("score/non-UTF-8", lambda e: ["score", _write(e["tmp"] / "b.jsonl", b'{"input_field": "\xe9"}\n'), "truth",
                                   "--out", e["score"][0]], "not UTF-8"),
    ("score/text after the array", lambda e: ["score", _write(e["tmp"] / "t.json", KIT.read_text().split("\n")[0]
                                              .join(["[", "] trailing"])), "truth", "--out", e["score"][0]],
     "after the JSON array"),
    ("score/malformed samples", lambda e: ["score", KIT, _write(e["tmp"] / "samples_x.jsonl", '{"doc": 1, "resps": 2}\n'),
                                           "--out", e["score"][0]], "samples_x.jsonl"),
    ("convert/empty input", lambda e: ["convert", _write(e["tmp"] / "e.jsonl", "\n\n"), e["convert"][0]], "empty file"),
    ("sft/empty file", lambda e: ["data", "sft", _write(e["tmp"] / "e.jsonl", ""), "--out", e["tmp"] / "sft"],
     "no valid rows"),
    ("sft/[]", lambda e: ["data", "sft", _write(e["tmp"] / "e.json", "[]"), "--out", e["tmp"] / "sft"], "no valid rows"),
    ("sft/all bad rows", lambda e: ["data", "sft", _write(e["tmp"] / "bad.jsonl", '{"input_field": 1}\n{"x": 2}\n'),
                                    "--out", e["tmp"] / "sft"], "no valid rows"),
    ("corpus/mistyped text field", lambda e: ["data", "corpus", FIX / "corpus_products.jsonl", "--text-field", "titel",
                                              "--out", e["corpus"][0]], "titel"),
    ("decontam/empty eval", lambda e: ["data", "decontam", e["sft"][0], "--eval", _write(e["tmp"] / "ev.jsonl", "\n"),
                                       "--out", e["decontam"][0]], "no evaluation prompts"),
    ("decontam/eval a loop", lambda e: ["data", "decontam", e["sft"][0], "--eval", _loop(e["tmp"]),
                                        "--out", e["decontam"][0]], "loop_a"),
    ("decontam/non-UTF-8 train", lambda e: ["data", "decontam", _write(e["tmp"] / "tr.jsonl", b'{"text": "\xff"}\n'),
                                            "--eval", KIT, "--out", e["decontam"][0]], "not UTF-8"),
    ("leaderboard/not JSON", lambda e: ["leaderboard", _write(e["tmp"] / "r" / "results_x.json", "{"),
                                        "--out", e["board"][0]], "invalid JSON"),
    ("leaderboard/not a results file", lambda e: ["leaderboard", _write(e["tmp"] / "r" / "results_x.json", "[1]"),
                                                  "--out", e["board"][0]], "not an lm-eval results file"),
    ("leaderboard/results of a string", lambda e: ["leaderboard", _write(e["tmp"] / "r" / "results_x.json",
                                                   '{"results": "x"}'), "--out", e["board"][0]], "results"),
    # --- outputs that cannot be written, or that equal an input
    ("score/out is a folder", lambda e: ["score", KIT, KIT_RESP, "--out", e["tmp"]], "is a folder"),
    ("score/out under a file", lambda e: ["score", KIT, KIT_RESP, "--out", KIT_RESP / "x.json"], "is a file"),
    ("score/out is the predictions", lambda e: ["score", KIT, KIT_RESP, "--out", KIT_RESP], "is an input"),
    ("score/out is the data via a link", lambda e: ["score", KIT, KIT_RESP, "--out", _link(e["tmp"], KIT)],
     "is an input"),
    ("score/per-example is out", lambda e: ["score", KIT, KIT_RESP, "--out", e["score"][0], "--per-example",
                                            e["score"][0]], "same file"),
    ("convert/output is the input", lambda e: ["convert", KIT, KIT], "is an input"),
    ("decontam/out is an eval set", lambda e: ["data", "decontam", e["sft"][0], "--eval", e["sft"][1],
                                               "--out", e["sft"][1]], "is an input"),
    ("decontam/report is out", lambda e: ["data", "decontam", e["sft"][0], "--eval", KIT, "--out", e["decontam"][0],
                                          "--report", e["decontam"][0]], "same file"),
    ("leaderboard/md is out", lambda e: ["leaderboard", e["run"], "--out", e["board"][0], "--md", e["board"][0]],
     "same file"),
    ("leaderboard/png is out", lambda e: ["leaderboard", e["run"], "--out", e["board"][0], "--png", e["board"][0]],
     "same file"),
    ("corpus/out is the input", lambda e: ["data", "corpus", FIX / "corpus_products.jsonl", "--out",
                                           FIX / "corpus_products.jsonl"], "is an input"),
    ("recipes/cp over a file", lambda e: ["recipes", "cp", "sft.yml", e["score"][0]], "exists"),
    ("score/out is a FIFO", lambda e: ["score", KIT, KIT_RESP, "--out", _fifo(e["tmp"] / "fifo")], "not a regular file"),
    ("convert/output is a FIFO", lambda e: ["convert", KIT, _fifo(e["tmp"] / "fifo")], "not a regular file"),
    ("score/empty predictions", lambda e: ["score", KIT, _write(e["tmp"] / "p.jsonl", ""), "--out", e["score"][0]],
     "no predictions"),
    ("score/predictions a number", lambda e: ["score", KIT, _write(e["tmp"] / "p.jsonl", "42\n"), "--out",
                                              e["score"][0]], "line 1"),
    ("leaderboard/a bogus task type in a sample", lambda e: ["leaderboard", _bogus_run(e), "--out", e["board"][0]],
     "task_type"),
    ("tiny-model/corpus not UTF-8", lambda e: ["tiny-model", e["tmp"] / "tm", "--quick", "--corpus",
                                               _write(e["tmp"] / "c.jsonl", b'{"text": "\xff"}\n')], "not UTF-8"),
    # --- options that cannot work (argparse's one-line usage error, exit 2)
    ("sft/--val-fraction 2", lambda e: ["data", "sft", FIX / "ec_guide_style", "--out", e["tmp"] / "sft",
                                        "--val-fraction", "2"], None),
    ("sft/--weight inf", lambda e: ["data", "sft", FIX / "ec_guide_style", "--out", e["tmp"] / "sft",
                                    "--weight", "generation=inf"], None),
    ("decontam/-n 0", lambda e: ["data", "decontam", e["sft"][0], "--eval", KIT, "--out", e["decontam"][0], "-n", "0"],
     None),
    ("score/--protocols ''", lambda e: ["score", KIT, KIT_RESP, "--out", e["score"][0], "--protocols", ""], None),
    ("score/--extractors bogus", lambda e: ["score", KIT, KIT_RESP, "--out", e["score"][0], "--extractors", "nope"],
     None),
    ("leaderboard/--names of the wrong length", lambda e: ["leaderboard", e["run"], "--out", e["board"][0],
                                                           "--names", "a,b"], "--names"),
    ("corpus/--lang klingon", lambda e: ["data", "corpus", FIX / "corpus_products.jsonl", "--out", e["corpus"][0],
                                         "--lang", "klingon"], None),
    ("eval/--tensor-parallel-size 0", lambda e: ["eval", "--model", "m", "--backend", "vllm", "--num-gpus", "2",
                                                 "--tensor-parallel-size", "0", "--dry-run"], None),
    ("eval/--num-gpus -1", lambda e: ["eval", "--model", "m", "--num-gpus", "-1", "--dry-run"], None),
    ("eval/--batch-size 0", lambda e: ["eval", "--model", "m", "--batch-size", "0", "--dry-run"], None),
    ("eval/--dtype bogus", lambda e: ["eval", "--model", "m", "--dtype", "bogus", "--dry-run"], None),
    ("eval/--limit 1.5", lambda e: ["eval", "--model", "m", "--limit", "1.5", "--dry-run"], None),
    ("eval/--tasks of no shop task", lambda e: ["eval", "--model", "m", "--tasks", "nope_task", "--dry-run"], "nope_task"),
    ("eval/--output a file", lambda e: ["eval", "--model", "m", "--output", e["score"][0], "--dry-run"], "is a file"),
    ("eval/a config that is no JSON", lambda e: ["eval", "--model", _model_dir(e["tmp"] / "mdl", "{"), "--limit", "1"],
     "not a JSON object"),
    ("eval/a model without weights", lambda e: ["eval", "--model", _model_dir(e["tmp"] / "mdl", "{}"), "--limit", "1"],
     "no weights"),
    ("leaderboard/--names twice the same", lambda e: ["leaderboard", e["run"], e["run"], "--out", e["board"][0],
                                                      "--names", "a,a"], None),
    ("eval/a missing local model", lambda e: ["eval", "--model", e["tmp"] / "no-model", "--limit", "1"], "no such folder"),
    ("eval/a folder that is no model", lambda e: ["eval", "--model", e["tmp"], "--limit", "1"], "config.json"),
]  # fmt: skip


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _model_dir(path: Path, config: str) -> Path:
    path.mkdir()
    (path / "config.json").write_text(config)
    return path


def _bogus_run(e) -> Path:
    """A copy of the good lm-eval run whose first sample names a task type that does not exist."""
    folder = e["tmp"] / "bogus"
    folder.mkdir()
    for f in e["run"].parent.iterdir():
        text = f.read_text()
        if f.name.startswith("samples_"):
            first, _, rest = text.partition("\n")
            row = json.loads(first)
            row["doc"]["task_type"] = "bogus"
            text = json.dumps(row) + "\n" + rest
        (folder / f.name).write_text(text)
    return folder / e["run"].name


def _link(tmp: Path, target: Path) -> Path:
    link = tmp / f"link-{target.name}"
    link.symlink_to(target)
    return link


@pytest.mark.parametrize("case", BAD_RUNS, ids=[c[0] for c in BAD_RUNS])
def test_bad_runs_say_one_line_exit_2_and_keep_the_previous_outputs(env, capsys, case):
    _, build, needle = case
    rc, err = _run(capsys, build(env))
    assert rc == 2, err
    assert "Traceback" not in err
    if needle is None:  # argparse: "usage: ..." then "shop-eval ...: error: argument ...: ..."
        assert "error: argument" in err or "error: unrecognized" in err, err
    else:
        _one_error_line(err, needle)
    assert _snapshot(env["before"]) == env["before"]
    leftovers = [p for p in env["tmp"].rglob(".*.tmp")]
    assert not leftovers, leftovers


# ---------------------------------------------------------------------------- truths that must be rejected


MC = "Q\n0. a\n1. b\n2. c\nAnswer: "


@pytest.mark.parametrize(
    "row, needle",
    [
        ({"input_field": MC, "output_field": -1, "task_type": "multiple-choice", "metric": "accuracy"}, "negative"),
        (
            {"input_field": MC, "output_field": 3, "task_type": "multiple-choice", "metric": "accuracy"},
            "options [0, 1, 2]",
        ),
        (
            {"input_field": "1. a\n2. b", "output_field": [1, 5], "task_type": "retrieval", "metric": "hit rate@3"},
            "[5]",
        ),
        ({"input_field": "r", "output_field": [1, float("inf")], "task_type": "ranking", "metric": "ndcg"}, "0 <= w"),
        ({"input_field": "r", "output_field": [1, 1e308], "task_type": "ranking", "metric": "ndcg"}, "0 <= w"),
        ({"input_field": "r", "output_field": [0.1, -1, 0], "task_type": "ranking", "metric": "ndcg"}, "0 <= w"),
    ],
)
def test_truths_that_would_score_wrongly_are_rejected(tmp_path, capsys, row, needle):
    data = _write(tmp_path / "d.jsonl", json.dumps({**row, "task_name": "t"}) + "\n")
    rc, err = _run(capsys, ["score", data, "truth", "--out", tmp_path / "r.json"])
    assert rc == 2
    _one_error_line(err, "d.jsonl:line 1", "output_field", needle)


def test_alpaca_ranking_truth_naming_a_huge_candidate_is_rejected(tmp_path, capsys):
    rows = [{"instruction": "Rank:\n1. a\n2. b", "input": "", "output": "1, 99999999999", "task_type": "ranking"}]
    data = _write(tmp_path / "a.json", json.dumps(rows))
    rc, err = _run(capsys, ["convert", data, tmp_path / "o.jsonl"])
    assert rc == 2
    _one_error_line(err, "a.json:row 1", "candidate 99999999999")


# ---------------------------------------------------------------------------- rows never lost silently


def test_json_lines_whose_first_line_is_a_list_lose_no_rows(tmp_path):
    good = KIT.read_text().splitlines()
    data = _write(tmp_path / "d.json", "[1, 2]\n" + "\n".join(good) + "\n")
    with pytest.raises(ShopEvalError, match=r"d\.json:line 1: expected a JSON object, got list"):
        load_records(data)
    res = load_records(data, skip_invalid=True)
    assert len(res.records) == len(good) and len(res.skipped) == 1


def test_skip_invalid_keeps_line_aligned_predictions_aligned(tmp_path, capsys):
    rows = KIT.read_text().splitlines()
    data = _write(tmp_path / "d.jsonl", "\n".join([rows[0], '{"broken": ', *rows[1:]]) + "\n")
    resp = KIT_RESP.read_text().splitlines()
    preds = _write(tmp_path / "p.jsonl", "\n".join([resp[0], '{"response": "x"}', *resp[1:]]) + "\n")
    out = tmp_path / "r.json"
    rc, err = _run(capsys, ["score", data, preds, "--out", out, "--skip-invalid"])
    assert rc == 0, err
    assert main(["score", str(KIT), str(KIT_RESP), "--out", str(tmp_path / "ref.json")]) == 0
    a, b = json.loads(out.read_text()), json.loads((tmp_path / "ref.json").read_text())
    for p in ("official", "flexible", "shoppingmmlu"):  # the same rows got the same answers
        assert a["protocols"][p]["tasks"] == b["protocols"][p]["tasks"]
        assert a["protocols"][p]["mean_of_tracks"] == b["protocols"][p]["mean_of_tracks"]


# ---------------------------------------------------------------------------- readers fed random bytes


READERS = {
    "auto": lambda p: load_records(p),
    "shopbench": lambda p: load_records(p, "shopbench", skip_invalid=True),
    "ec-guide": lambda p: load_records(p, "ec-guide"),
    "alpaca": lambda p: load_records(p, "alpaca", skip_invalid=True),
    "shoppingmmlu": lambda p: load_records(p, "shoppingmmlu"),
}


def _other_readers(path: Path):
    from shop_eval.data.readers import read_eval_prompts, read_train_rows
    from shop_eval.leaderboard import collect_run
    from shop_eval.scoring.predictions import read_predictions
    from shop_eval.scoring.samples import read_samples

    loaded = load_records(KIT)
    yield lambda: read_predictions([path], loaded)
    yield lambda: read_samples([path])
    yield lambda: read_eval_prompts(path)
    yield lambda: read_train_rows(str(path), "auto")
    yield lambda: collect_run(path)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        _JSONISH.map(lambda v: json.dumps(v).encode()),
        st.lists(_JSONISH, max_size=5).map(lambda vs: "\n".join(json.dumps(v) for v in vs).encode()),
    ),
    name=st.sampled_from(["x.jsonl", "x.json", "x.csv", "results_x.json", "samples_x.jsonl"]),
)
def test_no_reader_raises_anything_but_a_located_error(tmp_path, data, name):
    path = tmp_path / name
    path.write_bytes(data)
    readers = [lambda fn=fn: fn(path) for fn in READERS.values()] + list(_other_readers(path))
    for read in readers:
        try:
            read()
        except ShopEvalError as exc:
            assert str(exc)
        except Exception as exc:  # noqa: BLE001 - the property under test
            raise AssertionError(f"{type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------- interruption


def _runs(e) -> dict[str, list]:
    """A second run of each writing command, on other input, so that its outputs differ from the first."""
    t = e["tmp"]
    mc = [r for r in load_records(KIT).records if r.task_type == "multiple-choice"]
    run2 = _lm_eval_run(t / "run2", mc, ["1", "1", "1", "1", "1"], stamp="2026-01-02T00-00-00.0")
    other = _write(
        t / "resp2.jsonl", "\n".join(json.dumps({"response": "0"}) for _ in KIT_RESP.read_text().splitlines())
    )
    return {
        "score": ["score", KIT, other, "--out", e["score"][0], "--per-example", e["score"][1]],
        "sft": ["data", "sft", FIX / "ec_guide_style", "--out", t / "sft", "--seed", "7", "--val-fraction", "0.5"],
        "corpus": ["data", "corpus", FIX / "corpus_products.jsonl", "--text-field", "title", "--out", e["corpus"][0],
                   "--min-words", "1"],
        "decontam": ["data", "decontam", e["sft"][0], "--eval", FIX / "ec_guide_style", "--out", e["decontam"][0]],
        "board": ["leaderboard", run2, "--out", e["board"][0], "--md", e["board"][1]],
    }  # fmt: skip


def _count_steps(argv) -> int:
    n = 0

    def count(what, path):
        nonlocal n
        n += 1

    orig = shop_io._step
    shop_io._step = count
    try:
        assert main([str(a) for a in argv]) == 0
    finally:
        shop_io._step = orig
    return n


@pytest.mark.parametrize("command", ["score", "sft", "corpus", "decontam", "board"])
def test_ctrl_c_at_every_write_exits_130_and_leaves_no_mix(env, capsys, command):
    """SIGINT at each write of a run: exit 130 and the old outputs; while a commit renames its files the signal is
    held back until they are all in place (the complete new outputs, still exit 130)."""
    argv = _runs(env)[command]
    outputs = env[command]
    old = {str(k): env["before"][str(k)] for k in outputs}
    steps = _count_steps(argv)  # this run's own outputs are now the "new" set ...
    new = _snapshot(outputs)
    assert steps >= 2 * len(outputs) and new != old
    for stop in range(1, steps + 1):
        for path, data in old.items():  # ... put the old set back
            Path(path).write_bytes(data)
        seen, kind = 0, None

        def interrupt(what, path, stop=stop):
            nonlocal seen, kind
            seen += 1
            if seen == stop:
                kind = what
                signal.raise_signal(signal.SIGINT)

        shop_io._step = interrupt
        try:
            rc, err = _run(capsys, argv)
        finally:
            shop_io._step = lambda what, path: None
        assert rc == 130, (stop, err)
        assert "interrupted" in err and "Traceback" not in err
        state = _snapshot(outputs)
        if kind == "write":
            assert state == old, f"step {stop} of {steps} ({kind})"
        else:
            assert _untimed(state) == _untimed(new), f"step {stop} of {steps} ({kind})"
        assert not list(env["tmp"].rglob(".*.tmp")) and not list(env["tmp"].rglob(".shop-eval-commit.*"))


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from shop_eval import io
    from shop_eval.cli import main
    stop, n = int(sys.argv[1]), 0
    def step(what, path):
        global n
        n += 1
        if n == stop:
            os.kill(os.getpid(), signal.SIGKILL)
    io._step = step
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.parametrize("command", ["score", "sft", "corpus", "decontam", "board"])
def test_sigkill_at_every_write_leaves_the_old_or_the_new_outputs(env, command):
    """A kill mid-run leaves the old outputs; a kill between the renames of a commit leaves a journal that the
    next reader or writer of that folder completes — then the outputs are the complete new set."""
    argv = [str(a) for a in _runs(env)[command]]
    outputs = env[command]
    old = {k: env["before"][k] for k in map(str, outputs)}
    steps = _count_steps(argv)
    new = _snapshot(outputs)
    for stop in range(1, steps + 1):
        for path, data in old.items():
            Path(path).write_bytes(data)
        proc = subprocess.run([sys.executable, "-c", _KILLER, str(stop), *argv], capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert proc.returncode == -signal.SIGKILL, (stop, proc.stderr[-500:])
        for folder in {Path(p).parent for p in outputs}:
            shop_io.recover(folder)
        state = _snapshot(outputs)
        assert state == old or _untimed(state) == _untimed(new), f"kill at step {stop} of {steps}: a mix of outputs"
        for tmp in env["tmp"].rglob(".*.tmp"):  # what the killed run left: temporary files only
            tmp.unlink()


def test_a_leaderboard_of_an_empty_samples_file_is_marked_not_ranked(env, capsys):
    samples = next(env["run"].parent.glob("samples_*.jsonl"))
    samples.write_text("")
    out = env["tmp"] / "lb2.json"
    rc, err = _run(capsys, ["leaderboard", env["run"], "--out", out, "--md", env["tmp"] / "lb2.md"])
    assert rc == 0, err
    board = json.loads(out.read_text())
    m = board["models"][0]
    assert not m["lm_eval_agreement"]["ok"] and "samples file holds 0" in m["lm_eval_agreement"]["problems"][0]
    assert board["comparable"]["lm_eval_agreement"] is False
    assert "**Warning:**" in (env["tmp"] / "lb2.md").read_text()


def test_ctrl_c_while_the_parser_is_built_is_130_too(capsys, monkeypatch):
    import shop_eval.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    rc, err = _run(capsys, ["score", KIT, "truth", "--out", "x.json"])
    assert rc == 130 and "interrupted" in err and "Traceback" not in err


def test_unwritable_output_folder_is_refused_before_any_work(capsys, tmp_path, monkeypatch):
    """No permission to write in the output's folder: refused before any work (``os.access`` stands in for a
    read-only folder, which the root user of a container could write anyway)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    rc, err = _run(capsys, ["score", KIT, KIT_RESP, "--out", ro / "r.json"])
    assert rc == 2
    _one_error_line(err, "cannot write in", "permission denied")
    assert not list(ro.iterdir())
