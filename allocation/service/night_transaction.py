"""The allocate step: the night decided and committed in one warehouse transaction.

`allocate_night` reads tonight's rows from the run's staging file (the load's
`ValidatedInbox`), takes in the manifests, applies their changes, places every open line,
records the placements, the rejections, the files and the run, checks the night, and commits,
or, for a dry run, writes its reports and rolls back. Its crash points (`allocation.faults`) are
where the fault-injection tests stop a night.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from allocation.faults import crash_point
from allocation.io import check_figures, staging
from allocation.io.candidates import DuckDBCandidates
from allocation.io.ingest import classify_batches
from allocation.io.outbox import write_night
from allocation.io.pending import PendingNight, leave_note
from allocation.io.rejection_log import log_rejected_rows
from allocation.io.unit_of_work import DuckDBUnitOfWork, WarehouseError
from allocation.io.warehouse_schema import code_rejections
from allocation.service import night_checks
from allocation.service.allocator import Candidates, Progress, allocate_columns, no_progress
from allocation.service.loading import INBOX_COUNTS, ValidatedInbox
from allocation.service.manifest import apply_manifest_updates
from allocation.service.rates import rate
from allocation.service.run_checks import add_check_rows, check_night, record_stopped_checks
from allocation.service.state import state_db
from allocation.settings import RunParameters, working_storage_version

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


def allocate_night(
    params: RunParameters,
    night: ValidatedInbox,
    run_id: str,
    started_at: dt.datetime,
    allocator: Allocator | None = None,
    progress: Progress = no_progress,
) -> NightOutcome:
    """One transaction: ingest, apply manifest changes, allocate every open line, record the run.
    Commits unless this is a dry run (then the reports are read before rolling back).

    By default the night is decided in this process over integer columns read out of DuckDB
    (`allocation.service.allocator.allocate_columns`: one `Product` per sku fed its lines'
    quantities); `allocator(candidates)`, when given, places them chunk of skus by chunk of skus
    instead (the Dask runner). Whatever decides, the placements are recorded here, by SQL, in
    this run's single transaction. `progress(lines placed, lines to place)` is passed to the
    default allocator (a custom one reports its own) and called once more when every
    line is placed.

    Before the commit the night checks itself (`allocation.service.night_checks`): a failed stop-level
    check rolls everything back and raises `NightStopped`; only the check results are then kept,
    in a transaction of their own, so that the next night knows this one stopped."""
    try:
        return _allocate_night(params, night, run_id, started_at, allocator, progress)
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
    night: ValidatedInbox,
    run_id: str,
    started_at: dt.datetime,
    allocator: Allocator | None,
    progress: Progress,
) -> NightOutcome:
    day = params.business_date
    with (
        DuckDBUnitOfWork(
            state_db(params),
            params.duckdb_limits,
            create_in=working_storage_version(params.warehouse_storage_version),
        ) as uow,
        staging.attached(uow.con, night.staging),
    ):
        repo = uow.repo
        tonight_batches = staging.staged_batches(uow.con)
        batches = classify_batches(
            tonight_batches,
            repo.known_batches(tonight_batches),
            repo.received_manifest_rows(tonight_batches),
            repo.loaded_before(night.files.filter(pl.col("kind") == "batches")),
        )
        del tonight_batches
        repo.add_rows(
            "manifest_rows",
            batches.received.with_columns(business_date=pl.lit(day), run_id=pl.lit(run_id)),
        )
        repo.add_batches(batches.new, day)
        before: tuple[int, int] | None = None  # allocated lines, active batches
        checking = time.perf_counter()
        if batches.updates.height:
            before = check_figures.allocated_lines(uow.con), check_figures.active_batches(uow.con)
        checking = time.perf_counter() - checking
        changes = apply_manifest_updates(repo, batches.updates, day, run_id)

        # Tonight's new lines: the TEMP table or view `night_lines` (arrival_seq dense from
        # the next free number), read below while the staging file is attached.
        tick, cpu = time.perf_counter(), time.process_time()
        order_duplicates = staging.classify_staged_orders(uow.con, repo.next_arrival_seq())
        log.info(
            "Classified tonight's orders in %.2fs (%.2f CPU-s)",
            time.perf_counter() - tick,
            time.process_time() - cpu,
        )

        tick, cpu = time.perf_counter(), time.process_time()
        candidates = DuckDBCandidates(uow.con, params.duckdb_limits.temp_directory)
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
        tick, cpu = time.perf_counter(), time.process_time()
        replaced = changes.record_destinations(repo, day, run_id)
        repo.record_placements(day, run_id)
        log.info(
            "Recorded the night's placements in %.2fs (%.2f CPU-s)",
            time.perf_counter() - tick,
            time.process_time() - cpu,
        )

        # The rejections by SQL from the staging file, in the order they were found: the
        # load's, the manifests', the orders'.
        log_rejected_rows(itertools.chain(staging.rejection_chunks(uow.con), [batches.rejected]))
        staging.add_load_rejections(uow.con, run_id, day)
        repo.add_rows(
            "rejected_rows",
            batches.rejected.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        staging.add_order_rejections(uow.con, run_id, day)
        code_rejections(uow.con, run_id)
        repo.add_rows(
            "ingested_files",
            night.files.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        rejected_rows = staging.rejected_row_counts(uow.con)
        rejected_rows["batches"] = rejected_rows.get("batches", 0) + int(
            batches.rejected["line"].is_not_null().sum()
        )
        counts = _counts(night, order_duplicates, batches.duplicates, rejected_rows, changes.counts)
        log_rejected_total(counts)
        counts.update(
            allocated=allocated,
            out_of_stock=open_lines - allocated,
            lines_replaced=replaced,
        )
        tick = time.perf_counter()
        lines_waiting, oldest_wait = check_figures.waiting(uow.con, day)
        results = check_night(params, uow, night, counts, before, open_lines)
        stopped = night_checks.stop_message(day, results)
        if stopped and not params.dry_run:
            raise night_checks.NightStopped(stopped, results)  # rolled back on the way out
        if stopped:
            log.warning("Dry run: a run of this night would stop here: %s", stopped)
        add_check_rows(uow, run_id, day, results, committed=True)
        log.info(
            "Checked the night: %d check(s), %d failed, in %.3fs",
            len(results),
            sum(r.failed for r in results),
            time.perf_counter() - tick + checking,
        )
        _record_run(
            uow,
            run_id,
            day,
            started_at,
            night,
            {**counts, "lines_waiting": lines_waiting, "oldest_wait_days": oldest_wait},
        )
        if params.dry_run:
            folder = write_night(uow.con, day, params.outbox, dry_run=True)
            log.info("Dry run: nothing committed")
            night.discard()
            return NightOutcome(run_id, day, counts, folder)
        # Before the commit: once it is in, the note is what makes the next run finish this
        # night's reports and published copy if this one is cancelled or killed first.
        leave_note(
            params.state_dir,
            PendingNight(run_id, day, night_label(params, started_at, run_id), params.outbox),
        )
        crash_point("before-commit")
        uow.commit()
        night.discard()
        crash_point("after-commit")
    return NightOutcome(run_id, day, counts)


def log_rejected_total(counts: dict[str, int]) -> None:
    """The night's rejected rows in one line, the same count and definition as summary.json's
    `orders.rejected` + `batches.rejected` (rows; whole files are counted apart)."""
    orders, batches = counts["orders_rejected"], counts["batches_rejected"]
    log.info(
        "Rejected %s row(s) in all (orders %s, batches %s) and %s whole file(s): the counts of "
        "summary.json; each row's reason is in rejected.csv",
        f"{orders + batches:,}",
        f"{orders:,}",
        f"{batches:,}",
        f"{counts['files_rejected']:,}",
    )


def _counts(
    night: ValidatedInbox,
    order_duplicates: int,
    batch_duplicates: int,
    rejected_rows: dict[str, int],
    changes: dict[str, int],
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, duplicates in (("orders", order_duplicates), ("batches", batch_duplicates)):
        rejected = rejected_rows.get(kind, 0)
        counts[f"{kind}_received"] = night.received[kind]
        counts[f"{kind}_duplicate"] = duplicates
        counts[f"{kind}_rejected"] = rejected
        counts[f"{kind}_accepted"] = night.received[kind] - duplicates - rejected
    counts.update(changes)
    # Received: read, or rejected unread (as before entries in the wrong place were reported);
    # the entries ignored or waiting are in `INBOX_COUNTS`.
    counts["files_received"] = night.files.filter(
        pl.col("status").is_in(["loaded", "rejected"])
    ).height
    counts["files_rejected"] = night.files.filter(pl.col("status") == "rejected").height
    counts["files_skipped"] = len(night.skipped)
    counts.update(night.inbox_counts)
    return counts


def _record_run(
    uow: DuckDBUnitOfWork,
    run_id: str,
    day: dt.date,
    started_at: dt.datetime,
    night: ValidatedInbox,
    counts: dict[str, int | None],
) -> None:
    files = night.files
    row = {
        "run_id": run_id,
        "business_date": day,
        "started_at": started_at.replace(tzinfo=None),
        "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "status": "completed",
        **{name: count for name, count in counts.items() if name not in INBOX_COUNTS},
        "input_files": files.filter(pl.col("status").is_in(["loaded", "rejected"]))[
            "file_name"
        ].to_list(),
        "rejected_files": files.filter(pl.col("status") == "rejected")["file_name"].to_list(),
    }
    uow.repo.add_rows("runs", pl.DataFrame([row]))


def night_label(params: RunParameters, started: dt.datetime, run_id: str) -> str:
    """The name a night's published copy is kept under: sortable by date, then start time."""
    return f"{params.business_date}-{started:%Y%m%dT%H%M%S}-{run_id[:8]}"
