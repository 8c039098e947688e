"""One night, one way through it: its steps, in their order, under the warehouse lock.

`Night` holds what a night runs with (parameters, run id, start time) and its steps as methods;
`Night.run` takes the lock, checks the business date and calls the steps in order. `run_night`
runs them in this process (tests, a bare Python process); the Prefect flow
(`allocation.flows.nightly`) runs the same `Night.run` with each step wrapped as a task (named,
retried on I/O errors, moving the progress bar). So both paths share the pre-checks, the lock
and the check that keeps a retried night from being applied twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

from allocation import services
from allocation.checks import check_business_date, check_run_paths
from allocation.io.outbox import read_summary
from allocation.io.run_lock import RunLockTimeout
from allocation.services import Allocator, NightOutcome, Progress, ValidatedInbox
from allocation.settings import RunParameters
from allocation.state import already_ingested, committed_run, warehouse_lock

log = logging.getLogger("allocation")

Skip = set[tuple[str, str]]  # (file name, sha256) already committed for the business date


def _no_progress(done: int, total: int) -> None:
    """Nobody is watching."""


class Steps(Protocol):
    """How each step of a night is run: `Night` itself runs them as plain calls; the flow as
    Prefect tasks."""

    def already_ingested(self) -> Skip: ...
    def load(self, skip: Skip) -> ValidatedInbox: ...
    def allocate(self, inbox: ValidatedInbox) -> NightOutcome: ...
    def write_reports(self, outcome: NightOutcome) -> Path: ...
    def publish(self) -> Path: ...


@dataclass(frozen=True)
class Ran:
    """Where a night's reports are, and its kept copy (None for a dry run: nothing published)."""

    folder: Path
    published: Path | None


@dataclass(frozen=True)
class Night:
    """One run of one business date."""

    params: RunParameters
    run_id: str
    started: dt.datetime

    @classmethod
    def start(cls, params: RunParameters, run_id: str | None = None) -> Night:
        return cls(params, run_id or str(uuid.uuid4()), dt.datetime.now(dt.UTC))

    @property
    def label(self) -> str:
        """The name this night's published copy is kept under."""
        return services.night_label(self.params, self.started, self.run_id)

    def run(
        self, steps: Steps | None = None, when_locked: Callable[[str], NoReturn] | None = None
    ) -> Ran:
        """The night's steps in order under the warehouse lock, each run by `steps` (by default
        this night's own methods). When another writer holds the lock past the lock timeout,
        `when_locked(holder)` decides (the flow reschedules a deployment run); without it the
        RunLockTimeout goes up."""
        steps = steps or self
        with contextlib.ExitStack() as locked:
            try:
                locked.enter_context(warehouse_lock(self.params, self.run_id))
            except RunLockTimeout as held:
                if when_locked is None:
                    raise
                when_locked(str(held))
            check_business_date(self.params)  # a ParameterError: nothing read, not retried
            skip = steps.already_ingested()
            inbox = steps.load(skip)
            try:
                outcome = steps.allocate(inbox)
            finally:
                inbox.discard()  # committed or rolled back: the reports read the warehouse
            folder = steps.write_reports(outcome)
            published = None if self.params.dry_run else steps.publish()
        return Ran(folder, published)

    # -- the steps ----------------------------------------------------------------------------
    def already_ingested(self) -> Skip:
        """Files this business date already committed: a rerun skips them."""
        return already_ingested(self.params)

    def load(self, skip: Skip, progress: Progress = _no_progress) -> ValidatedInbox:
        """Reads and validates each file in turn into the run's staging file (one file's rows
        in memory at a time)."""
        return services.load_inbox(self.params, self.run_id, skip, progress)

    def allocate(
        self,
        inbox: ValidatedInbox,
        allocator: Allocator | None = None,
        progress: Progress = _no_progress,
    ) -> NightOutcome:
        """Allocates and commits the night, once per run id: checked on every attempt, since a
        retried or rescheduled flow run starts its tasks afresh with the same run id, and a
        commit may have happened just before an attempt failed."""
        if committed_run(self.params, self.run_id):
            log.warning(
                "Night %s was committed by an earlier attempt of this run (%s): not applying "
                "it again",
                self.params.business_date,
                self.run_id,
            )
            # The reports are read back from the committed state; the counts are not needed.
            return NightOutcome(self.run_id, self.params.business_date, counts={})
        return services.allocate_night(
            self.params, inbox, self.run_id, self.started, allocator=allocator, progress=progress
        )

    def write_reports(self, outcome: NightOutcome) -> Path:
        return services.write_reports(self.params, outcome)

    def publish(self) -> Path:
        return services.publish(self.params, self.label)


def run_night(params: RunParameters, run_id: str | None = None) -> dict[str, Any]:
    """The whole night without Prefect (tests, and a way to run in a bare Python process): the
    flow's pre-checks, then the same `Night.run`."""
    check_run_paths(params)
    ran = Night.start(params, run_id).run()
    return {**read_summary(ran.folder), "outbox_folder": str(ran.folder)}
