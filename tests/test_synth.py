"""``shop-eval synth``: parsing, the near-duplicate filter, the append-only output, the lifecycle, the options
and runs against a real HTTP server (``tests/fake_openai_server.py``) that injects faults: every requested item
exactly once, rate limits kept, Ctrl-C / SIGTERM / SIGKILL + restart lose and duplicate nothing, the key never
written.  Nothing here waits for time to pass: a test that must act while a run is in progress holds the
server's answers back and releases them (``hold_after`` / ``allow``)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer
from rouge_score import rouge_scorer

from shop_eval.cli import main
from shop_eval.errors import UsageError
from shop_eval.loaders import load_records
from shop_eval.records import TASK_TYPES, DataError, make_record
from shop_eval.synth import (
    R_CONTAMINATED,
    R_DUPLICATE,
    R_EMPTY_INPUT,
    R_INVALID_OUTPUT,
    R_NEAR_DUPLICATE,
    R_NO_MARKERS,
    R_OUT_OF_RANGE,
    R_SURPLUS,
    R_TRUNCATED,
    NearDupIndex,
    Redactor,
    Rejected,
    RougeTokenizer,
    Synthesizer,
    SynthOptions,
    load_template,
    parse_block,
    parse_reply,
    recover_jsonl,
    render_example,
    render_prompt,
    synthesize,
    template_path,
)

KEY = "sk-test-9f8e7d6c5b4a-never-write-me"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# A few hand-written seeds per task type (ShopBench records).
SEEDS = [
    {
        "input_field": "Which product best matches the query 'trail running shoes'?\n0. Leather loafers\n"
        "1. Salomon Speedcross 6 trail runners\n2. Yoga mat\n3. Ceramic teapot\nAnswer:",
        "output_field": 1,
        "task_type": "multiple-choice",
    },
    {
        "input_field": "Instructions: Evaluate the review on a scale of 1 to 5.\nInput: The kettle leaks after a week.\n"
        "Output:",
        "output_field": 1,
        "task_type": "multiple-choice",
    },
    {
        "input_field": "A shopper viewed 'USB-C charging cable'. Which items fit?\n1. USB-C wall charger\n"
        "2. Garden hose\n3. Braided USB-C cable 2 m\n4. Phone stand\nOutput:",
        "output_field": [1, 3],
        "task_type": "retrieval",
    },
    {
        "input_field": "Rank by relevance to 'espresso machine':\n1. Milk frother\n2. Breville Barista Express\n"
        "3. Tea infuser",
        "output_field": [1.0, 2.0, 0.0],
        "task_type": "ranking",
    },
    {
        "input_field": "Text: 'Bought a Lodge cast iron skillet in red.'\nEntity type: brand",
        "output_field": ["Lodge"],
        "task_type": "named_entity_recognition",
    },
    {
        "input_field": "Explain in one sentence why a shopper might choose a merino wool base layer.",
        "output_field": "Merino wool keeps you warm, wicks sweat and resists odour, so it suits long outdoor days.",
        "task_type": "generation",
    },
    {
        "input_field": "Review: The blender is loud but crushes ice in seconds.\nSentiment (positive, negative, "
        "mixed)?\nAnswer:",
        "output_field": "mixed",
        "task_type": "classification",
    },
]


def _seed_records():
    out = []
    for k, row in enumerate(SEEDS):
        row = {"task_name": f"seed/{row['task_type']}", "metric": _metric(row["task_type"]), **row}
        out.append(make_record(row, "SEEDS", f"row {k}"))
    return out


def _metric(t):
    from shop_eval.records import DEFAULT_METRIC

    return DEFAULT_METRIC[t]


def _write_seeds(path: Path) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in _seed_records()), encoding="utf-8")
    return path


@pytest.fixture
def seeds_file(tmp_path):
    return _write_seeds(tmp_path / "seeds.jsonl")


def _opts(tmp_path, base_url, **kw):
    seeds = tmp_path / "seeds.jsonl"
    if "seeds" not in kw and not seeds.exists():
        _write_seeds(seeds)
    defaults = dict(
        seeds=str(seeds),
        out=tmp_path / "synth.jsonl",
        model="fake",
        count=12,
        task_types=list(TASK_TYPES),
        base_url=base_url,
        per_request=2,
        concurrency=4,
        timeout=2.0,
        backoff=0.02,
        backoff_max=0.2,
        max_retries=10,
        progress=False,
    )
    defaults.update(kw)
    return SynthOptions(**defaults)


def _run(opts, client=None) -> tuple[Synthesizer, dict]:
    synth = Synthesizer(opts, api_key=KEY, client=client)
    with synth:
        report = asyncio.run(synth.run())
    return synth, report


def _read_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _expected_ids(synth: Synthesizer) -> set[str]:
    from shop_eval.records import SHORT_NAMES

    return {f"synth-{synth.cfg}-{SHORT_NAMES[t]}-{i:06d}" for t in synth.types for i in range(synth.quota[t])}


class _StubClient:
    """Stands in for AsyncOpenAI: synth posts to /chat/completions through the client's request path
    and keeps the answer as decoded JSON (``cast_to=object``).  ``replies``: a list served in order, or
    ``{task type: list}`` served by the prompt's ``Task type:`` line."""

    def __init__(self, replies):
        self.replies = replies if isinstance(replies, dict) else {None: list(replies)}

    async def post(self, path, *, cast_to, body, options=None):
        assert path == "/chat/completions" and cast_to is object and body["messages"][0]["role"] == "user"
        prompt = body["messages"][0]["content"]
        key = next((t for t in self.replies if t and f"Task type: {t}\n" in prompt), None)
        queue = self.replies.get(key, [])
        content = queue.pop(0) if queue else "nothing"
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "stub",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    async def close(self):
        pass


