"""The API key never leaves the process in clear.

Every text synth sends out — log lines (tracebacks included), the rejects log, the report (written and
printed), the messages of a stopped run — goes through a :class:`Redactor`, which replaces the key, as it is
and as it would appear JSON- or URL-escaped, with ``***``.  Redaction comes before any cut to length, so a cut
never leaves the start of a key behind.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

MASK = "***"


class Redactor:
    """``redact(text)``: ``text`` without the secret.  A Redactor of no secret changes nothing."""

    def __init__(self, secret: str | None):
        forms = {secret, json.dumps(secret)[1:-1], quote(secret, safe="")} if secret else set()
        self.forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for f in self.forms:
            if f in text:
                text = text.replace(f, MASK)
        return text

    def clip(self, text: str, limit: int) -> str:
        """Redacted, then cut to ``limit`` characters."""
        return self(text)[:limit]

    def value(self, obj: Any) -> Any:
        """A JSON-like value with every string (keys included) redacted."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        return obj

    def log_filter(self) -> logging.Filter:
        return _LogFilter(self)


def redact_url(url: str | None) -> str | None:
    """A URL without the credentials of its ``user:password@`` part."""
    return re.sub(r"//[^/@]*@", f"//{MASK}@", url) if url else url


class _LogFilter(logging.Filter):
    """Redacts a log record's message, its formatted traceback and stack before any handler writes it."""

    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = self.redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
