"""The night's steps as plain functions over the io layer and the domain (the book's service layer).

`allocation.service.night` puts them in order under the warehouse lock, once for both ways of running a
night (the Prefect flow, a task per step, and `run_night`); tests also call them directly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from allocation.faults import crash_point
from allocation.io import check_figures, readers, rejections, staged_night, staging, validation
from allocation.io.candidates import DuckDBCandidates
from allocation.io.ingest import classify_batches
from allocation.io.outbox import write_night
from allocation.io.pending import PendingNight, leave_note, read_note, remove_note
from allocation.io.publish import publish_copy
from allocation.io.rejection_log import log_rejected_rows
from allocation.io.schemas import Kind, rows_schema
from allocation.io.unit_of_work import DuckDBUnitOfWork, WarehouseError, connect
from allocation.io.warehouse_schema import code_rejections
from allocation.service import night_checks
from allocation.service.engine.columns import allocate_columns
from allocation.service.engine.sources import Candidates
from allocation.service.manifest import apply_manifest_updates
from allocation.service.progress import Progress, no_progress
from allocation.service.state import state_db
from allocation.settings import RunParameters
from allocation.settings.storage_version import working_storage_version

log = logging.getLogger("allocation")


def rate(rows: int, seconds: float) -> str:
    return f"{rows:,} rows in {seconds:.2f}s ({rows / seconds if seconds > 0 else 0:,.0f} rows/s)"


# -- load and validate ------------------------------------------------------------------------
@dataclass
class ValidatedInbox:
    """Tonight's inbox, read and validated: a handle on the run's staging file, which holds the
    typed valid rows and everything rejected so far (`allocation.io.staging`), and what the load
    saw of each file. Small: it travels between the flow's steps.

    In the staged orders and batches, `raw` is null where the row was received as exactly its
    typed values (`validation.leave_out_plain_raw`): `coalesce(raw, schemas.raw_text(kind))`."""

    staging: Path
    files: pl.DataFrame  # kind, file_name, size, sha256, rows, status, reason
    received: dict[str, int]  # data rows per kind, the unreadable ones included
    skipped: list[str] = field(default_factory=list)
    #: What this run did with the inbox's entries (`INBOX_COUNTS`): read, not read, per kind.
    inbox_counts: dict[str, int] = field(default_factory=dict)
    #: Manifest files with ignored columns and no eta on any row (a renamed eta column?).
    manifests_without_eta: list[str] = field(default_factory=list)

    def discard(self) -> None:
        """Removes the staging file: once the night has committed or rolled back for good."""
        staging.discard(self.staging)


FILES_SCHEMA = {
    "kind": pl.String,
    "file_name": pl.String,
    "size": pl.Int64,
    "sha256": pl.String,
    "rows": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
}

#: What a night did with its inbox's entries, in `NightOutcome.counts` (the quality checks read
#: them): every entry seen = read + skipped (committed earlier for the date) + waiting (not complete
#: yet) + ignored (hidden, misplaced, a backup) + rejected unread (a bad name or type, a folder).
#: `order_files_read` 0 is a night without an order file. Not columns of `runs`: summary.json
#: derives the same from `ingested_files`.
INBOX_COUNTS = (
    "files_seen",
    "files_read",
    "files_waiting",
    "files_ignored",
    "order_files_read",
    "batch_files_read",
)

_VALIDATORS: dict[Kind, Callable[[pl.DataFrame], validation.Validated]] = {
    "orders": validation.validate_orders,
    "batches": validation.validate_batches,
}


def load_inbox(
    params: RunParameters,
    run_id: str,
    skip: set[tuple[str, str]],
    progress: Progress = no_progress,
) -> ValidatedInbox:
    """Reads and validates the inbox file by file, appending the typed valid rows and rejections
    to the run's staging file: small files are validated and staged in groups of up to
    `GROUP_ROWS` rows (a big file alone), so only that many rows are in memory at once.
    `progress(bytes done, bytes in all)` is called after each file: a big file moves the bar
    more than a small one. Call it holding the run lock: it removes the staging files that
    killed runs left behind."""
    started = time.perf_counter()
    removed = staging.clear_leftovers(params.state_dir)
    if removed:
        log.info("Removed %d staging file(s) left by an earlier run that stopped", len(removed))
    listing = readers.list_inbox(params.inbox, params.inbox_settle_seconds)
    files = listing.files
    # An entry not read has no digest and is recorded with sha256 "": a rerun of the date must
    # not record it (or its rejection) a second time either.
    recorded = [(entry.source_file, "") in skip for entry in listing.not_read]
    for entry, known in zip(listing.not_read, recorded, strict=True):
        if entry.status == "rejected" and not known:
            log.warning("Rejected file %s: %s", entry.source_file, entry.reason)
        elif entry.status != "rejected":  # said on every run until someone moves it
            log.warning("%s %s: %s", _NOT_READ[entry.status], entry.source_file, entry.reason)
    not_read = [entry for entry, known in zip(listing.not_read, recorded, strict=True) if not known]
    skipped: list[str] = [
        entry.source_file for entry, known in zip(listing.not_read, recorded, strict=True) if known
    ]
    rejected_files = readers.InboxListing([], not_read).rejections()
    received = {"orders": 0, "batches": 0}
    records: list[dict[str, Any]] = []
    without_eta: list[str] = []
    read_seconds = validate_seconds = 0.0
    row_rejects = 0
    total_bytes = sum(file.size for file in files)
    done = 0
    path = staging.staging_path(params.state_dir, run_id)
    with staging.StagingWriter(path, params.duckdb_limits) as staged:
        staged.add("rejected", rejected_files)
        group = _FileGroup(staged)
        for file in files:
            done += file.size
            if (file.source_file, file.sha256) in skip:
                skipped.append(file.source_file)
                progress(done, total_bytes)
                continue
            stream = readers.stream_inbox_file(file)
            slices = iter(stream)
            head = [part for part in (next(slices, None), next(slices, None)) if part]
            if len(head) < 2:  # at most one slice, and the stream is done: a small file
                read = _small_file_read(file, stream, head)
                records.append(_file_record(file, stream, read))
                received[file.kind] += records[-1]["rows"]
                no_eta = file.kind == "batches" and bool(read.extra_columns) and _no_eta(read.rows)
                _note_extra_columns(file, read.extra_columns, no_eta, without_eta)
                if stream.problem is not None:
                    log.warning("Rejected file %s: %s", file.source_file, stream.problem)
                group.add(read)  # validated and staged with the small files around it
                del read, head
                progress(done, total_bytes)
                continue
            group.flush()  # a big file streams alone, slice by slice, in arrival order
            rows = row_rejected = 0
            no_eta = file.kind == "batches"  # every row so far says "in stock now"
            with staged.file() as one:
                tick = time.perf_counter()
                for part in itertools.chain(head, slices):
                    tock = time.perf_counter()
                    checked = _VALIDATORS[file.kind](part.rows)
                    no_eta = no_eta and (not part.rows.height or _no_eta(part.rows))
                    read_seconds += tock - tick
                    tick = time.perf_counter()
                    validate_seconds += tick - tock
                    one.add(file.kind, validation.leave_out_plain_raw(checked.valid, file.kind))
                    one.add("rejected", part.rejected)
                    one.add("rejected", checked.rejected)
                    rows += part.rows.height + part.rejected.height  # e.g. ragged rows
                    row_rejected += part.rejected.height + checked.rejected.height
                    del part, checked  # this slice's rows: the next one reuses the memory
                    tick = time.perf_counter()
                head.clear()
                read_seconds += time.perf_counter() - tick
                if stream.problem is not None:
                    one.drop()  # rejected whole: nothing of it is kept
            reason = stream.problem
            if reason is None:
                received[file.kind] += rows
                row_rejects += row_rejected
                _note_extra_columns(file, stream.extra_columns, no_eta and rows > 0, without_eta)
            else:
                rows = 0
                staged.add("rejected", readers.reject_file(file, reason).rejected)
                log.warning("Rejected file %s: %s", file.source_file, reason)
            records.append(_file_record(file, stream, None, rows))
            progress(done, total_bytes)
        group.flush()
    validate_seconds += group.validate_seconds
    row_rejects += group.row_rejects
    read_files = {kind: 0 for kind in readers.KINDS}
    for record in records:
        read_files[record["kind"]] += 1
    for entry in not_read:
        records.append(
            {
                "kind": entry.kind,
                "file_name": entry.source_file,
                "size": 0,
                "sha256": "",
                "rows": 0,
                "status": entry.status,
                "reason": entry.reason,
            }
        )
    if skipped:
        log.info("Skipped %d file(s) already committed for this business date", len(skipped))
    inbox_counts = _inbox_counts(listing, read_files)
    _warn_about_the_inbox(params, inbox_counts, skipped)
    crash_point("after-load")
    night = ValidatedInbox(
        staging=path,
        files=pl.DataFrame(records, schema=FILES_SCHEMA),
        received=received,
        skipped=skipped,
        inbox_counts=inbox_counts,
        manifests_without_eta=without_eta,
    )
    log.info(
        "Loaded %d file(s): orders %s; batches %d rows",
        len(records),
        rate(received["orders"], read_seconds),
        received["batches"],
    )
    log.info(
        "Validated orders %s; %s row(s) rejected while reading and validating (%.2fs for the "
        "whole step; the night's total, with the rows refused when allocating, comes after it)",
        rate(received["orders"], validate_seconds),
        f"{row_rejects:,}",
        time.perf_counter() - started,
    )
    crash_point("after-validate")
    return night


def _small_file_read(
    file: readers.InboxFile, stream: readers.FileStream, slices: list[readers.FileSlice]
) -> readers.FileRead:
    """A file the reader gave in at most one slice, as one `FileRead` for the group."""
    if stream.problem is not None:
        return readers.reject_file(
            file, stream.problem, sha256=stream.sha256, changed=stream.changed
        )
    return readers.FileRead(
        file=file,
        rows=slices[0].rows if slices else readers.empty_rows(file.kind),
        rejected=slices[0].rejected if slices else rejections.empty(),
        extra_columns=stream.extra_columns,
        sha256=stream.sha256,
    )


def _file_record(
    file: readers.InboxFile,
    stream: readers.FileStream,
    read: readers.FileRead | None,
    rows: int = 0,
) -> dict[str, Any]:
    """The `ingested_files` row of a file read: `read` for a small file, `rows` for a big one."""
    if read is not None:
        rows = 0 if read.file_rejected else read.rows.height + read.rejected.height
    return {
        "kind": file.kind,
        "file_name": file.source_file,
        "size": stream.size,
        # A file that changed while it was read has no checksum of its own: recorded with "",
        # which no file read has, so a rerun of the date reads it again.
        "sha256": "" if stream.changed else stream.sha256,
        "rows": rows,
        "status": "loaded" if stream.problem is None else "rejected",
        "reason": stream.problem,
    }


def _no_eta(rows: pl.DataFrame) -> bool:
    """A manifest's rows all say "in stock now" (no eta): with ignored columns beside, the eta
    column was likely renamed."""
    if not rows.height or "eta" not in rows.columns:
        return bool(rows.height)
    eta = rows["eta"]
    blank = eta.is_null() | (eta.cast(pl.String).str.strip_chars() == "")
    return bool(blank.all())


def _note_extra_columns(
    file: readers.InboxFile, extra: Sequence[str], no_eta: bool, without_eta: list[str]
) -> None:
    """Logs the columns a file had beyond the contract's; a manifest whose every row says "in
    stock now" beside such columns (`no_eta`) probably had its eta column renamed: it joins
    `without_eta` (the night's checks flag it)."""
    if not extra:
        return
    log.info("%s: ignored extra columns %s", file.source_file, ", ".join(extra))
    if file.kind == "batches" and no_eta:
        without_eta.append(file.source_file)


_NOT_READ = {"ignored": "Not read:", "waiting": "Left for a later run:"}

#: Rows of small files read before they are validated and staged together: validating a frame
#: with pandera and appending it to DuckDB cost ~20 ms whatever its size, so 5,000 small files
#: validated one by one took 100 s for 10,000 rows. A group never holds more than this many rows
#: plus one file, so memory stays bounded as when one file at a time was held.
GROUP_ROWS = 100_000


class _FileGroup:
    """Files read but not yet validated: small files of one kind in arrival order, validated as
    one frame and appended to the staging file at once (rows, then the readers' rejections and
    validation's, file by file in the order found, as when each file went alone)."""

    def __init__(self, staged: staging.StagingWriter) -> None:
        self.staged = staged
        self.reads: list[readers.FileRead] = []
        self.rows = 0
        self.validate_seconds = 0.0
        self.row_rejects = 0

    def add(self, read: readers.FileRead) -> None:
        if self.reads and self.reads[0].file.kind != read.file.kind:
            self.flush()
        self.reads.append(read)
        self.rows += read.rows.height
        if self.rows >= GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.reads:
            return
        kind = self.reads[0].file.kind
        contract = rows_schema(kind)
        rows = pl.concat(
            [
                read.rows
                if read.rows.schema == contract
                else read.rows.select(pl.col(c).cast(t) for c, t in contract.items())
                for read in self.reads
            ]
        )
        tick = time.perf_counter()
        checked = _VALIDATORS[kind](rows)
        self.validate_seconds += time.perf_counter() - tick
        self.staged.add(kind, validation.leave_out_plain_raw(checked.valid, kind))
        found = pl.concat([read.rejected for read in self.reads] + [checked.rejected])
        if found.height:  # each file's rejections together, the reader's first (arrival order)
            order = {read.file.source_file: i for i, read in enumerate(self.reads)}
            readers_first = [0] * (found.height - checked.rejected.height)
            found = found.with_columns(
                _file=pl.col("source_file").replace_strict(
                    order, default=len(order), return_dtype=pl.Int64
                ),
                _step=pl.Series(readers_first + [1] * checked.rejected.height),
            ).sort("_file", "_step", maintain_order=True)
            self.staged.add("rejected", found.drop("_file", "_step"))
        self.row_rejects += int(found["line"].is_not_null().sum())
        self.reads.clear()
        self.rows = 0


def _inbox_counts(listing: readers.InboxListing, read_files: dict[Kind, int]) -> dict[str, int]:
    """`INBOX_COUNTS` of this run (a file skipped as committed earlier is not read again)."""
    status = [entry.status for entry in listing.not_read]
    return {
        "files_seen": len(listing.files) + len(listing.not_read),
        "files_read": sum(read_files.values()),
        "files_waiting": status.count("waiting"),
        "files_ignored": status.count("ignored"),
        "order_files_read": read_files["orders"],
        "batch_files_read": read_files["batches"],
    }


def _warn_about_the_inbox(
    params: RunParameters, counts: dict[str, int], skipped: list[str]
) -> None:
    """Says loudly when the night has no order file, or found entries and read none of them."""
    orders_skipped = any(name.startswith("orders/") for name in skipped)
    if not counts["order_files_read"] and not orders_skipped:
        log.warning(
            "No order file tonight: nothing was read from %s (order files go there, named "
            "*.csv, *.parquet or *.jsonl); the night allocates only the lines already waiting",
            params.inbox / "orders",
        )
    if counts["files_seen"] and not counts["files_read"] and not skipped:
        log.warning(
            "The inbox %s holds %d entr%s and none was read: see the warnings above "
            "and rejected.csv",
            params.inbox,
            counts["files_seen"],
            "y" if counts["files_seen"] == 1 else "ies",
        )


# -- allocate and commit ---------------------------------------------------------------------
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
        return _allocate_night(params, night, run_id, started_at, allocator, progress)
    except night_checks.NightStopped as stopped:
        try:
            _record_checks(params, run_id, stopped.results)
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
        staged_night.attached(uow.con, night.staging),
    ):
        repo = uow.repo
        tonight_batches = staged_night.staged_batches(uow.con)
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
        order_duplicates = staged_night.classify_staged_orders(uow.con, repo.next_arrival_seq())
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
        log_rejected_rows(
            itertools.chain(staged_night.rejection_chunks(uow.con), [batches.rejected])
        )
        staged_night.add_load_rejections(uow.con, run_id, day)
        repo.add_rows(
            "rejected_rows",
            batches.rejected.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        staged_night.add_order_rejections(uow.con, run_id, day)
        code_rejections(uow.con, run_id)
        repo.add_rows(
            "ingested_files",
            night.files.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        rejected_rows = staged_night.rejected_row_counts(uow.con)
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
        results = _check_night(params, uow, night, counts, before, open_lines)
        stopped = night_checks.stop_message(day, results)
        if stopped and not params.dry_run:
            raise night_checks.NightStopped(stopped, results)  # rolled back on the way out
        if stopped:
            log.warning("Dry run: a run of this night would stop here: %s", stopped)
        _add_check_rows(uow, run_id, day, results, committed=True)
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


def _check_night(
    params: RunParameters,
    uow: DuckDBUnitOfWork,
    night: ValidatedInbox,
    counts: dict[str, int],
    before: tuple[int, int] | None,
    lines_tried: int,
) -> list[night_checks.CheckResult]:
    """Tonight's figures, gathered in the open transaction, through every configured check;
    failures logged as warnings."""
    day, con = params.business_date, uow.con
    orders = night.files.filter(pl.col("kind") == "orders").height
    figures = night_checks.NightFigures(
        order_files=orders + sum(name.startswith("orders/") for name in night.skipped),
        new_order_lines=counts["orders_accepted"] + check_figures.accepted_earlier_today(con, day),
        files_read=counts["files_received"],
        files_rejected=counts["files_rejected"],
        orders_received=counts["orders_received"],
        orders_rejected=counts["orders_rejected"],
        batches_received=counts["batches_received"],
        batches_rejected=counts["batches_rejected"],
        order_history=check_figures.order_history(con, day),
        allocated_before=None if before is None else before[0],
        lines_released=counts.get("lines_released", 0),
        active_batches_before=None if before is None else before[1],
        batches_cancelled=counts.get("cancellations", 0),
        manifests_without_eta=night.manifests_without_eta,
        lines_tried=lines_tried,
        lines_open=counts["out_of_stock"],
        last_out_of_stock_share=check_figures.last_out_of_stock_share(con),
        stopped_nights=check_figures.stopped_nights(con, day),
    )
    results = night_checks.evaluate(
        night_checks.configured(params),
        figures,
        night_checks.accepted_names(params.accept_checks),
        empty_night_ok=params.empty_night_ok,
        min_history=params.check_min_history,
    )
    for result in results:
        if result.result == "accepted":
            log.warning("Check failed, accepted by this run: %s", result.line())
        elif result.result == "failed" and result.level == "warn":
            log.warning("Check failed (warn): %s", result.line())
    return results


def _add_check_rows(
    uow: DuckDBUnitOfWork,
    run_id: str,
    day: dt.date,
    results: Sequence[night_checks.CheckResult],
    *,
    committed: bool,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        {
            "business_date": day,
            "run_id": run_id,
            "checked_at": now,
            "check_name": r.check,
            "level": r.level,
            "figure": r.figure,
            "threshold": r.threshold,
            "result": r.result,
            "detail": r.detail,
            "committed": committed,
        }
        for r in results
    ]
    uow.repo.add_rows("night_checks", pl.DataFrame(rows, schema=CHECK_ROWS_SCHEMA))


CHECK_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "business_date": pl.Date(),
    "run_id": pl.String(),
    "checked_at": pl.Datetime("us"),
    "check_name": pl.String(),
    "level": pl.String(),
    "figure": pl.Float64(),
    "threshold": pl.Float64(),
    "result": pl.String(),
    "detail": pl.String(),
    "committed": pl.Boolean(),
}


def _record_checks(
    params: RunParameters, run_id: str, results: Sequence[night_checks.CheckResult]
) -> None:
    """A stopped night's check results, committed on their own (nothing else of the night)."""
    with DuckDBUnitOfWork(
        state_db(params),
        params.duckdb_limits,
        create_in=working_storage_version(params.warehouse_storage_version),
    ) as uow:
        _add_check_rows(uow, run_id, params.business_date, results, committed=False)
        uow.commit()


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


# -- reports and publishing ------------------------------------------------------------------
def write_reports(params: RunParameters, outcome: NightOutcome) -> Path:
    """Reports come from committed state (or, for a dry run, the state it computed)."""
    if outcome.dry_run_folder is not None:
        return outcome.dry_run_folder
    con = connect(state_db(params), limits=params.duckdb_limits)
    try:
        return write_night(con, params.business_date, params.outbox)
    finally:
        con.close()


def publish(params: RunParameters, label: str) -> Path:
    """Publishes the committed state as the analysts' warehouse file."""
    return publish_copy(
        state_db(params),
        params.warehouse,
        params.state_folder.published,
        label,
        params.keep_published,
        params.warehouse_storage_version,
    )


def finish_committed_night(params: RunParameters, run_id: str) -> PendingNight | None:
    """Writes the reports and the published copy of a night that committed but stopped before
    it had written them (cancelled, killed, its host lost), read from the note it left
    (`allocation.io.pending`); returns that night, or None when none was left undone. A note
    whose run the ledger does not hold is a night that never committed: it is dropped. The
    note of run `run_id` itself is left alone: that run is about to do its own steps again.
    Call it holding the warehouse lock."""
    note = read_note(params.state_dir)
    if note is None or note.run_id == run_id:
        return None
    with DuckDBUnitOfWork(state_db(params), params.duckdb_limits) as uow:
        committed = uow.repo.has_run(note.run_id)
    if not committed:
        log.info("%s stopped before its commit: nothing of it to finish", note.describe())
        remove_note(params.state_dir, note.run_id)
        return None
    log.warning(
        "%s committed, then stopped before its reports and published copy were written "
        "(cancelled or killed): writing them now, before anything else",
        note.describe(),
    )
    committed_night = params.model_copy(
        update={"business_date": note.business_date, "outbox": note.outbox, "dry_run": False}
    )
    write_reports(committed_night, NightOutcome(note.run_id, note.business_date, counts={}))
    publish(committed_night, note.label)
    remove_note(params.state_dir, note.run_id)
    return note


def night_label(params: RunParameters, started: dt.datetime, run_id: str) -> str:
    """The name a night's published copy is kept under: sortable by date, then start time."""
    return f"{params.business_date}-{started:%Y%m%dT%H%M%S}-{run_id[:8]}"
