"""The run's files: append-only JSON Lines that survive ``kill -9``, their recovery, and the lock.

Every item has a stable id ``synth-<config>-<type>-<index>`` (``<config>``: :func:`config_id`, a hash of the
seeds, templates, model and sampling options; ``<index>``: 0 … count-1 per task type) and is written with one
``write`` of one complete line on an ``O_APPEND`` descriptor (fsync'd on a cadence).  After a crash the next run
of the same command checks every complete line, truncates a partial last line, keeps the rest, and generates
only the missing indices.  A run holds an exclusive ``flock`` on ``OUT.lock``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import task_types as registry
from ..errors import DataError
from ..io import parse_json, read_bytes
from ..records import Record, make_record

ID_RE = re.compile(r"^synth-([0-9a-f]{12})-([a-z_]+)-(\d+)$")


def item_id(config: str, task_type: str, index: int) -> str:
    return f"synth-{config}-{registry.get(task_type).short}-{index:06d}"


def parse_item_id(value: Any) -> tuple[str, str | None, int] | None:
    """(config, task type or None when the short name is unknown, index) of an item id; None when it is none."""
    m = ID_RE.match(value if isinstance(value, str) else "")
    if m is None:
        return None
    t = registry.by_short(m.group(2))
    return m.group(1), (t.name if t else None), int(m.group(3))


def config_id(seeds: dict[str, list[Record]], templates: dict[str, str], opts: Any) -> str:
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


def check_rows(rows: list[dict], source: str, config: str, types: Iterable[str]) -> None:
    """Every row of an output must be an item of this configuration, of a requested task type, once, and a
    valid record (checked before the file is changed: a file that is not ours is refused, never truncated)."""
    types = set(types)
    seen: set[str] = set()
    for k, row in enumerate(rows, 1):
        where = f"line {k}"
        rid = row.get("id") if isinstance(row, dict) else None
        parsed = parse_item_id(rid)
        if parsed is None:
            raise DataError(source, where, "id", f"not a synth item id: {rid!r}")
        if parsed[0] != config:
            raise DataError(
                source, where, "id",
                f"written by another synth configuration ({parsed[0]}, this one is {config}): "
                "give the same seeds, templates, model and sampling options, or another --out",
            )  # fmt: skip
        if parsed[1] not in types:
            raise DataError(source, where, "id", f"task type of {rid!r} not requested")
        if rid in seen:
            raise DataError(source, where, "id", f"duplicate id {rid}")
        seen.add(rid)
        make_record({f: v for f, v in row.items() if f != "id"}, source, where)


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
    data = read_bytes(path)
    keep = data.rfind(b"\n") + 1
    body, tail = data[:keep], data[keep:]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"byte {exc.start}", None, "not UTF-8") from None
    rows = [parse_json(line, str(path), f"line {n}") for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    last = None
    if tail.strip():
        with contextlib.suppress(UnicodeDecodeError, DataError):
            last = parse_json(tail.decode("utf-8"), str(path), "last line")
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
    and on close.  ``redact`` (a text → text function) is applied to every line before it is written."""

    def __init__(
        self, path: str | os.PathLike, fsync_interval: float = 1.0, redact: Callable[[str], str] | None = None
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.fsync_interval = fsync_interval
        self.redact = redact
        self._last_sync = time.monotonic()
        self._dirty = False

    def write(self, obj: dict) -> None:
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        if self.redact is not None:
            line = self.redact(line)
        data = memoryview(line.encode("utf-8"))
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


class OutputLock:
    """An exclusive ``flock`` on ``OUT.lock`` for the whole run: two runs appending to one output would
    produce the same ids twice.  The kernel drops it when the process dies (even by ``kill -9``), so a crash
    never leaves a stale lock."""

    def __init__(self, path: Path, out: Path):
        self.path, self.out, self.fd = path, out, -1

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataError(str(self.out), "", None, "another shop-eval synth is writing this output") from None
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1


class ItemStore:
    """The items (``OUT``, append-only), the rejects log beside it and the lock, opened together."""

    def __init__(self, out: Path, rejects: Path, lock: Path, fsync_interval: float, redact: Callable[[str], str]):
        self.out_path, self.rejects_path = out, rejects
        self.fsync_interval, self.redact = fsync_interval, redact
        self.lock = OutputLock(lock, out)
        self.items: JsonlAppender | None = None
        self.rejects: JsonlAppender | None = None
        #: bytes of a partial last line cut off, per file
        self.cut_bytes: dict[str, int] = {}

    def open(self, validate: Callable[[list[dict]], None]) -> tuple[list[dict], list[dict]]:
        """Take the lock, recover both files (the items checked by ``validate`` first), open them for
        appending; returns (the items kept, the rejects kept)."""
        self.lock.acquire()
        try:
            rows = self._recover(self.out_path, validate)
            rejected = self._recover(self.rejects_path, None)
            self.items = JsonlAppender(self.out_path, self.fsync_interval)
            self.rejects = JsonlAppender(self.rejects_path, self.fsync_interval, redact=self.redact)
        except BaseException:
            self.close()
            raise
        return rows, rejected

    def _recover(self, path: Path, validate: Callable[[list[dict]], None] | None) -> list[dict]:
        rows, cut = recover_jsonl(path, validate)
        if cut:
            self.cut_bytes[str(path)] = cut
        return rows

    def write_item(self, row: dict) -> None:
        self.items.write(row)

    def write_reject(self, row: dict) -> None:
        self.rejects.write(row)

    def sync(self) -> None:
        for f in (self.items, self.rejects):
            if f is not None:
                f.sync()

    def close(self) -> None:
        for f in (self.items, self.rejects):
            if f is not None:
                f.close()
        self.lock.release()