# =========================================================================== parsing


def test_every_shipped_template_renders_and_round_trips():
    seeds = _seed_records()
    for t in TASK_TYPES:
        tpl = load_template(template_path(t))
        ex = [r for r in seeds if r.task_type == t]
        prompt = render_prompt(tpl, t, ex, 4)
        assert f"Task type: {t}" in prompt  # the fake server reads this line
        assert "Write 4 new examples" in prompt
        assert "$" not in prompt
        # a seed written the way the template shows it parses back to the same example
        for r in ex:
            (back,) = parse_reply(render_example(r), t, r.task_name)
            assert not isinstance(back, Rejected), back
            assert back.input_field == r.input_field.strip()
            if t == "ranking":
                from shop_eval.prompts import ranking_order

                assert ranking_order(back.output_field) == ranking_order(r.output_field)
            else:
                assert back.output_field == r.output_field


def test_parse_reply_splits_and_rejects_by_reason():
    reply = (
        "Sure! Here are new examples.\n\n"
        "Input:\nInstructions: Rate the review from 1 to 5.\nInput: Great lamp.\nOutput:\nOutput:\n4\n###\n"
        "Example 2\nInput: Pick the product for 'hiking'.\n0. Boots\n1. Heels\nOutput: 0\n###\n"
        "no markers at all\n###\n"
        "Input:\n\nOutput:\n1\n###\n"
        "Input:\nWhich one?\n0. A\n1. B\nOutput:\nB\n###\n"
        "Input:\nWhich one?\n0. A\n1. B\nOutput:\n3\n###\n"
        "Input:\nWhich one is cut off?\n0. A\n"
    )
    items = parse_reply(reply, "multiple-choice", "synth/mc", truncated=True)
    kinds = [it.reason if isinstance(it, Rejected) else it.output_field for it in items]
    assert kinds == [4, 0, R_NO_MARKERS, R_EMPTY_INPUT, R_INVALID_OUTPUT, R_OUT_OF_RANGE, R_TRUNCATED]
    # a prompt that ends with its own "Output:" line keeps it
    assert items[0].input_field == "Instructions: Rate the review from 1 to 5.\nInput: Great lamp.\nOutput:"
    assert items[1].input_field == "Pick the product for 'hiking'.\n0. Boots\n1. Heels"
    # without truncation the last block is parsed
    last = parse_reply("Input:\nWhich?\n0. A\n1. B\nOutput:\n1", "multiple-choice", "x")
    assert [r.output_field for r in last] == [1]


@pytest.mark.parametrize(
    "task_type,answer,truth",
    [
        ("retrieval", "3, 1", [3, 1]),
        ("ranking", "2, 3, 1", [2, 3, 1]),  # read back as the ordering
        ("named_entity_recognition", '["Lodge", "Le Creuset, Inc."]', ["Lodge", "Le Creuset, Inc."]),
        ("generation", "A long\ntwo-line answer.", "A long\ntwo-line answer."),
        ("classification", "positive", "positive"),
    ],
)
def test_parse_block_truths(task_type, answer, truth):
    block = f"Input:\nQuestion about:\n1. a\n2. b\n3. c\nOutput:\n{answer}\n"
    rec = parse_block(block, task_type, "synth/x")
    assert not isinstance(rec, Rejected), rec
    if task_type == "ranking":
        from shop_eval.prompts import ranking_order

        assert ranking_order(rec.output_field) == truth
    else:
        assert rec.output_field == truth
    assert rec.task_type == task_type


def test_ranking_and_retrieval_out_of_range_rejected():
    block = "Input:\nRank:\n1. a\n2. b\n3. c\nOutput:\n4, 1, 2, 3\n"
    assert parse_block(block, "ranking", "x").reason == R_OUT_OF_RANGE
    assert parse_block(block.replace("4, 1, 2, 3", "1, 7"), "retrieval", "x").reason == R_OUT_OF_RANGE
    assert parse_block(block.replace("4, 1, 2, 3", "2, 2"), "ranking", "x").reason == R_INVALID_OUTPUT


def test_template_placeholders_checked(tmp_path):
    bad = tmp_path / "t.txt"
    bad.write_text("Write $n_new like $examples for $customer\n")
    with pytest.raises(DataError, match="unknown placeholder"):
        load_template(bad)
    bad.write_text("Write $n_new new ones.\n")
    with pytest.raises(DataError, match=r"\$examples"):
        load_template(bad)


# =========================================================================== near-duplicates


