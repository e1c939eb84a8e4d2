"""Files in and out.

Reading: :func:`read_text` (UTF-8, a located error for bad bytes, a folder or an unreadable file),
:func:`parse_json` (a located error for bad JSON, numbers too long for Python's ``int``, nesting too deep),
:func:`read_json_lines` and :func:`iter_json_array` (row by row, each error naming its line).

Writing: every command writes through one :class:`Outputs`, which checks its paths before any work is done
(not a folder, not under a file, writable, none equal to an input or to another output, links followed) and
changes all of a run's files together or not at all: each file is written to a temporary file beside it;
only when the run succeeded are they renamed into place, with Ctrl-C / SIGTERM held back for those few
renames, and a journal beside them so that a run killed in the middle of them is completed by the next
command that reads or writes those files (:func:`recover`).  A failed or interrupted run leaves the previous
outputs byte for byte as they were.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, OutputError, UsageError

#: the deepest JSON nesting accepted (Python's parser would otherwise hit its recursion limit)
MAX_JSON_DEPTH = 200
JOURNAL_PREFIX = ".shop-eval-commit."


def _step(what: str, path: str | os.PathLike) -> None:
    """Called before every write and rename of :class:`Outputs` (a seam for fault-injection tests)."""


# --------------------------------------------------------------------------- reading


def missing_message(p: Path) -> str:
    """Why ``p`` cannot be opened though it may exist as a name: a symlink loop, a dangling link, or no file."""
    if p.is_symlink():
        try:
            p.resolve(strict=True)
        except RuntimeError:
            return "a symlink loop"
        except OSError:
            return f"a dangling symlink (to {os.readlink(p)})"
    return "no such file or folder"


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; a folder, a missing or unreadable file is a :class:`DataError` naming it."""
    p = Path(path)
    recover(p.parent)
    try:
        return p.read_bytes()
    except IsADirectoryError:
        raise DataError(str(p), "", None, "is a folder, expected a file") from None
    except FileNotFoundError:
        raise DataError(str(p), "", None, missing_message(p)) from None
    except PermissionError:
        raise DataError(str(p), "", None, "permission denied") from None
    except OSError as exc:
        raise DataError(str(p), "", None, f"cannot read: {exc.strerror or exc}") from None


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 file (a BOM is dropped); a decoding error names the line and byte offset."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            str(path), f"line {line}", None, f"not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    return text.removeprefix("\ufeff")


_OPEN_CLOSE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _too_deep(text: str) -> bool:
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for m in _OPEN_CLOSE.finditer(text):
        c = m.group(0)
        if c in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif c in "]}":
            depth -= 1
    return False


