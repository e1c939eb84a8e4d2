"""``shop-eval synth``: synthetic ShopBench training data from any OpenAI-compatible endpoint.

Self-Instruct style: each request shows the model a few seed examples of one task type (rendered
with the task type's prompt template, ``shop_eval/templates/synth_<type>.txt``) and asks for
``--per-request`` new ones; the reply is split on the separator line (``###``) and every block is
parsed into a :class:`~shop_eval.records.Record` (``Input:`` / ``Output:``; the answer in the format
of :func:`shop_eval.prompts.format_answer`, read back by the loaders' alpaca conversion).  A block
that does not parse, or whose answer does not fit its task type, is rejected and counted by reason,
never written.  Accepted items must also pass:

* a near-duplicate filter against the pool (the seeds and every item accepted so far): the seed
  project's rule, ROUGE-L F > 0.7 (``rouge-score``'s scorer), without comparing every pair.  Because
  ``ROUGE-L F = 2·LCS/(m+n)`` and the LCS is at most the multiset token overlap, a pair above 0.7
  has a multiset token Jaccard of at least 0.7/1.3 ≈ 0.54; MinHash LSH over token shingles
  (datasketch, 256 permutations in 64 bands of 4: a pair at Jaccard 0.54 is a candidate with
  probability 0.997) proposes the candidates, a vectorised MinHash Jaccard estimate (6 standard
  deviations below 0.54) and the exact overlap bound ``2·|A∩B|/(m+n)`` prune them, and ROUGE-L is
  computed only on what is left;
* decontamination against ``--eval-set`` files (:mod:`shop_eval.decontam`: exact and 13-gram
  overlap of the prompt).

The client is the official ``openai`` ``AsyncOpenAI`` (``max_retries=0``: retries are ours, with
tenacity: full-jitter exponential backoff on 429, 5xx, timeouts, dropped connections and malformed
bodies, honouring ``Retry-After``/``retry-after-ms``), with a per-request timeout, bounded
concurrency (``asyncio.Semaphore``) and two ``aiolimiter`` buckets: requests per minute and tokens
per minute (estimated before a request, topped up with the reported usage after it).  The key comes
from an environment variable only and is never logged or written.

Resumable, nothing lost, nothing duplicated: the output is an append-only JSON Lines file; each item
has a stable id ``synth-<config>-<type>-<index>`` (``<config>``: a hash of the seeds, templates, model
and sampling options; ``<index>``: 0 … count-1 per task type) and is written with one ``write`` of
one complete line (fsync'd on a cadence).  After a crash or ``kill -9`` the next run of the same
command truncates a partial last line, keeps every complete one, and generates only the missing
indices.  Rejected blocks go to a separate rejects log with their reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import math
import os
import random
import re
import string
import sys
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .loaders import FORMATS, LoadResult, canonical_task_type, load_records
from .prompts import format_answer
from .records import SHORT_NAMES, TASK_TYPES, DataError, Record, make_record

log = logging.getLogger(__name__)

SEPARATOR = "###"
TEMPLATE_VARS = ("task_type", "examples", "n_new", "separator")
ROUGE_THRESHOLD = 0.7
ID_RE = re.compile(r"^synth-([0-9a-f]{12})-([a-z_]+)-(\d+)$")
_SHORT_TO_TYPE = {v: k for k, v in SHORT_NAMES.items()}

# reasons a block or a request is rejected (the report counts them)
R_NO_MARKERS = "no_markers"
R_EMPTY_INPUT = "empty_input"
R_EMPTY_OUTPUT = "empty_output"
R_INVALID_OUTPUT = "invalid_output"
R_OUT_OF_RANGE = "answer_out_of_range"
R_TRUNCATED = "truncated"
R_DUPLICATE = "duplicate"
R_NEAR_DUPLICATE = "near_duplicate"
R_CONTAMINATED = "contaminated"
R_SURPLUS = "surplus"
R_EMPTY_RESPONSE = "empty_response"
R_REQUEST_FAILED = "request_failed"


# =========================================================================== templates and prompts


def template_path(task_type: str) -> Path:
    """The shipped template of ``task_type`` (``shop_eval/templates/synth_<short name>.txt``)."""
    return Path(str(resources.files("shop_eval") / "templates" / f"synth_{SHORT_NAMES[task_type]}.txt"))


def load_template(path: str | os.PathLike) -> string.Template:
    """Read a prompt template (``string.Template``: ``$examples``, ``$n_new``, ``$task_type``,
    ``$separator``; ``$$`` for a dollar sign) and check its placeholders."""
    text = Path(path).read_text(encoding="utf-8")
    tpl = string.Template(text)
    if not tpl.is_valid():
        raise DataError(str(path), "", None, "invalid template: a '$' that is not a placeholder (write $$)")
    names = set(tpl.get_identifiers())
    unknown = names - set(TEMPLATE_VARS)
    if unknown:
        raise DataError(str(path), "", None, f"unknown placeholder(s) {sorted(unknown)} (known: {list(TEMPLATE_VARS)})")
    for need in ("examples", "n_new"):
        if need not in names:
            raise DataError(str(path), "", None, f"the template must contain ${need}")
    return tpl


def render_example(record: Record, separator: str = SEPARATOR) -> str:
    """A seed example as the model should write new ones: ``Input:``, the prompt, ``Output:``, the
    answer (:func:`format_answer`), the separator line."""
    return f"Input:\n{record.input_field.strip()}\nOutput:\n{format_answer(record)}\n{separator}"


def render_prompt(
    template: string.Template, task_type: str, examples: Iterable[Record], n_new: int, separator: str = SEPARATOR
) -> str:
    return template.substitute(
        task_type=task_type,
        examples="\n".join(render_example(r, separator) for r in examples),
        n_new=n_new,
        separator=separator,
    )


# =========================================================================== parsing the reply


@dataclass
class Rejected:
    reason: str
    detail: str
    text: str


_INPUT_RE = re.compile(r"^[ \t]*(?:\*\*)?Input(?:\*\*)?:(?:\*\*)?[ \t]*(.*)$", re.MULTILINE)
_OUTPUT_RE = re.compile(r"^[ \t]*(?:\*\*)?Output(?:\*\*)?:(?:\*\*)?[ \t]*(.*)$", re.MULTILINE)
_OPTION_RE = re.compile(r"^[ \t]*(?:[A-Za-z][A-Za-z ]{0,30}:[ \t]*)?(\d{1,3})[.)][ \t]+\S", re.MULTILINE)


def split_blocks(text: str, separator: str = SEPARATOR) -> tuple[list[str], str]:
    """(complete blocks, the text after the last separator line)."""
    parts = re.split(rf"^[ \t]*{re.escape(separator)}[ \t]*$", text, flags=re.MULTILINE)
    return [p for p in parts[:-1]], parts[-1]


def _option_numbers(prompt: str) -> set[int]:
    return {int(m.group(1)) for m in _OPTION_RE.finditer(prompt)}


def parse_block(block: str, task_type: str, task_name: str, source: str = "reply") -> Record | Rejected:
    """One ``Input:`` … ``Output:`` block → a validated Record, or why not.

    The input starts after the first line that begins with ``Input:`` (text on that line after the
    colon is kept); the answer is what follows the *last* line that begins with ``Output:``, so a
    prompt that itself ends with ``Output:`` (as many ShopBench prompts do) survives."""
    from .loaders import record_from_alpaca  # the one conversion of a text answer into a truth

    raw = block.strip()
    m_in = _INPUT_RE.search(block)
    outs = list(_OUTPUT_RE.finditer(block))
    if m_in is None or not outs or outs[-1].start() < m_in.start():
        return Rejected(R_NO_MARKERS, "no 'Input:' line followed by an 'Output:' line", raw)
    m_out = outs[-1]
    prompt = (m_in.group(1) + block[m_in.end() : m_out.start()]).strip()
    answer = (m_out.group(1) + block[m_out.end() :]).strip()
    if not prompt:
        return Rejected(R_EMPTY_INPUT, "empty input", raw)
    if not answer:
        return Rejected(R_EMPTY_OUTPUT, "empty output", raw)
    try:
        rec = record_from_alpaca(
            {"instruction": prompt, "output": answer, "task_type": task_type}, source, "", task_name, LoadResult()
        )
    except DataError as err:
        return Rejected(R_INVALID_OUTPUT, err.message, raw)
    if task_type in ("multiple-choice", "retrieval", "ranking"):
        options = _option_numbers(prompt)
        if len(options) >= 2:
            if task_type == "multiple-choice":
                picked = [rec.output_field]
            elif task_type == "retrieval":
                picked = rec.output_field
            else:
                picked = [i + 1 for i, w in enumerate(rec.output_field) if w > 0]
                if len(rec.output_field) > max(options):
                    picked.append(len(rec.output_field))
            bad = sorted({p for p in picked if p not in options})
            if bad:
                return Rejected(R_OUT_OF_RANGE, f"answer names {bad}, options are {sorted(options)}", raw)
    return rec


def parse_reply(
    text: str, task_type: str, task_name: str, *, truncated: bool = False, separator: str = SEPARATOR
) -> list[Record | Rejected]:
    """Split a reply on the separator and parse every block.  The text after the last separator
    counts as a block when it holds an ``Input:`` line, unless the reply was cut off
    (``finish_reason == "length"``): then it is rejected as ``truncated``."""
    blocks, tail = split_blocks(text, separator)
    out: list[Record | Rejected] = []
    for b in blocks:
        if not b.strip():
            continue
        out.append(parse_block(b, task_type, task_name))
    if _INPUT_RE.search(tail):
        if truncated:
            out.append(Rejected(R_TRUNCATED, "the reply was cut off (finish_reason=length)", tail.strip()))
        else:
            out.append(parse_block(tail, task_type, task_name))
    return out


# =========================================================================== near-duplicates

_TOKEN_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+")


class RougeTokenizer:
    """rouge-score's default tokenization (lower case, alphanumeric runs) extended to any script:
    word characters of every script make words, and each CJK character is a token of its own (the
    default tokenizer drops non-ASCII text, which would make all Japanese prompts identical)."""

    def tokenize(self, text: str) -> list[str]:
        return _TOKEN_RE.findall(text.lower())


class NearDupIndex:
    """The pool: exact duplicates (normalised text) and near-duplicates (ROUGE-L F > ``threshold``)
    found through MinHash LSH candidates, pruned by their MinHash Jaccard estimate (vectorised) and
    by an exact overlap bound, then scored with rouge-score."""

    def __init__(self, threshold: float = ROUGE_THRESHOLD, num_perm: int = 256, bands: int = 64, seed: int = 1):
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        self.tokenizer = RougeTokenizer()
        self._scorer = None
        self.lsh = MinHashLSH(num_perm=num_perm, params=(bands, num_perm // bands))
        self.texts: dict[str, str] = {}
        self.shingles: dict[str, frozenset[bytes]] = {}
        self.exact: dict[str, str] = {}
        self.stats = Counter()
        # one MinHash with permutations built once; copies share them
        self._proto = MinHash(num_perm=num_perm, seed=seed, hashfunc=zlib.crc32)  # C-speed 32-bit hash
        self._last: tuple[str, list[str], frozenset[bytes], Any] | None = None
        # every pool item's MinHash values, one row each (for the vectorised estimate)
        self._hv = np.zeros((1024, num_perm), dtype=self._proto.hashvalues.dtype)
        self._rows: dict[str, int] = {}
        j = threshold / (2 - threshold) if 0 < threshold < 1 else 0.0
        self._min_agree = max(0.0, j - 6 * math.sqrt(j * (1 - j) / num_perm)) * num_perm

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def scorer(self):
        """rouge-score's ROUGE-L scorer (imported on first use: it loads nltk, seconds on a busy machine)."""
        if self._scorer is None:
            from rouge_score import rouge_scorer

            self._scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=self.tokenizer)
        return self._scorer

    @staticmethod
    def _shingles(tokens: list[str]) -> frozenset[bytes]:
        seen: dict[str, int] = {}
        out = []
        for t in tokens:  # multiset → set: the k-th occurrence of a token is its own shingle
            k = seen[t] = seen.get(t, 0) + 1
            out.append(f"{t}\x00{k}".encode())
        return frozenset(out)

    def _analyse(self, text: str) -> tuple[list[str], frozenset[bytes], Any]:
        """Tokens, shingles and MinHash of ``text`` (the last one is kept: check() then add())."""
        if self._last is not None and self._last[0] == text:
            return self._last[1:]
        tokens = self.tokenizer.tokenize(text)
        shingles = self._shingles(tokens)
        mh = self._proto.copy()  # an empty MinHash sharing the permutations (made once)
        if shingles:
            mh.update_batch(list(shingles))
        self._last = (text, tokens, shingles, mh)
        return tokens, shingles, mh

    def check(self, text: str) -> tuple[str, str] | None:
        """``(reason, detail)`` when ``text`` duplicates the pool, else None."""
        tokens, shingles, mh = self._analyse(text)
        norm = " ".join(tokens) or text.strip()
        if norm in self.exact:
            return R_DUPLICATE, f"same text as {self.exact[norm]}"
        if not self.threshold or self.threshold >= 1 or not tokens:
            return None
        n = len(shingles)
        limit = self.threshold / 2
        best: tuple[float, str] | None = None
        pool = self.shingles
        # LCS <= multiset overlap, so ROUGE-L F <= 2 |A ∩ B| / (m + n): skip what cannot pass
        found = list(self.lsh.query(mh))
        n_found = len(found)
        self.stats["lsh_candidates"] += n_found
        if found:
            # MinHash estimate first, vectorised: a pair above the rule has Jaccard >= t/(2-t) (0.54);
            # an estimate more than 6 standard deviations below that is dropped (p ~ 1e-9)
            rows = np.fromiter((self._rows[k] for k in found), dtype=np.int64, count=len(found))
            agree = (self._hv[rows] == mh.hashvalues).sum(axis=1)
            found = [found[i] for i in np.flatnonzero(agree >= self._min_agree)]
        cands = [k for k in found if len(shingles & pool[k]) > limit * (len(pool[k]) + n)]
        self.stats["pruned_by_estimate"] += n_found - len(found)
        self.stats["pruned_by_bound"] += len(found) - len(cands)
        for key in cands:
            self.stats["rouge_comparisons"] += 1
            f = self.scorer.score(self.texts[key], text)["rougeL"].fmeasure
            if f > self.threshold and (best is None or f > best[0]):
                best = (f, key)
        if best is not None:
            return R_NEAR_DUPLICATE, f"ROUGE-L {best[0]:.3f} with {best[1]}"
        return None

    def add(self, key: str, text: str) -> None:
        tokens, shingles, mh = self._analyse(text)
        norm = " ".join(tokens) or text.strip()
        self.exact.setdefault(norm, key)
        if key in self.texts or not tokens:
            return
        self.texts[key] = text
        self.shingles[key] = shingles
        self.lsh.insert(key, mh)
        row = len(self._rows)
        if row == len(self._hv):
            self._hv = np.concatenate([self._hv, np.zeros_like(self._hv)])
        self._hv[row] = mh.hashvalues
        self._rows[key] = row


