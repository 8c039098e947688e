"""The night's steps as plain functions over the io layer and the domain (the book's service layer).

`allocation.night` puts them in order under the warehouse lock, once for both ways of running a
night (the Prefect flow, a task per step, and `run_night`); tests also call them directly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from allocation.allocator import Candidates, allocate_candidates
from allocation.faults import crash_point
from allocation.io import readers, rejections, staging, validation
from allocation.io.candidates import DuckDBCandidates
from allocation.io.ingest import classify_batches
from allocation.io.outbox import write_night
from allocation.io.pending import PendingNight, leave_note, read_note, remove_note
from allocation.io.publish import publish_copy
from allocation.io.rejection_log import log_rejected_rows
from allocation.io.schemas import Kind
from allocation.io.unit_of_work import DuckDBUnitOfWork, connect
from allocation.manifest import apply_manifest_updates
from allocation.settings import RunParameters, working_storage_version
from allocation.state import state_db

log = logging.getLogger("allocation")

#: `progress(done, total)`: how far a step is, in its own units (files, lines). The flow turns
#: it into the run's progress artifact; the service layer knows nothing of Prefect.
Progress = Callable[[int, int], None]


def _no_progress(done: int, total: int) -> None:
    """The default `Progress`: nobody is watching."""


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

_VALIDATORS: dict[Kind, Callable[[pl.DataFrame], validation.Validated]] = {
    "orders": validation.validate_orders,
    "batches": validation.validate_batches,
}


def load_inbox(
    params: RunParameters,
    run_id: str,
    skip: set[tuple[str, str]],
    progress: Progress = _no_progress,
) -> ValidatedInbox:
    """Reads and validates the inbox one file at a time, appending each file's typed valid rows
    and rejections to the run's staging file: only one file's rows are in memory at once.
    `progress(bytes done, bytes in all)` is called after each file: a big file moves the bar
    more than a small one. Call it holding the run lock: it removes the staging files that
    killed runs left behind."""
    started = time.perf_counter()
    removed = staging.clear_leftovers(params.state_dir)
    if removed:
        log.info("Removed %d staging file(s) left by an earlier run that stopped", len(removed))
    files, rejected_files = readers.find_inbox_files(params.inbox)
    # A file rejected before it could be read has no digest and is recorded with sha256 "": a
    # rerun of the date must not record it (or its rejection) a second time either.
    seen = pl.Series(
        [(name, "") in skip for name in rejected_files["source_file"]], dtype=pl.Boolean
    )
    skipped: list[str] = rejected_files.filter(seen)["source_file"].to_list()
    rejected_files = rejected_files.filter(~seen)
    received = {"orders": 0, "batches": 0}
    records: list[dict[str, Any]] = []
    read_seconds = validate_seconds = 0.0
    row_rejects = 0
    total_bytes = sum(file.size for file in files)
    done = 0
    path = staging.staging_path(params.state_dir, run_id)
    with staging.StagingWriter(path, params.duckdb_limits) as staged:
        staged.add("rejected", rejected_files)
        for file in files:
            done += file.size
            if (file.source_file, file.sha256) in skip:
                skipped.append(file.source_file)
                progress(done, total_bytes)
                continue
            stream = readers.stream_inbox_file(file)
            rows = row_rejected = 0
            with staged.file() as one:
                tick = time.perf_counter()
                for part in stream:
                    tock = time.perf_counter()
                    checked = _VALIDATORS[file.kind](part.rows)
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
                read_seconds += time.perf_counter() - tick
                if stream.problem is not None:
                    one.drop()  # rejected whole: nothing of it is kept
            reason = stream.problem
            if reason is None:
                received[file.kind] += rows
                row_rejects += row_rejected
                if stream.extra_columns:
                    log.info(
                        "%s: ignored extra columns %s",
                        file.source_file,
                        ", ".join(stream.extra_columns),
                    )
            else:
                rows = 0
                staged.add("rejected", _file_rejection(file, reason))
                log.warning("Rejected file %s: %s", file.source_file, reason)
            records.append(
                {
                    "kind": file.kind,
                    "file_name": file.source_file,
                    "size": stream.size,
                    # A file that changed while it was read has no checksum of its own: recorded
                    # with "", which no file read has, so a rerun of the date reads it again.
                    "sha256": "" if stream.changed else stream.sha256,
                    "rows": rows,
                    "status": "loaded" if reason is None else "rejected",
                    "reason": reason,
                }
            )
            progress(done, total_bytes)
    for row in rejected_files.iter_rows(named=True):
        log.warning("Rejected file %s: %s", row["source_file"], row["reason"])
        records.append(
            {
                "kind": row["kind"],
                "file_name": row["source_file"],
                "size": 0,
                "sha256": "",
                "rows": 0,
                "status": "rejected",
                "reason": row["reason"],
            }
        )
    if skipped:
        log.info("Skipped %d file(s) already committed for this business date", len(skipped))
    crash_point("after-load")
    night = ValidatedInbox(
        staging=path,
        files=pl.DataFrame(records, schema=FILES_SCHEMA),
        received=received,
        skipped=skipped,
    )
    log.info(
        "Loaded %d file(s): orders %s; batches %d rows",
        len(records),
        rate(received["orders"], read_seconds),
        received["batches"],
    )
    log.info(
        "Validated orders %s; %d row(s) rejected in all (%.2fs for the whole step)",
        rate(received["orders"], validate_seconds),
        row_rejects,
        time.perf_counter() - started,
    )
    crash_point("after-validate")
    return night


def _file_rejection(file: readers.InboxFile, reason: str) -> pl.DataFrame:
    return rejections.build(
        kind=file.kind, source_file=file.source_file, line=None, reason=reason, raw=None
    )


# -- allocate and commit ---------------------------------------------------------------------
@dataclass(frozen=True)
class NightOutcome:
    run_id: str
    business_date: dt.date
    counts: dict[str, int]
    dry_run_folder: Path | None = None  # a dry run writes its reports before rolling back


#: Allocates every chunk of the night's candidates and records each chunk's placements in it
#: (`allocation.allocator.allocate_candidates` is the default).
Allocator = Callable[[Candidates], None]


def allocate_night(
    params: RunParameters,
    night: ValidatedInbox,
    run_id: str,
    started_at: dt.datetime,
    allocator: Allocator | None = None,
    progress: Progress = _no_progress,
) -> NightOutcome:
    """One transaction: ingest, apply manifest changes, allocate every open line, record the run.
    Commits unless this is a dry run (then the reports are read before rolling back).

    `allocator(candidates)` places the night's open lines, chunk of skus by chunk of skus
    streamed out of DuckDB (`allocation.io.candidates`); by default in this process, spread
    over `params.workers` processes. Whatever runs it, the placements are recorded here, by
    SQL, in this run's single transaction. `progress(lines placed, lines to place)` is passed
    to the default allocator (a custom one reports its own) and called once more when every
    line is placed."""
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
        changes = apply_manifest_updates(repo, batches.updates, day, run_id)

        # Tonight's new lines: the TEMP table or view `night_lines` (arrival_seq dense from
        # the next free number), read below while the staging file is attached.
        order_duplicates = staging.classify_staged_orders(uow.con, repo.next_arrival_seq())

        tick = time.perf_counter()
        candidates = DuckDBCandidates(uow.con, params.duckdb_limits.temp_directory)
        try:
            allocate = allocator or partial(
                allocate_candidates, workers=params.workers, progress=progress
            )
            allocate(candidates)
            allocated = candidates.load_placements()
        finally:
            candidates.discard()
        progress(candidates.lines, candidates.lines)
        log.info(
            "Allocated %s: %d placed, %d out of stock",
            rate(candidates.lines, time.perf_counter() - tick),
            allocated,
            candidates.lines - allocated,
        )
        tick = time.perf_counter()
        replaced = changes.record_destinations(repo, day, run_id)
        repo.record_placements(day, run_id)
        log.info("Recorded the night's placements in %.2fs", time.perf_counter() - tick)

        # The rejections by SQL from the staging file, in the order they were found: the
        # load's, the manifests', the orders'.
        log_rejected_rows(itertools.chain(staging.rejection_chunks(uow.con), [batches.rejected]))
        staging.add_load_rejections(uow.con, run_id, day)
        repo.add_rows(
            "rejected_rows",
            batches.rejected.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        staging.add_order_rejections(uow.con, run_id, day)
        repo.add_rows(
            "ingested_files",
            night.files.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        rejected_rows = staging.rejected_row_counts(uow.con)
        rejected_rows["batches"] = rejected_rows.get("batches", 0) + int(
            batches.rejected["line"].is_not_null().sum()
        )
        counts = _counts(night, order_duplicates, batches.duplicates, rejected_rows, changes.counts)
        counts.update(
            allocated=allocated,
            out_of_stock=candidates.lines - allocated,
            lines_replaced=replaced,
        )
        _record_run(uow, run_id, day, started_at, night, counts)
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
    counts["files_received"] = night.files.height
    counts["files_rejected"] = night.files.filter(pl.col("status") == "rejected").height
    counts["files_skipped"] = len(night.skipped)
    return counts


def _record_run(
    uow: DuckDBUnitOfWork,
    run_id: str,
    day: dt.date,
    started_at: dt.datetime,
    night: ValidatedInbox,
    counts: dict[str, int],
) -> None:
    files = night.files
    row = {
        "run_id": run_id,
        "business_date": day,
        "started_at": started_at.replace(tzinfo=None),
        "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "status": "completed",
        **counts,
        "input_files": files["file_name"].to_list(),
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
        params.state_dir / "published",
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