def json_error(exc: Exception) -> str:
    """The message for a JSON document Python cannot read."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    if isinstance(exc, RecursionError):
        return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(exc, ValueError) and "digits" in str(exc):
        return "a number with more than 4300 digits"
    return f"invalid JSON: {exc}"


def parse_json(text: str, source: str, where: str) -> Any:
    """``json.loads`` with a :class:`DataError` for every way it can fail (syntax, huge ints, deep nesting)."""
    if _too_deep(text):
        raise DataError(source, where, None, json_error(RecursionError()))
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DataError(source, where, None, json_error(exc)) from None


def iter_json_lines(text: str, source: str) -> Iterator[tuple[str, Any]]:
    """``("line N", object)`` per non-empty line; a line that is not valid JSON yields its
    :class:`DataError` instead of an object (so that a reader that skips bad rows can go on)."""
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            obj: Any = parse_json(line, source, where)
        except DataError as err:
            obj = err
        yield where, obj


def read_json_lines(path: str | os.PathLike) -> Iterator[tuple[str, Any]]:
    """The objects of a JSON Lines file; the first bad line raises."""
    for where, obj in iter_json_lines(read_text(path), str(path)):
        if isinstance(obj, DataError):
            raise obj
        yield where, obj


_WS = re.compile(r"[ \t\n\r]*")


def iter_json_array(text: str, source: str) -> Iterator[tuple[str, Any]]:
    """Yield ("row R (line L)", element) for a JSON array, decoding element by element so that an error names
    its row and line; anything after the closing ``]`` is an error too."""
    dec = json.JSONDecoder()
    i = _WS.match(text, 0).end()
    if text[i : i + 1] != "[":
        raise DataError(source, "line 1", None, "expected a JSON array")
    i = _WS.match(text, i + 1).end()
    row, last_pos, last_line = 0, 0, 1
    if text[i : i + 1] == "]":
        end = i + 1
    else:
        while True:
            row += 1
            last_line += text.count("\n", last_pos, i)
            last_pos = i
            where = f"row {row} (line {last_line})"
            try:
                obj, end = dec.raw_decode(text, i)
            except json.JSONDecodeError as exc:
                raise DataError(source, f"row {row} (line {exc.lineno})", None, json_error(exc)) from None
            except (ValueError, RecursionError) as exc:
                raise DataError(source, where, None, json_error(exc)) from None
            if isinstance(obj, (list, dict)) and _too_deep(text[i:end]):
                raise DataError(source, where, None, json_error(RecursionError()))
            yield where, obj
            i = _WS.match(text, end).end()
            c = text[i : i + 1]
            if c == ",":
                i = _WS.match(text, i + 1).end()
                continue
            if c == "]":
                end = i + 1
                break
            line = last_line + text.count("\n", last_pos, i)
            raise DataError(source, f"row {row} (line {line})", None, "invalid JSON: expected ',' or ']' after the row")
    rest = _WS.match(text, end).end()
    if rest < len(text):
        line = text.count("\n", 0, rest) + 1
        raise DataError(source, f"line {line}", None, "unexpected text after the JSON array's closing ']'")


def json_kind(text: str) -> str:
    """``array`` (a JSON array document), ``lines`` (JSON Lines) or ``unknown``.  A file whose first line is
    itself a complete JSON value followed by more lines is JSON Lines, whatever that first value is."""
    i = _WS.match(text, 0).end()
    c = text[i : i + 1]
    if c == "{":
        return "lines"
    if c != "[":
        return "unknown"
    first, _, rest = text[i:].partition("\n")
    if rest.strip():
        try:
            json.loads(first)
        except (ValueError, RecursionError):
            return "array"
        return "lines"
    return "array"


def read_json(path: str | os.PathLike) -> Any:
    """A whole JSON document."""
    return parse_json(read_text(path), str(path), "")


# --------------------------------------------------------------------------- writing


def _real(p: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(p))


def check_output_path(path: str | os.PathLike, option: str = "") -> Path:
    """Refuse an output that cannot be written, before any work is done: a folder, a path under a file, a
    folder without write permission (the nearest existing one is checked), a symlink loop."""
    p = Path(path)
    label = f"{option} {p}" if option else str(p)
    try:
        real = Path(_real(p))
    except OSError as exc:  # a symlink loop
        raise OutputError(f"{label}: {exc.strerror or exc}") from None
    if real.is_dir():
        raise OutputError(f"{label}: is a folder, expected a file path")
    if real.exists() and not real.is_file():
        raise OutputError(f"{label}: is not a regular file (a device, FIFO or socket): write to a file")
    parent = real.parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{label}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: cannot write in {parent} (permission denied)")
    return p


def _same(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
    except OSError:
        pass
    return _real(a) == _real(b)


def _inputs_of(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for i in inputs:
        p = Path(i)
        if p.is_dir():
            files += [f for f in p.rglob("*") if f.is_file()]
        elif p.exists():
            files.append(p)
    return files


class Outputs:
    """The files one run writes, committed together.  ``Outputs(inputs=[...], out="r.json", md=None)``:
    names map to paths (None: not written); ``inputs`` are files or folders the run reads, which no output
    may overwrite.  Write with :meth:`open` / :meth:`write_json` / :meth:`write_jsonl` / :meth:`write_text`,
    then :meth:`commit`; used as a context manager it commits on success and discards on any exception."""

    def __init__(self, inputs: Iterable[str | os.PathLike] = (), options: dict[str, str] | None = None, **paths):
        self.paths: dict[str, Path] = {}
        self.options = options or {}
        self._tmp: dict[str, str] = {}
        opt = {k: self.options.get(k, "--" + k.replace("_", "-")) for k in paths}
        for name, p in paths.items():
            if p is None:
                continue
            self.paths[name] = check_output_path(p, opt[name])
        names = list(self.paths)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if _same(self.paths[a], self.paths[b]):
                    raise UsageError(f"{opt[a]} and {opt[b]} are the same file ({self.paths[a]})")
        for inp in _inputs_of(inputs):
            for name in names:
                if _same(self.paths[name], inp):
                    raise UsageError(f"{opt[name]} {self.paths[name]} is an input of this run: it would be overwritten")
        for name in names:
            recover(self.paths[name].parent)

    def __contains__(self, name: str) -> bool:
        return name in self.paths

    def path(self, name: str) -> Path:
        return self.paths[name]

    @contextlib.contextmanager
    def open(self, name: str, mode: str = "w") -> Iterator[Any]:
        """A temporary file for output ``name``; kept for the commit when the block ends without error."""
        path = self.paths[name]
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise OutputError(f"{self._label(name)}: cannot write: {exc.strerror or exc}") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the mode a plain open() would
        self._drop(name)
        self._tmp[name] = tmp
        try:
            _step("write", path)
            with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self._drop(name)
            raise OutputError(f"{self._label(name)}: cannot write: {exc.strerror or exc}") from None
        except BaseException:
            self._drop(name)
            raise

    def write_text(self, name: str, text: str) -> None:
        with self.open(name) as fh:
            fh.write(text)

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.open(name, "wb") as fh:
            fh.write(data)

    def write_json(self, name: str, obj: Any) -> None:
        text = json.dumps(obj, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
        self.write_text(name, text)

    def write_jsonl(self, name: str, rows: Iterable[Any]) -> int:
        n = 0
        with self.open(name) as fh:
            for row in rows:
                if hasattr(row, "model_dump"):
                    row = row.model_dump()
                fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
                n += 1
        return n

    def _label(self, name: str) -> str:
        return f"{self.options.get(name, '--' + name.replace('_', '-'))} {self.paths[name]}"

    def _drop(self, name: str) -> None:
        tmp = self._tmp.pop(name, None)
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def discard(self) -> None:
        for name in list(self._tmp):
            self._drop(name)

    def commit(self) -> list[Path]:
        """Rename every written file into place, all or none; returns the paths written."""
        moves = [(tmp, str(self.paths[name])) for name, tmp in self._tmp.items()]
        if not moves:
            return []
        dirs = sorted({os.path.dirname(os.path.abspath(final)) for _, final in moves})
        token = os.path.basename(moves[0][0]).rsplit(".", 2)[-2]
        journal = json.dumps({"moves": moves}, ensure_ascii=False)
        journals = [os.path.join(d, f"{JOURNAL_PREFIX}{token}.json") for d in dirs]
        with _signals_held():
            for j in journals:
                _step("journal", j)
                _write_synced(j, journal)
            for tmp, final in moves:
                _step("rename", final)
                os.replace(tmp, final)
            for j in journals:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(j)
        self._tmp.clear()
        return [Path(final) for _, final in moves]

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


def _write_synced(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT, SIGTERM and SIGHUP back (delivered afterwards) while a commit renames its files."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):  # not the main thread / not POSIX
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def recover(folder: str | os.PathLike) -> int:
    """Finish the commits a killed run left half done in ``folder`` (journals ``.shop-eval-commit.*.json``):
    every temporary file still there is renamed into place.  Returns the number of journals finished."""
    folder = os.fspath(folder) or "."
    try:
        names = [n for n in os.listdir(folder) if n.startswith(JOURNAL_PREFIX) and n.endswith(".json")]
    except OSError:
        return 0
    done = 0
    for n in names:
        j = os.path.join(folder, n)
        try:
            with open(j, encoding="utf-8") as fh:
                moves = json.load(fh)["moves"]
        except (OSError, ValueError, KeyError, TypeError):
            # a journal cut short while being written: its commit had not started renaming
            with contextlib.suppress(OSError):
                os.unlink(j)
            continue
        try:
            for tmp, final in moves:
                if os.path.exists(tmp):
                    os.replace(tmp, final)
        except OSError:  # a folder we may not write in: leave it to a run that may
            continue
        for d in {os.path.dirname(os.path.abspath(final)) for _, final in moves}:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(d, n))
        done += 1
    return done


# --------------------------------------------------------------------------- single files (library use)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write one JSON file (temporary file + rename)."""
    with Outputs(out=path) as o:
        o.write_json("out", obj)


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> int:
    """Atomically write ``rows`` (dicts or pydantic models) as JSON Lines; returns the count."""
    with Outputs(out=path) as o:
        return o.write_jsonl("out", rows)