# =========================================================================== append-only JSON Lines


def recover_jsonl(
    path: str | os.PathLike, validate: Callable[[list[dict]], None] | None = None
) -> tuple[list[dict], int]:
    """Rows of an append-only JSON Lines file whose last write may have been interrupted.

    Every complete line (ending in a newline) must be JSON.  A last line without its newline is a
    write cut short: it is cut off (returns the number of bytes cut) — unless it is a complete JSON
    object after all (the kill fell just before the newline), which is kept and given its newline.
    ``validate(rows)`` sees the rows (the kept last one included) before the file is changed, so a
    file that is not ours is refused, never truncated."""
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    body, tail = data[:keep], data[keep:]
    rows = []
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"byte {exc.start}", None, "not UTF-8") from None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(str(path), f"line {lineno}", None, f"invalid JSON: {exc.msg}") from None
    last = None
    if tail.strip():
        with contextlib.suppress(UnicodeDecodeError, json.JSONDecodeError):
            last = json.loads(tail.decode("utf-8"))
            if not isinstance(last, dict):
                last = None
    if validate is not None:
        validate(rows + ([last] if last is not None else []))
    cut = 0
    if last is not None:
        rows.append(last)
        with open(path, "ab") as fh:
            fh.write(b"\n")
    elif tail:
        cut = len(tail)
        os.truncate(path, keep)
    return rows, cut


