"""The run's progress artifact: one bar in the Prefect UI from 0 to 100 as the night goes.

The service layer reports `progress(done, total)` per step (files loaded, lines placed); a
`NightProgress` maps each step onto its share of the bar and passes an update to Prefect only
when the bar moved by `MIN_STEP` points or more (and always at 100): a handful of updates per
night, never one per row. The bar is a courtesy (`allocation.flows.courtesy`): an update waits
a few seconds at most, and after one that failed or did not answer the bar stops for the rest of
the night (the API is likely gone); it never fails or stalls the night.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from allocation.flows.courtesy import best_effort
from allocation.service.progress import Progress

log = logging.getLogger("allocation")

PROGRESS_KEY = "nightly-allocation-progress"
MIN_STEP = 5.0

#: Each step's share of the bar (start, end), in percent.
STEPS: dict[str, tuple[float, float]] = {
    "load": (5.0, 40.0),
    "allocate": (40.0, 90.0),
}


class NightProgress:
    """The bar of one run (a plain object, so Prefect passes it to tasks as it is)."""

    def __init__(self, artifact_id: UUID | None) -> None:
        self.artifact_id = artifact_id
        self.shown = 0.0
        self.logged = 0.0
        self.updates = 0

    @classmethod
    def create(cls, business_date: str, dry_run: bool) -> NightProgress:
        created: list[object] = []

        def make() -> None:
            created.append(
                create_progress_artifact(
                    0.0,
                    key=PROGRESS_KEY + ("-dry-run" if dry_run else ""),
                    description=f"Night {business_date}: files loaded, lines allocated, reports",
                )
            )

        # The night runs without a bar rather than not at all (or late).
        if not best_effort(make, "No progress bar for this run") or not created:
            return cls(None)
        # Called from a synchronous context, Prefect's dispatch returns the id itself.
        return cls(created[0] if isinstance(created[0], UUID) else None)

    def set(self, percent: float, note: str = "") -> None:
        """Moves the bar and logs one line (`Progress 45%: allocating, ...`) when it moved by
        `MIN_STEP` points or more, or reached 100: the log is what the UI shows live (an open
        progress-artifact page does not refresh by itself in Prefect 3.9)."""
        percent = max(0.0, min(100.0, percent))
        if (percent >= 100.0 > self.logged) or percent >= self.logged + MIN_STEP:
            self.logged = percent
            log.info("Progress %.0f%%%s", percent, f": {note}" if note else "")
        if self.artifact_id is None or (percent < self.shown + MIN_STEP and percent < 100.0):
            return
        if percent <= self.shown:
            return
        artifact_id = self.artifact_id
        if not best_effort(
            lambda: update_progress_artifact(artifact_id, percent),
            f"Progress bar not updated to {percent:.0f}%",
        ):
            self.artifact_id = None
            return
        self.shown = percent
        self.updates += 1

    def step(self, name: str) -> Progress:
        """The `progress(done, total)` callable of step `name` for the service layer."""
        start, end = STEPS[name]
        describe = NOTES[name]

        def report(done: int, total: int) -> None:
            share = done / total if total > 0 else 1.0
            self.set(start + (end - start) * min(share, 1.0), describe(done, total))

        return report


def _size(size: int) -> str:
    """Bytes for a person: `850 B`, `12.3 kB`, `40.0 MB`, `2.5 GB`."""
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{size:,} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{value:,.1f} GB"


#: What each step's `done` and `total` count, in words for the log.
NOTES: dict[str, Callable[[int, int], str]] = {
    "load": lambda done, total: (
        f"loading, {_size(done)} of {_size(total)} of inbox files read and validated"
    ),
    "allocate": lambda done, total: f"allocating, {done:,} of {total:,} open lines done",
}
