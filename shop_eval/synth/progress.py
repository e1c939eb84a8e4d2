"""Progress of a run: a rich progress bar on a terminal (or with ``--progress``) — items done/requested, items/s,
elapsed, ETA, requests, tokens, retries, rejections — else a log line every 10 s saying the same."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger("shop_eval.synth")

LOG_EVERY_S = 10.0


@dataclass
class Counts:
    accepted: int
    requests: int
    rejected: int
    retries: int
    tokens: int


class RunProgress:
    def __init__(self, total: int, show: bool | None):
        """``show``: True always, False never, None when stderr is a terminal."""
        self.total = total
        self.show = show
        self._bar = None
        self._task = None
        self._last_log = time.monotonic()

    @contextlib.contextmanager
    def shown(self, accepted: int) -> Iterator[RunProgress]:
        """Display while the block runs (the bar starts at ``accepted`` items)."""
        self._bar = _make_bar(self.show)
        self._last_log = time.monotonic()
        if self._bar is None:
            yield self
            return
        with self._bar:
            self._task = self._bar.add_task(
                "synth", total=self.total, completed=accepted, tokens=0, retries=0, rejected=0, requests=0
            )
            try:
                yield self
            finally:
                self._bar = None

    def update(self, counts: Callable[[], Counts]) -> None:
        """``counts()`` is only called when something is shown."""
        if self._bar is not None:
            c = counts()
            self._bar.update(
                self._task,
                completed=c.accepted,
                tokens=c.tokens,
                retries=c.retries,
                rejected=c.rejected,
                requests=c.requests,
            )
        elif time.monotonic() - self._last_log >= LOG_EVERY_S:
            self._last_log = time.monotonic()
            c = counts()
            log.info(
                "synth: %d/%d accepted, %d requests, %d rejected, %d retries, %d tokens",
                c.accepted, self.total, c.requests, c.rejected, c.retries, c.tokens,
            )  # fmt: skip


def _make_bar(show: bool | None):
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
    if not (show if show is not None else console.is_terminal):
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