class JsonlAppender:
    """Append one JSON object per line: each line is a single ``write`` on an ``O_APPEND`` descriptor
    (so a kill leaves at most a partial last line), fsync'd at most every ``fsync_interval`` seconds
    and on close."""

    def __init__(self, path: str | os.PathLike, fsync_interval: float = 1.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.fsync_interval = fsync_interval
        self._last_sync = time.monotonic()
        self._dirty = False

    def write(self, obj: dict) -> None:
        data = memoryview((json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8"))
        while data:
            n = os.write(self.fd, data)
            data = data[n:]
        self._dirty = True
        if time.monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self.fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self.fd >= 0:
            self.sync()
            os.close(self.fd)
            self.fd = -1


# =========================================================================== the client side


class BadResponse(Exception):
    """A 200 answer that is not a chat completion (no choices, not JSON): retried."""


class Fatal(Exception):
    """An error that retrying cannot fix (bad key, unknown model, bad URL)."""


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _read_completion(body: Any) -> tuple[str, str | None, tuple[int, int] | None]:
    """``(content, finish_reason, (prompt_tokens, completion_tokens) or None)`` of a chat-completions
    answer decoded from JSON; :class:`BadResponse` (retried) when it is not one."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadResponse("the answer holds no choices")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if content is not None and not isinstance(content, str):
        raise BadResponse(f"the message content is a {type(content).__name__}, not text")
    finish = choices[0].get("finish_reason")
    usage = body.get("usage")
    tokens = (
        (_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
        if isinstance(usage, dict)
        else None
    )
    return content or "", finish if isinstance(finish, str) else None, tokens


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The server's ``retry-after-ms`` / ``Retry-After`` (seconds or an HTTP date), if any."""
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(ms) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils

    with contextlib.suppress(TypeError, ValueError, OverflowError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def _dropped_connection(exc: BaseException) -> bool:
    """True when the exception chain holds a closed/refused connection and no real timeout."""
    try:
        import aiohttp
    except ImportError:
        return False
    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(x, aiohttp.ClientConnectionError) and not isinstance(x, TimeoutError) for x in chain):
        return not any(isinstance(x, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)) for x in chain[1:])
    return False


def retry_cause(exc: BaseException) -> str | None:
    """Why an exception is worth a retry (a short label), or None when it is not."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        # the aiohttp transport reports a dropped connection as a connect timeout: look at the cause
        return "connection" if _dropped_connection(exc) else "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        s = exc.status_code
        if s in (408, 409, 429) or s >= 500:
            return str(s)
        return None
    if isinstance(exc, (json.JSONDecodeError, BadResponse)):
        return "bad_body"
    return None


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class _RedactFilter(logging.Filter):
    def __init__(self, secret: str):
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if self.secret in msg:
            record.msg, record.args = msg.replace(self.secret, "***"), None
        return True


def _redact_url(url: str | None) -> str | None:
    return re.sub(r"//[^/@]*@", "//***@", url) if url else url


@dataclass
class SynthOptions:
    out: Path
    model: str
    count: int
    task_types: list[str]
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    templates: dict[str, Path] = field(default_factory=dict)
    eval_sets: list[Path] = field(default_factory=list)
    shots: int = 3
    per_request: int = 5
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    seed: int = 0
    concurrency: int = 8
    rpm: float = 0.0
    tpm: float = 0.0
    timeout: float = 60.0
    max_retries: int = 8
    backoff: float = 1.0
    backoff_max: float = 60.0
    max_retry_after: float = 300.0
    rouge_threshold: float = ROUGE_THRESHOLD
    rejects: Path | None = None
    report: Path | None = None
    fsync_interval: float = 1.0
    max_requests: int = 0
    max_failed: int = 20
    task_name_prefix: str = "synth"
    progress: bool | None = None  # None: when stderr is a terminal
    http: str = "aiohttp"  # the openai client's transport: "aiohttp" (less CPU per request) or "httpx"


def _limits(concurrency: int):
    """Connection pool sized for the requests in flight (the openai default keeps 100 at most)."""
    import httpx2

    return httpx2.Limits(max_connections=max(concurrency, 1) * 2, max_keepalive_connections=max(concurrency, 1) * 2)


def config_id(seeds: dict[str, list[Record]], templates: dict[str, str], opts: SynthOptions) -> str:
    """12 hex digits naming what decides the items: seeds, templates, model and sampling options."""
    h = hashlib.sha256()
    spec = {
        "v": 1,
        "model": opts.model,
        "types": sorted(seeds),
        "templates": {t: templates[t] for t in sorted(templates)},
        "shots": opts.shots,
        "per_request": opts.per_request,
        "temperature": opts.temperature,
        "top_p": opts.top_p,
        "max_tokens": opts.max_tokens,
        "seed": opts.seed,
        "task_name_prefix": opts.task_name_prefix,
    }
    h.update(json.dumps(spec, sort_keys=True).encode())
    for t in sorted(seeds):
        for r in seeds[t]:
            h.update(r.model_dump_json().encode())
    return h.hexdigest()[:12]


def split_count(count: int, types: list[str]) -> dict[str, int]:
    base, extra = divmod(count, len(types))
    return {t: base + (1 if i < extra else 0) for i, t in enumerate(types)}


class Synthesizer:
    def __init__(self, seeds: list[Record], opts: SynthOptions, *, api_key: str, client: Any = None):
        self.opts = opts
        self.api_key = api_key
        self.types = opts.task_types
        self.seeds = {t: [r for r in seeds if r.task_type == t] for t in self.types}
        for t, rs in self.seeds.items():
            if not rs:
                raise DataError("seeds", "", "task_type", f"no seed examples of task type {t!r}")
        self.template_text = {
            t: Path(opts.templates.get(t) or template_path(t)).read_text(encoding="utf-8") for t in self.types
        }
        self.templates = {t: load_template(opts.templates.get(t) or template_path(t)) for t in self.types}
        self.cfg = config_id(self.seeds, self.template_text, opts)
        self.quota = split_count(opts.count, self.types)
        self.rejects_path = opts.rejects or opts.out.with_name(opts.out.name + ".rejects.jsonl")
        self.report_path = opts.report or opts.out.with_name(opts.out.name + ".report.json")
        self.client = client
        # counters
        self.done: dict[str, set[int]] = {t: set() for t in self.types}
        self.n_done: Counter = Counter()  # done indices below the quota, per type
        self._cursor: Counter = Counter()
        self.inflight: Counter = Counter()
        self.rejected: Counter = Counter()
        self.rejected_before: Counter = Counter()
        self.retries: Counter = Counter()
        self.tokens: Counter = Counter()
        self.requests = 0
        self.requests_failed = 0
        self.consecutive_failed = 0
        self.accepted_run = 0
        self.surplus = 0
        self.cut_bytes: dict[str, int] = {}
        self.fatal: str | None = None
        self.stopped: str | None = None
        self._completion_mean: float | None = None
        self._req_counter = 0
        # rate limits (leaky buckets): requests in bursts of at most one second's worth; tokens per minute
        from aiolimiter import AsyncLimiter

        self.rpm_limiter = None
        if opts.rpm:
            burst = max(1.0, opts.rpm / 60)
            self.rpm_limiter = AsyncLimiter(burst, burst * 60 / opts.rpm)
        self.tpm_limiter = AsyncLimiter(opts.tpm, 60) if opts.tpm else None

    # ------------------------------------------------------------------ state
    def _mark_done(self, t: str, i: int) -> None:
        self.done[t].add(i)
        if i < self.quota[t]:
            self.n_done[t] += 1

    def missing(self, t: str) -> int:
        return self.quota[t] - self.n_done[t]

    def _next_index(self, t: str) -> int | None:
        """The lowest index of ``t`` not produced yet (indices are only ever filled: a moving cursor)."""
        i = self._cursor[t]
        while i < self.quota[t] and i in self.done[t]:
            i += 1
        self._cursor[t] = i
        return i if i < self.quota[t] else None

    def _pick(self) -> str | None:
        need = {t: self.missing(t) - self.inflight[t] * self.opts.per_request for t in self.types}
        t = max(self.types, key=lambda x: need[x])
        return t if need[t] > 0 else None

    def _take_lock(self) -> int:
        """An exclusive ``flock`` on ``OUT.lock`` for the whole run: two runs appending to one output
        would produce the same ids twice.  The kernel drops it when the process dies (even by
        ``kill -9``), so a crash never leaves a stale lock."""
        import fcntl

        path = self.opts.out.with_name(self.opts.out.name + ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(str(self.opts.out), "", None, "another shop-eval synth is writing this output") from None
        return fd

    def _check_rows(self, rows: list[dict]) -> None:
        """Every row of the output must be an item of this configuration (checked before any change)."""
        seen: set[str] = set()
        for k, row in enumerate(rows, 1):
            rid = row.get("id") if isinstance(row, dict) else None
            m = ID_RE.match(rid if isinstance(rid, str) else "")
            if not m:
                raise DataError(str(self.opts.out), f"line {k}", "id", f"not a synth item id: {rid!r}")
            if m.group(1) != self.cfg:
                raise DataError(
                    str(self.opts.out),
                    f"line {k}",
                    "id",
                    f"written by another synth configuration ({m.group(1)}, this one is {self.cfg}): "
                    "give the same seeds, templates, model and sampling options, or another --out",
                )
            if _SHORT_TO_TYPE.get(m.group(2)) not in self.done:
                raise DataError(str(self.opts.out), f"line {k}", "id", f"task type {m.group(2)!r} not requested")
            if rid in seen:
                raise DataError(str(self.opts.out), f"line {k}", "id", f"duplicate id {rid}")
            seen.add(rid)
            make_record({f: v for f, v in row.items() if f != "id"}, str(self.opts.out), f"line {k}")

    def _resume(self) -> int:
        rows, cut = recover_jsonl(self.opts.out, self._check_rows)
        if cut:
            self.cut_bytes[str(self.opts.out)] = cut
            log.warning("%s: cut a partial last line (%d bytes) left by an interrupted run", self.opts.out, cut)
        for row in rows:
            m = ID_RE.match(row["id"])
            self._mark_done(_SHORT_TO_TYPE[m.group(2)], int(m.group(3)))
            self.pool.add(row["id"], row["input_field"])
        rrows, rcut = recover_jsonl(self.rejects_path)
        if rcut:
            self.cut_bytes[str(self.rejects_path)] = rcut
        self.rejected_before.update(r.get("reason", "?") for r in rrows if isinstance(r, dict))
        self._session = len(rows) + len(rrows)
        return len(rows)

    # ------------------------------------------------------------------ one request
    def _prompt(self, t: str, n: int) -> str:
        rng = random.Random(f"{self.cfg}:{t}:{self._session}:{n}")
        pool = self.seeds_for_prompt[t]
        shots = rng.sample(pool, min(self.opts.shots, len(pool)))
        return render_prompt(self.templates[t], t, shots, self.opts.per_request)

    def _estimate_tokens(self, prompt: str) -> int:
        completion = self.opts.max_tokens
        if self._completion_mean is not None:
            completion = min(self.opts.max_tokens, int(self._completion_mean * 1.25) + 16)
        return len(prompt) // 4 + completion

    def _wait(self, rs) -> float:
        from tenacity import wait_random_exponential

        exc = rs.outcome.exception() if rs.outcome else None
        ra = retry_after_seconds(exc)
        if ra is not None:
            return min(ra, self.opts.max_retry_after) * (1 + 0.1 * random.random())
        return wait_random_exponential(multiplier=self.opts.backoff, max=self.opts.backoff_max)(rs)

    def _before_sleep(self, rs) -> None:
        exc = rs.outcome.exception()
        cause = retry_cause(exc) or type(exc).__name__
        self.retries[cause] += 1
        log.debug("retry %s after %s (attempt %d)", rs.args[0] if rs.args else "", cause, rs.attempt_number)

    async def _call(self, rid: str, prompt: str) -> tuple[str, str | None]:
        import openai
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        est = self._estimate_tokens(prompt)
        attempt_no = 0

        async def attempt() -> Any:
            nonlocal attempt_no
            attempt_no += 1
            if self.rpm_limiter is not None:
                await self.rpm_limiter.acquire()
            if self.tpm_limiter is not None:
                await self.tpm_limiter.acquire(min(est, self.tpm_limiter.max_rate))
            # The chat-completions endpoint through the client's own request path (auth, transport,
            # error mapping, JSON decoding), with the body already in wire form and the answer kept as
            # JSON: `chat.completions.create` would re-walk the body through the SDK's TypedDict
            # transform (measured ~0.7 ms of CPU a request) and build a ChatCompletion model from the
            # answer (~0.1 ms), of which only three fields are read (checked in `_read_completion`).
            resp = await self.client.post(
                "/chat/completions",
                cast_to=object,
                body={
                    "model": self.opts.model,
                    "messages": [{"role": "user", "content": prompt}],
                    "temperature": self.opts.temperature,
                    "top_p": self.opts.top_p,
                    "max_tokens": self.opts.max_tokens,
                },
                options={"headers": {"X-Shop-Eval-Request": rid, "X-Shop-Eval-Attempt": str(attempt_no)}},
            )
            return _read_completion(resp)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.opts.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: retry_cause(e) is not None),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            resp = await retrying(attempt)
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403, 404):
                raise Fatal(f"HTTP {exc.status_code}: {redact(str(exc.message), self.api_key)}") from None
            raise
        content, finish, usage = resp
        if usage is not None:
            pt, ct = usage
            self.tokens["prompt"] += pt
            self.tokens["completion"] += ct
            self.tokens["total"] += pt + ct
            m = self._completion_mean
            self._completion_mean = ct if m is None else 0.9 * m + 0.1 * ct
            extra = pt + ct - est
            if extra > 0 and self.tpm_limiter is not None:
                await self.tpm_limiter.acquire(min(extra, self.tpm_limiter.max_rate))
        return content, finish

    def _reject(self, rid: str, t: str, reason: str, detail: str, text: str = "", record: dict | None = None) -> None:
        self.rejected[reason] += 1
        row = {"request": rid, "task_type": t, "reason": reason, "detail": redact(detail, self.api_key)[:500]}
        if text:
            row["text"] = redact(text, self.api_key)[:4000]
        if record is not None:
            row["record"] = record
        self.rejects_out.write(row)

    def _accept_reply(self, rid: str, t: str, content: str, finish: str | None) -> None:
        task_name = f"{self.opts.task_name_prefix}/{SHORT_NAMES[t]}"
        items = parse_reply(content, t, task_name, truncated=finish == "length")
        if not items:
            self._reject(rid, t, R_EMPTY_RESPONSE, f"no example in the reply (finish_reason={finish})", content)
            return
        for item in items:
            if isinstance(item, Rejected):
                self._reject(rid, t, item.reason, item.detail, item.text)
                continue
            dup = self.pool.check(item.input_field)
            if dup is not None:
                self._reject(rid, t, dup[0], dup[1], item.input_field)
                continue
            if self.decontam is not None:
                why = self.decontam.match(item.input_field)
                if why is not None:
                    self._reject(rid, t, R_CONTAMINATED, why, item.input_field)
                    continue
            idx = self._next_index(t)
            if idx is None:
                self.surplus += 1
                self._reject(rid, t, R_SURPLUS, "the count was already reached", record=item.model_dump())
                continue
            item_id = f"synth-{self.cfg}-{SHORT_NAMES[t]}-{idx:06d}"
            self.out.write({"id": item_id, **item.model_dump()})
            self._mark_done(t, idx)
            self.accepted_run += 1
            self.pool.add(item_id, item.input_field)

    async def _one(self, t: str, n: int) -> None:
        """One request.  Its concurrency slot is given back as soon as the HTTP exchange ends; the
        reply then waits in ``self._replies`` for :meth:`_process_next`, so the next request goes out
        before this reply is parsed, filtered and written (see there)."""
        rid = f"{self.cfg}-{SHORT_NAMES[t]}-s{self._session}-r{n}"
        reply: tuple[str, str | None] | None = None
        try:
            prompt = self._prompt(t, n)
            try:
                reply = await self._call(rid, prompt)
            except Fatal:
                raise
            except Exception as exc:  # retries exhausted, or an error retrying cannot fix for this request
                self.requests_failed += 1
                self.consecutive_failed += 1
                detail = f"{type(exc).__name__}: {exc}"
                self._reject(rid, t, R_REQUEST_FAILED, detail)
                log.warning("request %s failed: %s", rid, redact(detail, self.api_key)[:200])
                if self.consecutive_failed >= self.opts.max_failed:
                    self.stopped = f"{self.consecutive_failed} requests in a row failed (last: {detail[:200]})"
                return
            self.consecutive_failed = 0
        except Fatal as exc:
            self.fatal = str(exc)
        except Exception as exc:
            self._crashed(exc)
        finally:
            self.sem.release()
            if reply is not None and not self.fatal:
                self._replies.append((rid, t, *reply))
                if len(self._replies) == 1:
                    asyncio.get_running_loop().call_soon(self._process_next)
            else:
                self._settled(t)

    def _process_next(self) -> None:
        """Parse, filter and write the oldest reply received, one per turn of the event loop.

        Replies arrive in bursts (all requests started together come back together).  Handled inside
        the request, each reply's parsing, validation, near-duplicate search and write would delay
        every later reply of the burst, and the requests that follow them.  Queued here, a reply is
        handled after the network callbacks that are ready, so the connections stay busy; the
        processing is the same, only its order changes.  The count of replies in flight or queued
        (``inflight``) keeps the main loop from asking for more than is still missing."""
        if not self._replies:
            return
        rid, t, content, finish = self._replies.popleft()
        try:
            if not self.fatal:  # the run is stopping: write nothing more
                self._accept_reply(rid, t, content, finish)
        except Exception as exc:
            self._crashed(exc)
        finally:
            self._settled(t)
            if self._replies:
                asyncio.get_running_loop().call_soon(self._process_next)

    def _crashed(self, exc: Exception) -> None:
        """A bug or a failing disk: stop the run, keeping everything written so far."""
        log.exception("synth stopped by an unexpected error")
        self.fatal = redact(f"{type(exc).__name__}: {exc}", self.api_key)

    def _settled(self, t: str) -> None:
        """A request of type ``t`` is fully accounted for (its reply written or rejected, or it failed)."""
        self.inflight[t] -= 1
        self._update_progress()
        self._changed.set()

    # ------------------------------------------------------------------ main loop
    async def _wait_for_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def _loop(self) -> None:
        pending: set[asyncio.Task] = set()
        limit = self.opts.max_requests or (10 * math.ceil(self.opts.count / self.opts.per_request) + 50)
        try:
            while True:
                pending = {p for p in pending if not p.done()}
                if self.fatal or self.stopped:
                    break
                busy = sum(self.inflight.values()) > 0  # requests in flight or replies queued
                t = self._pick()
                if t is None:
                    if not busy:
                        break
                    await self._wait_for_change()
                    continue
                if self.requests >= limit:
                    if not busy:
                        self.stopped = f"stopped after {self.requests} requests (--max-requests {limit})"
                        break
                    await self._wait_for_change()
                    continue
                await self.sem.acquire()
                t = self._pick()
                if t is None or self.fatal or self.stopped:
                    self.sem.release()
                    continue
                self.inflight[t] += 1
                self.requests += 1
                self._req_counter += 1
                pending.add(asyncio.create_task(self._one(t, self._req_counter)))
        except BaseException:  # cancelled (Ctrl-C): stop the requests in flight too
            for p in pending:
                p.cancel()
            raise
        finally:
            if pending:
                if self.fatal or self.stopped:
                    for p in pending:
                        p.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            while self._replies:  # replies already received are still handled (or dropped when fatal)
                self._process_next()

    # ------------------------------------------------------------------ progress
    def _update_progress(self) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=self.accepted_total,
                tokens=self.tokens["total"],
                retries=sum(self.retries.values()),
                rejected=sum(self.rejected.values()),
                requests=self.requests,
            )
        elif time.monotonic() - self._last_log >= 10:
            self._last_log = time.monotonic()
            log.info(
                "synth: %d/%d accepted, %d requests, %d rejected, %d retries, %d tokens",
                self.accepted_total,
                self.opts.count,
                self.requests,
                sum(self.rejected.values()),
                sum(self.retries.values()),
                self.tokens["total"],
            )

    @property
    def accepted_total(self) -> int:
        return sum(self.n_done.values())

    def _make_progress(self):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:.1f}/s" if speed else "-/s")

        console = Console(stderr=True)
        show = self.opts.progress if self.opts.progress is not None else console.is_terminal
        if not show:
            return None
        return Progress(
            TextColumn("[bold]synth"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn(
                "{task.fields[requests]} req · {task.fields[tokens]} tok · "
                "{task.fields[retries]} retries · {task.fields[rejected]} rejected"
            ),
            console=console,
            transient=False,
        )

    # ------------------------------------------------------------------ run
    async def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        self.pool = NearDupIndex(self.opts.rouge_threshold)
        for t in self.types:
            for k, r in enumerate(self.seeds[t]):
                self.pool.add(f"seed-{SHORT_NAMES[t]}-{k}", r.input_field)
        self.decontam = None
        seeds_contaminated = 0
        self.seeds_for_prompt = dict(self.seeds)
        if self.opts.eval_sets:
            from .decontam import DecontamIndex

            self.decontam = DecontamIndex()
            for p in self.opts.eval_sets:
                self.decontam.add(load_records(p).records, Path(p).stem)
            for t in self.types:
                clean = [r for r in self.seeds[t] if self.decontam.match(r.input_field) is None]
                seeds_contaminated += len(self.seeds[t]) - len(clean)
                if not clean:
                    raise DataError("seeds", "", None, f"every seed example of {t!r} overlaps an --eval-set")
                self.seeds_for_prompt[t] = clean
            if seeds_contaminated:
                log.warning("%d seed examples overlap an --eval-set: not shown to the model", seeds_contaminated)
        self._lock = self._take_lock()
        try:
            resumed = self._resume()
        except BaseException:
            os.close(self._lock)
            raise
        self.out = JsonlAppender(self.opts.out, self.opts.fsync_interval)
        self.rejects_out = JsonlAppender(self.rejects_path, self.opts.fsync_interval)
        if self.client is None:
            import openai

            http_client = (
                openai.DefaultAioHttpClient(timeout=self.opts.timeout, limits=_limits(self.opts.concurrency))
                if self.opts.http == "aiohttp"
                else None
            )
            self.client = openai.AsyncOpenAI(
                api_key=self.api_key,
                base_url=self.opts.base_url,
                max_retries=0,
                timeout=self.opts.timeout,
                http_client=http_client,
            )
        self.sem = asyncio.Semaphore(self.opts.concurrency)
        self._replies: deque[tuple[str, str, str, str | None]] = deque()
        self._changed = asyncio.Event()
        self._progress = self._make_progress()
        self._last_log = time.monotonic()
        if resumed:
            log.info("resuming: %d of %d items already in %s", resumed, self.opts.count, self.opts.out)
        # Everything built so far (imported modules, seeds, the pool) lives for the whole run: frozen,
        # it is left out of the collector's full passes, which otherwise stop the event loop for
        # ~0.1 s now and then (measured) while every request waits.
        gc.freeze()
        try:
            if self._progress is not None:
                with self._progress:
                    self._task = self._progress.add_task(
                        "synth",
                        total=self.opts.count,
                        completed=self.accepted_total,
                        tokens=0,
                        retries=0,
                        rejected=0,
                        requests=0,
                    )
                    await self._loop()
                    self._update_progress()
            else:
                await self._loop()
        finally:
            gc.unfreeze()
            self.out.close()
            self.rejects_out.close()
            with contextlib.suppress(Exception):
                await self.client.close()
            os.close(self._lock)  # releases the lock
        elapsed = time.monotonic() - t0
        accepted = self.accepted_total
        report = {
            "out": str(self.opts.out),
            "rejects": str(self.rejects_path),
            "config_id": self.cfg,
            "model": self.opts.model,
            "base_url": _redact_url(self.opts.base_url),
            "task_types": self.types,
            "requested": self.opts.count,
            "requested_by_type": self.quota,
            "accepted": accepted,
            "accepted_by_type": {t: self.quota[t] - self.missing(t) for t in self.types},
            "accepted_this_run": self.accepted_run,
            "resumed_with": resumed,
            "missing": self.opts.count - accepted,
            "complete": accepted == self.opts.count,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(self.rejected.most_common()),
            "rejected_by_reason_all_runs": dict((self.rejected + self.rejected_before).most_common()),
            "requests": self.requests,
            "requests_failed": self.requests_failed,
            "retries": sum(self.retries.values()),
            "retries_by_cause": dict(self.retries.most_common()),
            "tokens": {k: self.tokens[k] for k in ("prompt", "completion", "total")},
            "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(self.requests / elapsed, 2) if elapsed else None,
            "accepted_per_s": round(self.accepted_run / elapsed, 2) if elapsed else None,
            "near_duplicates": {"pool": len(self.pool), **dict(self.pool.stats)},
            "seeds_overlapping_eval_sets": seeds_contaminated,
            "partial_lines_cut": self.cut_bytes,
            "stopped": self.fatal or self.stopped,
        }
        from .io import write_json

        write_json(self.report_path, report)
        return report


# =========================================================================== command line


def parse_task_types(value: str) -> list[str]:
    if value.strip().lower() == "all":
        return list(TASK_TYPES)
    out = []
    for part in value.split(","):
        part = part.strip()
        t = part if part in TASK_TYPES else canonical_task_type(part)
        if t is None:
            t = _SHORT_TO_TYPE.get(part)
        if t is None:
            raise DataError(
                "--task-type", "", None, f"unknown task type {part!r} (one of {', '.join(TASK_TYPES)}, all)"
            )
        if t not in out:
            out.append(t)
    return out


def parse_templates(values: list[str], types: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for v in values or []:
        key, sep, path = v.partition("=")
        if sep and not Path(v).exists():
            t = parse_task_types(key)
            if len(t) != 1:
                raise DataError("--template", "", None, f"{v!r}: name one task type before '='")
            out[t[0]] = Path(path)
        else:
            if len(types) != 1:
                raise DataError("--template", "", None, f"{v!r}: with several task types write TYPE=PATH")
            out[types[0]] = Path(v)
    for t, p in out.items():
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such template (for {t})")
    return out


def register(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="generate synthetic ShopBench training data from an OpenAI-compatible endpoint (resumable)",
        description=(
            "Self-Instruct style generation: a few seed examples per request, the reply split on '###', "
            "each example validated, near-duplicates (ROUGE-L > 0.7) and --eval-set overlaps dropped. "
            "Re-running the same command after an interruption continues where it stopped."
        ),
    )
    p.add_argument("seeds", help="seed examples: a file or folder in any format the loaders read")
    p.add_argument("--out", required=True, type=Path, help="output .jsonl (append-only; ShopBench records + 'id')")
    p.add_argument("--task-type", default="all", help="one of the six task types, a comma list, or 'all' (default)")
    p.add_argument("--count", type=int, required=True, help="items to produce (split evenly over the task types)")
    p.add_argument("--model", required=True)
    p.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL"), help="OpenAI-compatible API base URL")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    p.add_argument("--template", action="append", default=[], help="PATH, or TYPE=PATH (repeatable)")
    p.add_argument("--seed-format", default="auto", choices=FORMATS)
    p.add_argument("--skip-invalid", action="store_true", help="skip (and count) seed rows that fail validation")
    p.add_argument("--eval-set", action="append", default=[], type=Path, help="decontaminate against it (repeatable)")
    p.add_argument("--shots", type=int, default=3, help="seed examples per request")
    p.add_argument("--per-request", type=int, default=5, help="new examples asked for per request")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--seed", type=int, default=0, help="seed of the few-shot sampling")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    p.add_argument("--rpm", type=float, default=0, help="requests per minute (0: no limit)")
    p.add_argument("--tpm", type=float, default=0, help="tokens per minute (0: no limit)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument(
        "--http",
        choices=("aiohttp", "httpx"),
        default="aiohttp",
        help="the openai client's HTTP transport (aiohttp: less CPU per request; httpx: the client's default)",
    )
    p.add_argument("--max-retries", type=int, default=8, help="retries per request")
    p.add_argument("--backoff", type=float, default=1.0, help="backoff multiplier (seconds)")
    p.add_argument("--backoff-max", type=float, default=60.0)
    p.add_argument("--rouge-threshold", type=float, default=ROUGE_THRESHOLD, help="near-duplicate ROUGE-L F (0: off)")
    p.add_argument("--rejects", type=Path, help="rejects log (default OUT.rejects.jsonl)")
    p.add_argument("--report", type=Path, help="report JSON (default OUT.report.json)")
    p.add_argument("--fsync-interval", type=float, default=1.0, help="seconds between fsyncs")
    p.add_argument("--max-requests", type=int, default=0, help="stop after this many requests (0: 10x the need)")
    p.add_argument("--max-failed", type=int, default=20, help="stop after this many failed requests in a row")
    p.add_argument("--task-name-prefix", default="synth")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show progress")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run(args) -> int:
    key = os.environ.get(args.api_key_env)
    if not key:
        print(
            f"error: set the API key in the environment variable {args.api_key_env} "
            "(or name another variable with --api-key-env)",
            file=sys.stderr,
        )
        return 2
    for h in logging.getLogger().handlers:
        h.addFilter(_RedactFilter(key))
    if not getattr(args, "verbose", False):  # one INFO line per HTTP request is noise here
        for name in ("httpx", "httpx2", "openai"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if args.count < 1 or args.per_request < 1 or args.concurrency < 1 or args.shots < 1:
        print("error: --count, --per-request, --concurrency and --shots must be at least 1", file=sys.stderr)
        return 2
    loaded = load_records(args.seeds, args.seed_format, args.skip_invalid)
    seeds = loaded.records
    if loaded.skipped:
        log.warning("%s: %d invalid seed rows skipped, e.g. %s", args.seeds, len(loaded.skipped), loaded.skipped[0])
    types = parse_task_types(args.task_type)
    if args.task_type.strip().lower() == "all":
        types = [t for t in TASK_TYPES if any(r.task_type == t for r in seeds)]
    opts = SynthOptions(
        out=args.out,
        model=args.model,
        count=args.count,
        task_types=types,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        templates=parse_templates(args.template, types),
        eval_sets=args.eval_set,
        shots=args.shots,
        per_request=args.per_request,
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        timeout=args.timeout,
        http=args.http,
        max_retries=args.max_retries,
        backoff=args.backoff,
        backoff_max=args.backoff_max,
        rouge_threshold=args.rouge_threshold,
        rejects=args.rejects,
        report=args.report,
        fsync_interval=args.fsync_interval,
        max_requests=args.max_requests,
        max_failed=args.max_failed,
        task_name_prefix=args.task_name_prefix,
        progress=args.progress,
    )
    synth = Synthesizer(seeds, opts, api_key=key)
    try:
        report = asyncio.run(synth.run())
    except KeyboardInterrupt:
        print(
            f"interrupted: {synth.accepted_total} of {opts.count} items in {opts.out}; "
            "re-run the same command to continue",
            file=sys.stderr,
        )
        return 130
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if report["stopped"]:
        print(f"error: {report['stopped']}; re-run the same command to continue", file=sys.stderr)
        return 1
    return 0 if report["complete"] else 1