def _mutate(words, rng, k):
    words = list(words)
    for _ in range(k):
        words[rng.randrange(len(words))] = f"w{rng.randrange(10**6)}"
    return words


def test_near_dup_filter_agrees_with_brute_force_and_is_not_quadratic():
    rng = random.Random(7)
    vocab = [f"v{i}" for i in range(3000)]
    texts = []
    for _ in range(300):
        if texts and rng.random() < 0.3:  # a planted near-duplicate (or not) of an earlier text
            base = rng.choice(texts).split()
            texts.append(" ".join(_mutate(base, rng, rng.randint(1, len(base) // 2))))
        else:
            texts.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(8, 20))))
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=RougeTokenizer())
    index = NearDupIndex(0.7)
    pool: list[str] = []
    agree = positives = 0
    for k, text in enumerate(texts):
        brute = any(scorer.score(p, text)["rougeL"].fmeasure > 0.7 for p in pool) or text in pool
        got = index.check(text)
        positives += brute
        agree += brute == (got is not None)
        if got is None:
            index.add(f"t{k}", text)
            pool.append(text)
    assert positives > 40  # the planted near-duplicates are there
    assert agree == len(texts)  # same decisions as comparing every pair
    # and far fewer ROUGE-L computations than pairs
    assert index.stats["rouge_comparisons"] < len(texts) * len(pool) / 50


def test_near_dup_tokenizer_sees_japanese():
    index = NearDupIndex(0.7)
    # rouge-score's default tokenizer drops non-ASCII text: both would be empty, i.e. "identical"
    a = "説明: 軽量で防水のジャケット、登山や通勤に最適です。"
    b = "説明: 大容量の電気ケトル、一度にお湯を沸かせます。"
    assert rouge_scorer.RougeScorer(["rougeL"]).score(a, b)["rougeL"].fmeasure == 0  # (no tokens at all)
    index.add("a", a)
    assert index.check(b) is None
    assert index.check(a)[0] == R_DUPLICATE
    assert index.check(a.replace("登山", "旅行"))[0] == R_NEAR_DUPLICATE


# =========================================================================== append-only files


