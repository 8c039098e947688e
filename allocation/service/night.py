"""One night, one way through it: its steps, in their order, under the warehouse lock.

`NightRun` holds what a night runs with (parameters, run id, start time); `NightRun.run` takes the lock,
checks the business date and calls the night's steps in order. Each step is a service function,
defined once (`NightSteps`): `run_night` calls them as they are (tests, a bare Python process);
the Prefect flow (`allocation.flows.nightly`) runs the same `NightRun.run` with each one wrapped as
its task (named, retried on I/O errors, moving the progress bar). So both paths share the
pre-checks, the lock and the check that keeps a retried night from being applied twice
(`night_transaction.allocate_night_once`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from allocation.io.discards import wait_for_discards
from allocation.io.memory_limit import is_out_of_memory
from allocation.io.outbox import read_summary
from allocation.io.pending import PendingNight, remove_note
from allocation.io.publish import PublishError
from allocation.io.run_lock import RunLockTimeout
from allocation.service import after_commit, loading, night_transaction, state
from allocation.service.loading import ValidatedInbox
from allocation.service.night_transaction import NightOutcome, night_label
from allocation.service.preflight import check_business_date, check_run_paths
from allocation.service.state import warehouse_lock
from allocation.settings import ParameterError, RunParameters
from allocation.settings.duckdb_limits import DEFAULT_DUCKDB_MEMORY_LIMIT

log = logging.getLogger("allocation")

Skip = set[tuple[str, str]]  # (file name, sha256) already committed for the business date


@dataclass(frozen=True)
class NightSteps:
    """A night's steps, in the order `NightRun.run` calls them. Each is a service function, the one
    definition of that step; `plain()` gives them as they are, and the flow gives each one
    wrapped as its Prefect task."""

    #: An earlier night that committed but was stopped before its reports and published copy
    #: were written gets them (`after_commit.finish_committed_night`).
    finish_committed: Callable[[RunParameters, str], PendingNight | None]
    #: The files this business date already committed: a rerun skips them.
    already_ingested: Callable[[RunParameters], Skip]
    #: Each file read and validated in turn into the run's staging file.
    load: Callable[[RunParameters, str, Skip], ValidatedInbox]
    #: The night allocated and committed, once per run id.
    allocate: Callable[[RunParameters, ValidatedInbox, str, dt.datetime], NightOutcome]
    write_reports: Callable[[RunParameters, NightOutcome], Path]
    #: The committed state published as the analysts' copy, kept under the night's label.
    publish: Callable[[RunParameters, str], Path]
    #: Around the reports and the publish: the committed state copied meanwhile, for `publish`.
    copying_state: Callable[[RunParameters, str], AbstractContextManager[None]]

    @classmethod
    def plain(cls) -> NightSteps:
        """The service functions, looked up when the night starts (a test may replace one)."""
        return cls(
            finish_committed=after_commit.finish_committed_night,
            already_ingested=state.already_ingested,
            load=loading.load_inbox,
            allocate=night_transaction.allocate_night_once,
            write_reports=after_commit.write_reports,
            publish=after_commit.publish,
            copying_state=after_commit.copying_state,
        )


@dataclass(frozen=True)
class Ran:
    """Where a night's reports are, and its kept copy (None for a dry run: nothing published)."""

    folder: Path
    published: Path | None


@dataclass(frozen=True)
class NightRun:
    """One run of one business date."""

    params: RunParameters
    run_id: str
    started: dt.datetime

    @classmethod
    def start(cls, params: RunParameters, run_id: str | None = None) -> NightRun:
        return cls(params, run_id or str(uuid.uuid4()), dt.datetime.now(dt.UTC))

    @property
    def label(self) -> str:
        """The name this night's published copy is kept under."""
        return night_label(self.params, self.started, self.run_id)

    def run(
        self,
        steps: NightSteps | None = None,
        when_locked: Callable[[str], NoReturn] | None = None,
        when_stopped: Callable[[str], None] | None = None,
    ) -> Ran:
        """The night's steps in order under the warehouse lock (by default `NightSteps.plain()`).
        When another writer holds the lock past the lock timeout, `when_locked(holder)` decides
        (the flow reschedules a deployment run); without it the RunLockTimeout goes up. A stop
        asked for after the commit takes effect once the reports and published copy are
        written: `when_stopped(what happened)` answers it (the flow marks a deployment run
        Cancelled, saying so; a run of the `allocation` command ends as the complete night it
        is, exit 0); without it the signal is delivered."""
        steps = steps or NightSteps.plain()
        params, run_id = self.params, self.run_id
        with contextlib.ExitStack() as locked:
            try:
                locked.enter_context(warehouse_lock(params, run_id))
            except RunLockTimeout as held:
                if when_locked is None:
                    raise
                when_locked(str(held))
            with naming_memory_limit(params, committed=False):
                # An earlier night that committed but was stopped before its reports and
                # published copy were written (cancelled, killed) gets them first.
                steps.finish_committed(params, run_id)
                check_business_date(params)  # a ParameterError: nothing read, not retried
                skip = steps.already_ingested(params)
                inbox = steps.load(params, run_id, skip)
                try:
                    outcome = steps.allocate(params, inbox, run_id, self.started)
                finally:
                    inbox.discard()  # committed or rolled back: the reports read the warehouse
            # Committed: a stop asked for now (a cancel from Prefect, Ctrl-C) waits until the
            # reports and the published copy are written, then takes effect.
            with (
                stop_after(f"the night {params.business_date} committed", when_stopped),
                naming_memory_limit(params, committed=not params.dry_run),
                steps.copying_state(params, self.label),
            ):
                folder = steps.write_reports(params, outcome)
                published = None if params.dry_run else steps.publish(params, self.label)
                if not params.dry_run:
                    remove_note(params.state_dir, run_id)
        return Ran(folder, published)


class MemoryLimitTooSmall(ParameterError):
    """DuckDB ran out of memory under the ALLOCATION_DUCKDB_MEMORY_LIMIT setting."""


class MemoryLimitTooSmallAfterCommit(PublishError):
    """The night committed, then DuckDB ran out of memory writing its reports or copy."""


@contextlib.contextmanager
def naming_memory_limit(params: RunParameters, *, committed: bool) -> Iterator[None]:
    """Turns DuckDB's out-of-memory error, raised anywhere in the block (also inside another
    error), into one line naming the setting to raise."""
    try:
        yield
    except Exception as error:
        if not is_out_of_memory(error):
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
    flow's pre-checks, then the same `NightRun.run`. Returns once the old copies the publish
    set aside are deleted too (`allocation.io.discards`), so that a caller who looks at the disk
    next sees the space they took freed; the flow leaves that to the end of its process."""
    check_run_paths(params)
    try:
        ran = NightRun.start(params, run_id).run()
    finally:
        wait_for_discards()
    return {**read_summary(ran.folder), "outbox_folder": str(ran.folder)}
