"""The allocate step: the night decided and committed in one warehouse transaction.

`allocate_night` reads tonight's rows from the run's staging file (the load's
`ValidatedInbox`), takes in the manifests, applies their changes, places every open line,
records the placements, the rejections, the files and the run, checks the night, and commits,
or, for a dry run, writes its reports and rolls back. `_allocate_night` reads as that list; each
line is a small function, below or, for what the night writes, in
`allocation.service.night_records`. Its crash points (`allocation.faults`) are where the
fault-injection tests stop a night.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from allocation.faults import crash_point
from allocation.io import staged_night
from allocation.io.outbox import write_night
from allocation.io.pending import PendingNight, leave_note
from allocation.io.unit_of_work import DuckDBUnitOfWork, WarehouseError
from allocation.service import night_checks, night_records
from allocation.service.engine.columns import allocate_columns
from allocation.service.engine.sources import Candidates
from allocation.service.loading import ValidatedInbox
from allocation.service.manifest import apply_manifest_updates
from allocation.service.night_records import Tonight
from allocation.service.progress import Progress, no_progress
from allocation.service.rates import rate
from allocation.service.run_checks import add_check_rows, check_night, record_stopped_checks
from allocation.service.state import committed_run, state_db
from allocation.settings import RunParameters
from allocation.settings.storage_version import working_storage_version

log = logging.getLogger("allocation")


@dataclass(frozen=True)
class NightOutcome:
    run_id: str
    business_date: dt.date
    counts: dict[str, int]
    dry_run_folder: Path | None = None  # a dry run writes its reports before rolling back


#: Allocates every chunk of the night's candidates and records each chunk's placements in it
#: (the Dask runner's `allocation.flows.sharding`; the tests' chunked and multi-process ways).
Allocator = Callable[[Candidates], None]


def allocate_night_once(
    params: RunParameters,
    inbox: ValidatedInbox,
    run_id: str,
    started_at: dt.datetime,
    allocator: Allocator | None = None,
    progress: Progress = no_progress,
) -> NightOutcome:
    """The allocate step of a night (`allocation.service.night`, and the flow's `allocate` task):
    `allocate_night`, once per run id. Checked on every attempt, since a retried or rescheduled
    flow run starts its tasks afresh with the same run id, and a commit may have happened just
    before an attempt failed."""
    if not params.dry_run and committed_run(params, run_id):
        log.warning(
            "Night %s was committed by an earlier attempt of this run (%s): not applying it again",
            params.business_date,
            run_id,
        )
        # The reports are read back from the committed state; the counts are not needed.
        return NightOutcome(run_id, params.business_date, counts={})
    return allocate_night(params, inbox, run_id, started_at, allocator=allocator, progress=progress)


def allocate_night(
    params: RunParameters,
    inbox: ValidatedInbox,
    run_id: str,
    started_at: dt.datetime,
    allocator: Allocator | None = None,
    progress: Progress = no_progress,
) -> NightOutcome:
    """One transaction: ingest, apply manifest changes, allocate every open line, record the run.
    Commits unless this is a dry run (then the reports are read before rolling back).

    By default the night is decided in this process over integer columns read out of DuckDB
    (`allocation.service.engine.columns.allocate_columns`: one `Product` per sku fed its lines'
    quantities); `allocator(candidates)`, when given, places them chunk of skus by chunk of skus
    instead (the Dask runner). Whatever decides, the placements are recorded here, by SQL, in
    this run's single transaction. `progress(lines placed, lines to place)` is passed to the
    default allocator (a custom one reports its own) and called once more when every
    line is placed.

    Before the commit the night checks itself (`allocation.service.night_checks`): a failed stop-level
    check rolls everything back and raises `NightStopped`; only the check results are then kept,
    in a transaction of their own, so that the next night knows this one stopped."""
    try:
        return _allocate_night(params, inbox, run_id, started_at, allocator, progress)
    except night_checks.NightStopped as stopped:
        try:
            record_stopped_checks(params, run_id, stopped.results)
        except (duckdb.Error, OSError, WarehouseError) as error:  # the stop is what to report
            log.warning(
                "Could not keep the stopped night's check results (%s): the next night will "
                "not know this one stopped",
                error,
            )
        log.error("%s", stopped)
        raise


def _allocate_night(
    params: RunParameters,
    inbox: ValidatedInbox,
    run_id: str,
    started_at: dt.datetime,
    allocator: Allocator | None,
    progress: Progress,
) -> NightOutcome:
    with (
        DuckDBUnitOfWork(
            state_db(params),
            params.duckdb_limits,
            create_in=working_storage_version(params.warehouse_storage_version),
        ) as uow,
        staged_night.attached(uow.con, inbox.staging) as staged,
    ):
        tonight = Tonight(params, inbox, run_id, uow, staged)
        batches = night_records.take_in_manifests(tonight)
        before, checking = _figures_before_manifest_changes(tonight, batches.updates)
        changes = apply_manifest_updates(uow.repo, batches.updates, tonight.day, run_id)
        order_duplicates = _classify_orders(tonight)
        allocated, open_lines = _place_open_lines(tonight, allocator, progress)
        replaced = night_records.record_placements(tonight, changes)
        night_records.record_rejections(tonight, batches.rejected)
        night_records.record_files(tonight)
        counts = night_records.count_night(
            tonight, order_duplicates, batches, changes, (allocated, open_lines, replaced)
        )
        waiting = _check(tonight, counts, before, open_lines, checking)
        night_records.record_run(tonight, started_at, {**counts, **waiting})
        if params.dry_run:
            return _roll_back_dry_run(tonight, counts)
        _commit(tonight, started_at)
    return NightOutcome(run_id, tonight.day, counts)


def _figures_before_manifest_changes(
    tonight: Tonight, updates: pl.DataFrame
) -> tuple[tuple[int, int] | None, float]:
    """Allocated lines and active batches before tonight's manifest changes (None without
    changes), which the checks compare against; and the seconds it took, counted as checking."""
    before: tuple[int, int] | None = None  # allocated lines, active batches
    checking = time.perf_counter()
    if updates.height:
        figures = tonight.uow.figures
        before = figures.allocated_lines(), figures.active_batches()
    checking = time.perf_counter() - checking
    return before, checking


def _classify_orders(tonight: Tonight) -> int:
    """Tonight's new lines: the TEMP table or view `night_lines` (arrival_seq dense from the next
    free number), read later while the staging file is attached. Returns the duplicates."""
    tick, cpu = time.perf_counter(), time.process_time()
    order_duplicates = tonight.staged.classify_orders(tonight.uow.repo.next_arrival_seq())
    log.info(
        "Classified tonight's orders in %.2fs (%.2f CPU-s)",
        time.perf_counter() - tick,
        time.process_time() - cpu,
    )
    return order_duplicates


def _place_open_lines(
    tonight: Tonight, allocator: Allocator | None, progress: Progress
) -> tuple[int, int]:
    """Every open line placed (by default in this process; else by `allocator`): the lines
    placed and the lines open."""
    tick, cpu = time.perf_counter(), time.process_time()
    candidates = tonight.uow.candidates(tonight.params.duckdb_limits.temp_directory)
    try:
        if allocator is None:
            allocated = allocate_columns(candidates, progress)
        else:
            allocator(candidates)
            allocated = candidates.load_placements()
    finally:
        candidates.discard()
    progress(candidates.lines, candidates.lines)
    open_lines = candidates.open_lines
    log.info(
        "Allocated %s: %s placed, %s out of stock (%.2f CPU-s; %s waiting line(s) larger than "
        "any batch's room tonight not read)",
        rate(candidates.lines, time.perf_counter() - tick),
        f"{allocated:,}",
        f"{open_lines - allocated:,}",
        time.process_time() - cpu,
        f"{open_lines - candidates.lines:,}",
    )
    return allocated, open_lines


def _check(
    tonight: Tonight,
    counts: dict[str, int],
    before: tuple[int, int] | None,
    open_lines: int,
    checking: float,
) -> dict[str, int | None]:
    """The night's checks: a failed stop-level one raises `NightStopped` (a dry run says so and
    goes on); the results are added to the transaction. Returns the waiting lines' figures,
    read first."""
    params, uow, day = tonight.params, tonight.uow, tonight.day
    tick = time.perf_counter()
    lines_waiting, oldest_wait = uow.figures.waiting(day)
    results = check_night(params, uow, tonight.inbox, counts, before, open_lines)
    stopped = night_checks.stop_message(day, results)
    if stopped and not params.dry_run:
        raise night_checks.NightStopped(stopped, results)  # rolled back on the way out
    if stopped:
        log.warning("Dry run: a run of this night would stop here: %s", stopped)
    add_check_rows(uow, tonight.run_id, day, results, committed=True)
    log.info(
        "Checked the night: %d check(s), %d failed, in %.3fs",
        len(results),
        sum(r.failed for r in results),
        time.perf_counter() - tick + checking,
    )
    return {"lines_waiting": lines_waiting, "oldest_wait_days": oldest_wait}


def _roll_back_dry_run(tonight: Tonight, counts: dict[str, int]) -> NightOutcome:
    """A dry run's reports, written from the transaction it is about to roll back."""
    folder = write_night(
        tonight.uow.con,
        tonight.day,
        tonight.params.outbox,
        dry_run=True,
        limits=tonight.params.duckdb_limits,
    )
    log.info("Dry run: nothing committed")
    tonight.inbox.discard()
    return NightOutcome(tonight.run_id, tonight.day, counts, folder)


def _commit(tonight: Tonight, started_at: dt.datetime) -> None:
    params, run_id = tonight.params, tonight.run_id
    # Before the commit: once it is in, the note is what makes the next run finish this
    # night's reports and published copy if this one is cancelled or killed first.
    leave_note(
        params.state_dir,
        PendingNight(run_id, tonight.day, night_label(params, started_at, run_id), params.outbox),
    )
    crash_point("before-commit")
    tonight.uow.commit()
    tonight.inbox.discard()
    crash_point("after-commit")


def night_label(params: RunParameters, started: dt.datetime, run_id: str) -> str:
    """The name a night's published copy is kept under: sortable by date, then start time."""
    return f"{params.business_date}-{started:%Y%m%dT%H%M%S}-{run_id[:8]}"