def test_recover_cuts_partial_last_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b": "trunc')
    rows, cut = recover_jsonl(p)
    assert rows == [{"a": 1}, {"a": 2}] and cut == len(b'{"a": 3, "b": "trunc')
    assert p.read_bytes() == b'{"a": 1}\n{"a": 2}\n'
    p.write_bytes(b'{"a": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        recover_jsonl(p)
    # killed just before the newline: the complete last row is kept and gets its newline
    p.write_bytes(b'{"a": 1}\n{"a": 2}')
    assert recover_jsonl(p) == ([{"a": 1}, {"a": 2}], 0) and p.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


def test_resume_never_touches_a_file_that_is_not_its_own(tmp_path):
    out = tmp_path / "synth.jsonl"
    foreign = b'{"input_field": "q", "output_field": 1}\n{"input_field": "half a li'
    out.write_bytes(foreign)
    with pytest.raises(DataError, match="not a synth item id"):
        _run(_opts(tmp_path, None, count=2), _StubClient([]))
    assert out.read_bytes() == foreign  # not truncated


# =========================================================================== against a real server


@pytest.mark.parametrize("http", ["aiohttp", "httpx"])
def test_faults_every_item_exactly_once(tmp_path, http):
    faults = ["429", "ok", "500", "slow", "503", "drop", "badjson", "garbage", "dup", "429", "drop", "500"]
    # "slow" never answers in time: the server waits an hour, the client gives up after its timeout
    with FakeOpenAIServer(latency=0.01, faults=faults, retry_after=0.4, slow_seconds=3600, api_key=KEY) as srv:
        synth, report = _run(_opts(tmp_path, srv.base_url, count=18, timeout=1.0, http=http))
    out = tmp_path / "synth.jsonl"
    ids = _read_ids(out)
    assert len(ids) == len(set(ids)) == 18 and set(ids) == _expected_ids(synth)
    assert report["complete"] and report["accepted"] == 18 and report["missing"] == 0
    assert len(load_records(out).records) == 18  # every line is a valid ShopBench record
    # every fault was met and retried: one retry per transport fault; a timeout for the slow one (and for any
    # answer a busy machine delays past the timeout: those are retried too, and counted apart)
    causes = report["retries_by_cause"]
    for cause in ("429", "500", "503", "timeout", "connection", "bad_body"):
        assert causes.get(cause, 0) >= 1, causes
    assert report["retries"] - causes["timeout"] == 8 and report["requests_failed"] == 0
    reasons = report["rejected_by_reason"]
    assert reasons.get(R_NO_MARKERS) and reasons.get(R_EMPTY_INPUT)
    assert reasons.get(R_DUPLICATE, 0) + reasons.get(R_NEAR_DUPLICATE, 0) >= 1
    rejects = [json.loads(x) for x in (tmp_path / "synth.jsonl.rejects.jsonl").read_text().splitlines()]
    assert sum(reasons.values()) == len(rejects)
    # Retry-After honoured: the retry of a request that got 429 came at least 0.4 s later
    for i, e in enumerate(srv.log):
        if e["fault"] == "429":
            nxt = next(x for x in srv.log[i + 1 :] if x["request"] == e["request"])
            assert nxt["t"] - e["t"] >= 0.4 * 0.98
            assert int(nxt["attempt"]) == int(e["attempt"]) + 1
    assert all(e["auth_ok"] for e in srv.log)  # the key was sent ...
    for f in tmp_path.iterdir():  # ... and never written
        assert KEY not in f.read_text(encoding="utf-8", errors="replace")


class _GrantTimes:
    """Wraps the request limiter: the event-loop time at which each attempt was let through."""

    def __init__(self, inner):
        self.inner, self.max_rate, self.times = inner, inner.max_rate, []

    async def acquire(self, amount=1):
        await self.inner.acquire(amount)
        self.times.append(asyncio.get_running_loop().time())


def test_rate_limit_respected(tmp_path):
    rpm = 1200  # 20/s, in bursts of at most one second's worth (20)
    with FakeOpenAIServer(latency=0.0) as srv:
        opts = _opts(tmp_path, srv.base_url, count=60, per_request=1, concurrency=16, rpm=rpm)
        synth = Synthesizer(opts, api_key=KEY)
        limiter = synth.chat.rpm_limiter
        assert (limiter.max_rate, limiter.time_period) == (20, 1.0)  # the bucket: 20 at once, 20 more a second
        synth.chat.rpm_limiter = grants = _GrantTimes(limiter)
        with synth:
            report = asyncio.run(synth.run())
    assert report["complete"]
    ts = grants.times
    assert len(ts) == len(srv.log) == report["requests"] >= 60  # every attempt went through the limiter
    # a leaky bucket lets k consecutive attempts through over at least (k - burst) / rate seconds, whatever the
    # load (the grant times are the limiter's own clock: a busy machine only spreads them further)
    rate = burst = rpm / 60
    for i in range(len(ts)):
        for j in range(i + int(burst), len(ts)):
            assert ts[j] - ts[i] >= (j - i + 1 - burst) / rate - 1e-3, (i, j, ts[j] - ts[i])


class _Recorder:
    """Stands in for the token limiter: records what is asked of it."""

    def __init__(self, max_rate):
        self.max_rate = max_rate
        self.amounts = []

    async def acquire(self, amount=1):
        self.amounts.append(amount)


def test_token_limit_accounts_estimate_then_usage(tmp_path):
    with FakeOpenAIServer(latency=0.0) as srv:
        opts = _opts(tmp_path, srv.base_url, count=6, per_request=1, concurrency=1, tpm=10**6, max_tokens=8)
        synth = Synthesizer(opts, api_key=KEY)
        synth.chat.tpm_limiter = rec = _Recorder(10**6)
        with synth:
            report = asyncio.run(synth.run())
    # per request one estimate before; usage above the estimate is acquired after, so the limiter
    # saw at least the tokens the server reported
    assert len(rec.amounts) >= report["requests"]
    assert sum(rec.amounts) >= report["tokens"]["total"]


def test_read_completion_takes_what_it_needs_and_rejects_the_rest():
    from shop_eval.synth import BadResponse, read_completion

    body = {
        "choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3},
    }
    assert read_completion(body) == ("hi", "length", (7, 3))
    # null content (e.g. a refusal) is an empty reply; a missing or odd usage is no usage
    assert read_completion({"choices": [{"message": {"content": None}}]}) == ("", None, None)
    odd = {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": "7", "completion_tokens": -1}}
    assert read_completion(odd) == ("x", None, (0, 0))
    for bad in (
        "<html>busy</html>",
        None,
        [],
        {},
        {"choices": []},
        {"choices": ["x"]},
        {"choices": [{"message": {"content": 3}}]},
    ):
        with pytest.raises(BadResponse):
            read_completion(bad)


def test_decontamination_duplicates_and_surplus(tmp_path, seeds_file):
    eval_prompt = (
        "Which tent suits a family of four camping in heavy rain near the northern lakes this coming autumn?\n"
        "0. Ultralight bivy\n1. Coleman WeatherMaster 6-person tent\n2. Beach umbrella\nAnswer:"
    )
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(
        json.dumps(
            {
                "input_field": eval_prompt,
                "output_field": 1,
                "task_name": "task1",
                "task_type": "multiple-choice",
                "metric": "accuracy",
            }
        )
        + "\n"
    )
    good = ["Input:\nPick a kettle for tea lovers.\n0. Gooseneck kettle\n1. Stock pot\nAnswer:\nOutput:\n0\n###"]
    reply = "\n".join(
        [
            f"Input:\n{eval_prompt}\nOutput:\n1\n###",  # contaminated
            good[0],
            good[0],  # exact duplicate
            "Input:\nPick a mug for hot cocoa.\n0. Insulated mug\n1. Shot glass\nAnswer:\nOutput:\n0\n###",
            "Input:\nPick shoes for a marathon.\n0. Racing flats\n1. Slippers\nAnswer:\nOutput:\n0\n###",  # surplus
        ]
    )
    opts = _opts(
        tmp_path, None, count=2, task_types=["multiple-choice"], per_request=5, concurrency=1, eval_sets=[eval_set]
    )
    _, report = _run(opts, _StubClient([reply]))
    assert report["accepted"] == 2 and report["requests"] == 1
    assert report["rejected_by_reason"] == {R_CONTAMINATED: 1, R_DUPLICATE: 1, R_SURPLUS: 1}
    rows = [json.loads(x) for x in (tmp_path / "synth.jsonl").read_text().splitlines()]
    assert [r["output_field"] for r in rows] == [0, 0] and "kettle" in rows[0]["input_field"]


def test_resume_refuses_another_configuration_and_extends_count(tmp_path):
    with FakeOpenAIServer(latency=0.0) as srv:
        opts = _opts(tmp_path, srv.base_url, count=6)
        synthesize(opts, api_key=KEY)
        first = _read_ids(tmp_path / "synth.jsonl")
        # the same command again: nothing to do
        again = synthesize(opts, api_key=KEY)
        assert again["requests"] == 0 and again["resumed_with"] == 6 and again["complete"]
        # a larger count continues the same items
        more = synthesize(_opts(tmp_path, srv.base_url, count=12), api_key=KEY)
        assert more["resumed_with"] == 6 and more["accepted"] == 12
        ids = _read_ids(tmp_path / "synth.jsonl")
        assert len(set(ids)) == 12 and ids[:6] == first
        # another model (another configuration) refuses to append to this file
        with pytest.raises(DataError, match="another synth configuration"):
            synthesize(_opts(tmp_path, srv.base_url, model="other"), api_key=KEY)


def test_output_written_before_the_package_split_resumes(tmp_path):
    """tests/fixtures/synth_v1: seeds, templates and a 3-item output written by the single-module synth (before
    it became a package).  The same options resume it: same configuration id, same item ids."""
    fx = FIXTURES / "synth_v1"
    out = tmp_path / "synth.jsonl"
    shutil.copy(fx / "synth.jsonl", out)
    opts = SynthOptions(
        seeds=str(fx / "seeds.jsonl"),
        out=out,
        model="fake",
        count=6,
        task_types=["multiple-choice", "generation"],
        per_request=2,
        concurrency=1,
        templates=[f"multiple-choice={fx / 'mc.txt'}", f"generation={fx / 'generation.txt'}"],
        progress=False,
    )
    replies = {
        "multiple-choice": [
            "Input:\nWhich mug keeps tea hot?\n0. Paper cup\n1. Vacuum flask mug\nAnswer:\nOutput:\n1\n###"
        ],
        "generation": [
            "Input:\nDescribe a wool blanket in one sentence.\nOutput:\nWarm, breathable and machine washable.\n###\n"
            "Input:\nDescribe a bamboo cutting board in one sentence.\nOutput:\nLight, hard-wearing and kind to knives.\n###"
        ],
    }
    _, report = _run(opts, _StubClient(replies))
    assert report["config_id"] == "6e156f4be98c" and report["resumed_with"] == 3
    assert report["complete"] and report["accepted_this_run"] == 3
    lines = out.read_bytes().splitlines(keepends=True)
    assert b"".join(lines[:3]) == (fx / "synth.jsonl").read_bytes()  # the old lines untouched
    assert sorted(_read_ids(out)) == sorted(
        f"synth-6e156f4be98c-{s}-{i:06d}" for s in ("multiple_choice", "generation") for i in range(3)
    )


def test_unauthorized_stops_at_once(tmp_path):
    with FakeOpenAIServer(latency=0.0, faults=["401"] * 50) as srv:
        _, report = _run(_opts(tmp_path, srv.base_url))
    assert report["stopped"].startswith("HTTP 401") and report["accepted"] == 0
    assert report["retries"] == 0 and len(srv.log) <= 4  # no retries; the other in-flight ones at most


def test_a_failing_write_stops_the_run_and_keeps_what_was_written(tmp_path, monkeypatch):
    from shop_eval.synth import store

    calls = {"n": 0}
    real_write = store.JsonlAppender.write

    def flaky_write(self, obj):
        if self.path.name == "synth.jsonl":
            calls["n"] += 1
            if calls["n"] == 4:
                raise OSError(28, "No space left on device")
        real_write(self, obj)

    monkeypatch.setattr(store.JsonlAppender, "write", flaky_write)
    with FakeOpenAIServer(latency=0.0) as srv:
        _, report = _run(_opts(tmp_path, srv.base_url))
    assert "No space left" in report["stopped"] and not report["complete"]
    assert len(_read_ids(tmp_path / "synth.jsonl")) == 3 == report["accepted"]


# =========================================================================== lifecycle


def test_every_attribute_is_made_in_init_and_close_releases(tmp_path):
    reply = "Input:\nPick a lamp.\n0. Desk lamp\n1. Garden hose\nAnswer:\nOutput:\n0\n###"
    opts = _opts(tmp_path, None, count=1, task_types=["multiple-choice"], per_request=1, concurrency=1)
    synth = Synthesizer(opts, api_key=KEY, client=_StubClient([reply]))
    parts = {"synth": synth, "chat": synth.chat, "store": synth.store, "pool": synth.pool, "progress": synth.progress}
    born = {name: set(vars(obj)) for name, obj in parts.items()}
    with pytest.raises(RuntimeError, match="setup"):
        asyncio.run(synth.run())
    synth.setup()
    report = asyncio.run(synth.run())
    synth.close()
    synth.close()  # twice is fine
    assert report["complete"]
    assert {name: set(vars(obj)) for name, obj in parts.items()} == born  # nothing born after __init__
    # the lock is free again: another run on the same output starts (and finds nothing to do)
    _, again = _run(opts, _StubClient([]))
    assert again["resumed_with"] == 1 and again["requests"] == 0


# =========================================================================== the key never leaves the process


def test_redactor_masks_before_it_cuts():
    r = Redactor(KEY)
    text = "x" * 190 + KEY + " and again " + KEY
    assert r(text) == "x" * 190 + "*** and again ***"
    assert r.clip(text, 200) == ("x" * 190 + "*** and again ***")[:200]  # no start of the key left by the cut
    assert r(json.dumps({"k": KEY + '"'})) == json.dumps({"k": "***" + '"'})
    assert r.value({"a": [KEY, 1, {KEY: None}]}) == {"a": ["***", 1, {"***": None}]}
    assert Redactor(None)(text) == text


@pytest.mark.parametrize("fault", ["400", "401"])
def test_a_key_echoed_by_the_endpoint_is_never_written(tmp_path, seeds_file, fault):
    """The endpoint quotes the key in its 4xx error body: the failed requests (400) and the stopped run (400:
    after --max-failed in a row; 401: at once) are reported with the key masked on stdout, stderr (with -v debug
    logging), the report and the rejects log."""
    out = tmp_path / "synth.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    with FakeOpenAIServer(latency=0.0, faults=[fault] * 100, api_key=KEY, echo_key=True) as srv:
        done = subprocess.run(
            _cli(seeds_file, out, srv.base_url, "--max-failed", "3"), env=env, capture_output=True, timeout=120
        )
    assert all(e["auth_ok"] for e in srv.log)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout)
    assert "Incorrect API key provided: ***" in report["stopped"]
    # 400: stopped after 3 failures in a row (or 4: the other request in flight may fail too); 401: at once
    assert re.match(r"[34] requests in a row failed" if fault == "400" else "HTTP 401", report["stopped"])
    assert b"Incorrect API key provided: ***" in done.stderr.splitlines()[-1]
    files = list(tmp_path.iterdir())
    assert {f.name for f in files} >= {"synth.jsonl.report.json", "synth.jsonl.rejects.jsonl"}
    if fault == "400":
        rejects = (tmp_path / "synth.jsonl.rejects.jsonl").read_text()
        assert "request_failed" in rejects and "Incorrect API key provided: ***" in rejects
    for blob in (done.stdout, done.stderr, *(f.read_bytes() for f in files)):
        assert KEY[:12].encode() not in blob  # not the key, not its start


# =========================================================================== the command: options and paths


def _cli_args(seeds_file, out, base_url="http://127.0.0.1:9/v1", *extra):
    return ["synth", str(seeds_file), "--out", str(out), "--model", "fake", "--base-url", base_url,
            "--count", "6", "--no-progress", *extra]  # fmt: skip


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--rpm", "-5"),  # hung forever before
        ("--tpm", "-5"),  # failed every request
        ("--rpm", "inf"),
        ("--count", "-5"),
        ("--count", "0"),
        ("--max-requests", "-5"),
        ("--timeout", "-1"),
        ("--timeout", "0"),
        ("--concurrency", "0"),
        ("--per-request", "0"),
        ("--shots", "0"),
        ("--seed", "-1"),
        ("--seed", "x"),
        ("--top-p", "0"),
        ("--rouge-threshold", "2"),
        ("--max-failed", "0"),
        ("--base-url", "notaurl"),
        ("--base-url", "ftp://host/v1"),
        ("--task-type", "klingon"),
        ("--template", "no-such-template.txt"),
        ("--http", "curl"),
        ("--model", " "),
    ],
)
def test_bad_option_values_are_refused_before_anything_runs(tmp_path, seeds_file, capsys, flag, value):
    out = tmp_path / "o.jsonl"
    args = _cli_args(seeds_file, out) + [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert f"argument {flag}" in err[-1] and "Traceback" not in "\n".join(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seeds.jsonl"]  # nothing written


def test_flags_are_the_options_dataclass():
    """One declaration: the command's defaults are the library's, every field is a flag."""
    from dataclasses import fields

    from shop_eval.cli import build_parser
    from shop_eval.cli.args import from_namespace

    parser = build_parser()
    base = ["synth", "s.jsonl", "--out", "o.jsonl", "--model", "m", "--count", "3"]
    ns = parser.parse_args(base)
    assert ns._options is SynthOptions
    opts = from_namespace(SynthOptions, ns)
    assert opts == SynthOptions(seeds="s.jsonl", out="o.jsonl", model="m", count=3) and opts.progress is None
    for extra, progress in ((["--progress"], True), (["--no-progress"], False)):
        assert from_namespace(SynthOptions, parser.parse_args(base + extra)).progress is progress
    synth_parser = parser._subparsers._group_actions[0].choices["synth"]
    dests = {a.dest for a in synth_parser._actions}
    assert {f.name for f in fields(SynthOptions)} <= dests
    given = from_namespace(SynthOptions, parser.parse_args(base + ["--task-type", "ner,ranking", "--rpm", "60"]))
    assert given.task_types == ["named_entity_recognition", "ranking"] and given.rpm == 60.0


def test_an_invalid_base_url_from_the_environment_is_refused(tmp_path, seeds_file, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "notaurl")
    args = [a for a in _cli_args(seeds_file, tmp_path / "o.jsonl") if not a.startswith(("--base-url", "http"))]
    assert main(args) == 2
    assert "OPENAI_BASE_URL" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "o.jsonl").exists()


def test_library_options_are_checked_as_the_flags_are(tmp_path):
    for kw, flag in (({"rpm": -5}, "--rpm"), ({"concurrency": 0}, "--concurrency"), ({"count": 0}, "--count"),
                     ({"http": "curl"}, "--http"), ({"task_types": ["klingon"]}, "--task-type"),
                     ({"base_url": "notaurl"}, "--base-url"), ({"timeout": float("nan")}, "--timeout")):  # fmt: skip
        with pytest.raises(UsageError, match=flag):
            _opts(tmp_path, **{"base_url": None, **kw})


@pytest.mark.parametrize(
    "content,message",
    [
        ("[]", "no usable seed examples"),  # ZeroDivisionError before
        ('[{"instruction": "q", "output": "x", "task_type": "multiple-choice"}]', "no usable seed examples (1 invalid"),
    ],
)
def test_seeds_without_usable_rows_are_a_clear_error(tmp_path, capsys, monkeypatch, content, message):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    seeds = tmp_path / "seeds.json"
    seeds.write_text(content)
    assert main(_cli_args(seeds, tmp_path / "o.jsonl", "http://127.0.0.1:9/v1", "--skip-invalid")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith(f"error: {seeds}") and message in err[-1]
    assert not (tmp_path / "o.jsonl").exists()


def test_explicit_task_type_without_seeds_is_a_clear_error(tmp_path, seeds_file, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    only_mc = tmp_path / "mc.jsonl"
    only_mc.write_text(seeds_file.read_text().splitlines()[0] + "\n")
    assert main(_cli_args(only_mc, tmp_path / "o.jsonl", "http://127.0.0.1:9/v1", "--task-type", "ner")) == 2
    assert "no seed examples of task type 'named_entity_recognition'" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["out_is_folder", "report_is_seeds", "rejects_is_out", "out_under_file"])
def test_outputs_are_checked_before_anything_runs(tmp_path, seeds_file, capsys, monkeypatch, case):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out, extra, message = tmp_path / "o.jsonl", [], ""
    if case == "out_is_folder":
        out.mkdir()
        message = "is a folder"
    elif case == "report_is_seeds":
        extra, message = ["--report", str(seeds_file)], "is an input of this run"
    elif case == "rejects_is_out":
        extra, message = ["--rejects", str(out)], "are the same file"
    else:
        (tmp_path / "file").write_text("x")
        out, message = tmp_path / "file" / "o.jsonl", "is a file, not a folder"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(_cli_args(seeds_file, out, "http://127.0.0.1:9/v1", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1], err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing written or changed


def test_cli_needs_the_key_in_the_environment(tmp_path, seeds_file, capsys, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    assert (
        main(_cli_args(seeds_file, tmp_path / "o.jsonl", "http://127.0.0.1:9/v1", "--api-key-env", "NO_SUCH_KEY_VAR"))
        == 2
    )
    assert "NO_SUCH_KEY_VAR" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_task_type_and_template_options(tmp_path):
    import argparse

    from shop_eval.synth import parse_task_types, resolve_templates

    assert parse_task_types("all") == []  # every task type the seeds hold
    assert parse_task_types("ner, Multiple Choice,ranking") == [
        "named_entity_recognition",
        "multiple-choice",
        "ranking",
    ]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown task type"):
        parse_task_types("summarization")
    tpl = tmp_path / "mine.txt"
    tpl.write_text("Task type: ranking\n$examples\nWrite $n_new new examples.\n")
    assert resolve_templates([f"ranking={tpl}"], ["ranking", "generation"]) == {"ranking": tpl}
    assert resolve_templates([str(tpl)], ["ranking"]) == {"ranking": tpl}
    with pytest.raises(UsageError, match="TYPE=PATH"):
        resolve_templates([str(tpl)], ["ranking", "generation"])
    with pytest.raises(UsageError, match="not generated"):
        resolve_templates([f"ranking={tpl}"], ["generation"])


# =========================================================================== the command, interrupted and restarted


def _cli(seeds_file, out, base_url, *extra):
    return [
        sys.executable,
        "-m",
        "shop_eval.cli",
        "-v",
        "synth",
        str(seeds_file),
        "--out",
        str(out),
        "--model",
        "fake",
        "--base-url",
        base_url,
        "--count",
        "36",
        "--per-request",
        "2",
        "--concurrency",
        "2",
        "--timeout",
        "2",
        "--backoff",
        "0.02",
        *extra,
    ]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _signal_mid_run(cmd, env, srv, out, lines, sig):
    """Start the command; once the server holds an answer back (so the run cannot end) and ``out`` has
    ``lines`` lines (the answers let through, written), send ``sig``.  Returns (process, stdout, stderr) after
    the server has seen the process's held requests go (their connections closed)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        srv.wait_held(1)
        deadline = time.monotonic() + 120  # a guard against a hang, not a timing assumption
        while _lines(out) < lines:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, f"{_lines(out)} lines, waited for {lines}"
            time.sleep(0.01)
        proc.send_signal(sig)
        so, se = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    srv.wait_none_held()
    return proc, so, se


def test_interrupt_kill_and_restart_lose_and_duplicate_nothing(tmp_path, seeds_file):
    out = tmp_path / "synth.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    # three answers (two items each) go out per run; the next one is held until the run has been stopped
    with FakeOpenAIServer(faults=["ok", "500", "ok", "429"], cycle=True, retry_after=0.05, hold_after=3) as srv:
        cmd = _cli(seeds_file, out, srv.base_url, "--timeout", "60")  # held requests never time out
        blobs = []
        for k, sig in enumerate((signal.SIGINT, signal.SIGTERM, signal.SIGKILL)):
            if k:
                srv.allow(3)
            proc, so, se = _signal_mid_run(cmd, env, srv, out, 6 * (k + 1), sig)
            blobs += [so, se]
            if sig == signal.SIGKILL:
                assert proc.returncode == -signal.SIGKILL
            else:  # Ctrl-C and SIGTERM: stop at once, say how to go on
                assert proc.returncode == 130 and b"re-run the same command" in se.splitlines()[-1], se[-2000:]
            assert len(_read_ids(out)) == 6 * (k + 1)  # every answer let through was written, nothing else
        before = _read_ids(out)
        # as if the kill had come in the middle of a write: a partial last line
        with open(out, "ab") as fh:
            fh.write(b'{"id": "synth-0123456789ab-ner-000007", "input_field": "I bought')
        srv.release()
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(done.stdout)
    ids = _read_ids(out)
    assert len(ids) == 36 and len(set(ids)) == 36  # 0 lost, 0 duplicated
    assert ids[: len(before)] == before  # nothing written before the kill was touched
    assert report["resumed_with"] == len(before) == 18 and report["accepted_this_run"] == 18
    assert report["partial_lines_cut"] and report["complete"]
    assert len(load_records(out).records) == 36
    rejects = tmp_path / "synth.jsonl.rejects.jsonl"
    assert rejects.read_bytes().endswith(b"\n") or not rejects.read_bytes()
    for blob in (*blobs, done.stdout, done.stderr, *(f.read_bytes() for f in tmp_path.iterdir())):
        assert KEY.encode() not in blob


# =========================================================================== property: what we show, we read back

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_TEXT = st.text(alphabet=st.sampled_from(list("abcdefghij XYZ?,.'\"é日本\n")), min_size=1, max_size=80).filter(
    lambda s: s.strip() and "\n\n\n" not in s
)


@st.composite
def _examples(draw):
    t = draw(st.sampled_from(TASK_TYPES))
    if t == "multiple-choice":
        truth = draw(st.integers(0, 9))
    elif t == "retrieval":
        truth = draw(st.lists(st.integers(0, 30), min_size=1, max_size=5))
    elif t == "ranking":
        n = draw(st.integers(1, 6))
        truth = [float(w) for w in draw(st.permutations(range(1, n + 1)))]
    elif t == "named_entity_recognition":
        truth = draw(st.lists(st.text(min_size=0, max_size=12), max_size=4))
    else:
        truth = draw(_TEXT).strip()
    from shop_eval.records import DEFAULT_METRIC

    row = {"input_field": draw(_TEXT).strip(), "output_field": truth, "task_name": "p", "task_type": t}
    return make_record({**row, "metric": DEFAULT_METRIC[t]}, "h", "")


@settings(max_examples=200, deadline=None)
@given(_examples())
def test_rendered_examples_parse_back(rec):
    from shop_eval.prompts import ranking_order

    (back,) = parse_reply(render_example(rec), rec.task_type, rec.task_name)
    assert not isinstance(back, Rejected), back
    assert back.input_field == rec.input_field
    if rec.task_type == "ranking":
        assert ranking_order(back.output_field) == ranking_order(rec.output_field)
    else:
        assert back.output_field == rec.output_field


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126)))
def test_tokenizer_is_rouge_scores_own_on_ascii(text):
    from rouge_score import tokenizers

    assert RougeTokenizer().tokenize(text) == tokenizers.DefaultTokenizer(use_stemmer=False).tokenize(text)


def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    import fcntl

    lock = os.open(tmp_path / "synth.jsonl.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # as a first run would hold it
    try:
        with pytest.raises(DataError, match="another shop-eval synth"):
            _run(_opts(tmp_path, None, count=2), _StubClient([]))
    finally:
        os.close(lock)
    assert not (tmp_path / "synth.jsonl").exists()
