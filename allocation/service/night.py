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
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, Protocol

import duckdb

from allocation.io.outbox import read_summary
from allocation.io.pending import remove_note
from allocation.io.publish import PublishError
from allocation.io.run_lock import RunLockTimeout
from allocation.service import after_commit, loading, night_transaction
from allocation.service.allocator import Progress, no_progress
from allocation.service.loading import ValidatedInbox
from allocation.service.night_transaction import Allocator, NightOutcome, night_label
from allocation.service.preflight import check_business_date, check_run_paths
from allocation.service.state import already_ingested, committed_run, warehouse_lock
from allocation.settings import DEFAULT_DUCKDB_MEMORY_LIMIT, ParameterError, RunParameters

log = logging.getLogger("allocation")

Skip = set[tuple[str, str]]  # (file name, sha256) already committed for the business date


class Steps(Protocol):
    """How each step of a night is run: `Night` itself runs them as plain calls; the flow as
    Prefect tasks."""

    def finish_committed(self) -> None: ...
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
        return night_label(self.params, self.started, self.run_id)

    def run(
        self,
        steps: Steps | None = None,
        when_locked: Callable[[str], NoReturn] | None = None,
        when_stopped: Callable[[str], None] | None = None,
    ) -> Ran:
        """The night's steps in order under the warehouse lock, each run by `steps` (by default
        this night's own methods). When another writer holds the lock past the lock timeout,
        `when_locked(holder)` decides (the flow reschedules a deployment run); without it the
        RunLockTimeout goes up. A stop asked for after the commit takes effect once the reports
        and published copy are written: `when_stopped(what happened)` answers it (the flow marks
        a deployment run Cancelled, saying so; a run of the `allocation` command ends as the
        complete night it is, exit 0); without it the signal is delivered."""
        steps = steps or self
        with contextlib.ExitStack() as locked:
            try:
                locked.enter_context(warehouse_lock(self.params, self.run_id))
            except RunLockTimeout as held:
                if when_locked is None:
                    raise
                when_locked(str(held))
            with naming_memory_limit(self.params, committed=False):
                # An earlier night that committed but was stopped before its reports and
                # published copy were written (cancelled, killed) gets them first.
                steps.finish_committed()
                check_business_date(self.params)  # a ParameterError: nothing read, not retried
                skip = steps.already_ingested()
                inbox = steps.load(skip)
                try:
                    outcome = steps.allocate(inbox)
                finally:
                    inbox.discard()  # committed or rolled back: the reports read the warehouse
            # Committed: a stop asked for now (a cancel from Prefect, Ctrl-C) waits until the
            # reports and the published copy are written, then takes effect.
            with (
                stop_after(f"the night {self.params.business_date} committed", when_stopped),
                naming_memory_limit(self.params, committed=not self.params.dry_run),
            ):
                folder = steps.write_reports(outcome)
                published = None if self.params.dry_run else steps.publish()
                if not self.params.dry_run:
                    remove_note(self.params.state_dir, self.run_id)
        return Ran(folder, published)

    # -- the steps ----------------------------------------------------------------------------
    def finish_committed(self) -> None:
        """Writes the reports and published copy of an earlier night that committed but was
        stopped before it wrote them."""
        after_commit.finish_committed_night(self.params, self.run_id)

    def already_ingested(self) -> Skip:
        """Files this business date already committed: a rerun skips them."""
        return already_ingested(self.params)

    def load(self, skip: Skip, progress: Progress = no_progress) -> ValidatedInbox:
        """Reads and validates each file in turn into the run's staging file (one file's rows
        in memory at a time)."""
        return loading.load_inbox(self.params, self.run_id, skip, progress)

    def allocate(
        self,
        inbox: ValidatedInbox,
        allocator: Allocator | None = None,
        progress: Progress = no_progress,
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
        return night_transaction.allocate_night(
            self.params, inbox, self.run_id, self.started, allocator=allocator, progress=progress
        )

    def write_reports(self, outcome: NightOutcome) -> Path:
        return after_commit.write_reports(self.params, outcome)

    def publish(self) -> Path:
        return after_commit.publish(self.params, self.label)


class MemoryLimitTooSmall(ParameterError):
    """DuckDB ran out of memory under the ALLOCATION_DUCKDB_MEMORY_LIMIT setting."""


class MemoryLimitTooSmallAfterCommit(PublishError):
    """The night committed, then DuckDB ran out of memory writing its reports or copy."""


def _ran_out_of_memory(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, duckdb.OutOfMemoryException):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextlib.contextmanager
def naming_memory_limit(params: RunParameters, *, committed: bool) -> Iterator[None]:
    """Turns DuckDB's out-of-memory error, raised anywhere in the block (also inside another
    error), into one line naming the setting to raise."""
    try:
        yield
    except Exception as error:
        if not _ran_out_of_memory(error):
            raise
        limit = params.duckdb_memory_limit
        advice = (
            f"DuckDB ran out of memory under ALLOCATION_DUCKDB_MEMORY_LIMIT={limit}: raise it "
            f"(the default is {DEFAULT_DUCKDB_MEMORY_LIMIT}; past the limit DuckDB spills to "
            "disk only what can be spilled)"
        )
        if committed:
            raise MemoryLimitTooSmallAfterCommit(
                f"the night {params.business_date} is committed, but {advice}, then run the same "
                "night again (it writes the reports and publishes; nothing is applied twice)"
            ) from error
        raise MemoryLimitTooSmall(
            f"{advice}, then run the night again (nothing of it was committed)"
        ) from error


@contextlib.contextmanager
def stop_after(what: str, when_stopped: Callable[[str], None] | None = None) -> Iterator[None]:
    """Holds back SIGTERM (Prefect's cancel, a worker stopping) and SIGINT (Ctrl-C) for the
    block, then calls `when_stopped` with what happened (the stop is answered once it returns)
    or, without it, delivers the first signal that came, as it would have been delivered. Outside the
    main thread signals cannot be handled here: the block runs unshielded, and the note the
    commit left makes the next run finish it (`after_commit.finish_committed_night`). A SIGKILL
    cannot be held back: the note covers it too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[signal.Signals] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if not held:
            log.warning(
                "Asked to stop (%s) after %s: writing its reports and published copy first, "
                "then stopping",
                signal.Signals(signum).name,
                what,
            )
        held.append(signal.Signals(signum))

    previous = {signum: signal.signal(signum, hold) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if held:
        done = f"The reports and published copy of {what} are written: stopping now"
        log.warning(done)
        if when_stopped is not None:
            when_stopped(done)
            return
        handler = previous[held[0]]
        if callable(handler):
            handler(held[0], None)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(held[0])


def run_night(params: RunParameters, run_id: str | None = None) -> dict[str, Any]:
    """The whole night without Prefect (tests, and a way to run in a bare Python process): the
    flow's pre-checks, then the same `Night.run`."""
    check_run_paths(params)
    ran = Night.start(params, run_id).run()
    return {**read_summary(ran.folder), "outbox_folder": str(ran.folder)}
