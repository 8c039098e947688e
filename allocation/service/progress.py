"""How far a step is: the `Progress` callable the service layer reports through (the flow turns
it into the run's progress artifact; the service layer knows nothing of Prefect), and
`LineProgress`, the allocation's count of lines done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("allocation")

#: `progress(done, total)`: how far a step is, in its own units (files, lines).
Progress = Callable[[int, int], None]

# Seconds between two "Allocating: ..." log lines, for nights that take a while.
_LOG_SECONDS = 10.0


def no_progress(done: int, total: int) -> None:
    """The default `Progress`: nobody is watching."""


class LineProgress:
    """The allocation's lines done: `report(lines done, lines in all)` after every slice of a
    chunk or chunk of skus (never per line), and a log line at most every `_LOG_SECONDS`."""

    def __init__(self, total: int, report: Progress = no_progress) -> None:
        self.total = total
        self.done = 0
        self.report = report
        self.started = self.last = time.perf_counter()

    def within(self, lines: int, _chunk: int) -> None:
        """`lines` done of a chunk this process is allocating (counted by `add` at its end)."""
        self.report(self.done + lines, self.total)

    def add(self, lines: int) -> None:
        """`lines` more are done."""
        self.done += lines
        self.report(self.done, self.total)
        if time.perf_counter() - self.last > _LOG_SECONDS:
            self.last = time.perf_counter()
            log.info(
                "Allocating: %s of %s lines done (%s lines/s)",
                f"{self.done:,}",
                f"{self.total:,}",
                f"{self.done / (self.last - self.started):,.0f}",
            )
