"""The project's exceptions.  Library code raises them; the CLI (:mod:`shop_eval.cli`) turns every one into
a single ``error: ...`` line and exit code 2.

* :class:`DataError` — bad input data: names the file, the line or row, and the field;
* :class:`UsageError` — options that cannot work together (the message names the option);
* :class:`OutputError` — an output that cannot be written (names the user's path, not a temporary file).
"""

from __future__ import annotations


class ShopEvalError(Exception):
    """Base of the errors a user can fix by changing input, options or paths (exit code 2)."""


class DataError(ShopEvalError, ValueError):
    """Bad input: names the file, the line or row, and the field."""

    def __init__(self, source: str, where: str, field: str | None, message: str):
        self.source, self.where, self.field, self.message = source, where, field, message
        loc = f"{source}:{where}" if where else source
        fld = f" field '{field}':" if field else ""
        super().__init__(f"{loc}:{fld} {message}")

    def __reduce__(self):  # picklable across processes (datasets' map, multiprocessing)
        return (type(self), (self.source, self.where, self.field, self.message))


class UsageError(ShopEvalError, ValueError):
    """Options or arguments that cannot work (together)."""


class OutputError(ShopEvalError):
    """An output path that cannot be written: a folder, under a file, unwritable, or equal to an input."""
