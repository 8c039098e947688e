"""The night's steps as plain functions over the io layer and the domain (the book's service layer).

The Prefect flow calls these one task each; tests call them directly, without Prefect.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from allocation.allocator import allocate_lines
from allocation.faults import crash_point
from allocation.io import inbox as inbox_io
from allocation.io import validation
from allocation.io.ingest import classify_batches, classify_orders
from allocation.io.outbox import write_night
from allocation.io.publish import publish_copy
from allocation.io.unit_of_work import DuckDBUnitOfWork, check_warehouse_path, connect
from allocation.manifest import apply_manifest_updates
from allocation.settings import ParameterError, RunParameters

log = logging.getLogger("allocation")

STATE_DB = "state.duckdb"


def state_db(params: RunParameters) -> Path:
    return params.state_dir / STATE_DB


def rate(rows: int, seconds: float) -> str:
    return f"{rows:,} rows in {seconds:.2f}s ({rows / seconds if seconds > 0 else 0:,.0f} rows/s)"


# -- load and validate ------------------------------------------------------------------------
@dataclass
class ValidatedInbox:
    """Tonight's inbox, read and validated: typed valid rows, and everything rejected so far.

    In `orders` and `batches`, `raw` is null where the row was received as exactly its typed
    values (`validation.leave_out_plain_raw`): `coalesce(raw, inbox.raw_text(kind))`."""

    orders: pl.DataFrame
    batches: pl.DataFrame
    rejected: pl.DataFrame
    files: pl.DataFrame  # kind, file_name, size, sha256, rows, status, reason
    received: dict[str, int]  # data rows per kind, the unreadable ones included
    skipped: list[str] = field(default_factory=list)


FILES_SCHEMA = {
    "kind": pl.String,
    "file_name": pl.String,
    "size": pl.Int64,
    "sha256": pl.String,
    "rows": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
}

_VALIDATORS: dict[inbox_io.Kind, Callable[[pl.DataFrame], validation.Validated]] = {
    "orders": validation.validate_orders,
    "batches": validation.validate_batches,
}


def already_ingested(params: RunParameters) -> set[tuple[str, str]]:
    """Files (name, sha256) this business date already committed: a rerun of the night skips
    them, so a rerun after a crash converges to what one uninterrupted run would have done."""
    path = state_db(params)
    if not path.exists():
        return set()
    with DuckDBUnitOfWork(path) as uow:
        return uow.repo.ingested_files(params.business_date)


def load_inbox(inbox: Path, skip: set[tuple[str, str]]) -> ValidatedInbox:
    """Reads and validates the inbox one file at a time: only one file's rows as received
    (strings and their `raw` text) are in memory at once, the typed valid rows accumulate."""
    started = time.perf_counter()
    files, rejected_files = inbox_io.find_inbox_files(inbox)
    # A file rejected before it could be read has no digest and is recorded with sha256 "": a
    # rerun of the date must not record it (or its rejection) a second time either.
    seen = pl.Series(
        [(name, "") in skip for name in rejected_files["source_file"]], dtype=pl.Boolean
    )
    skipped: list[str] = rejected_files.filter(seen)["source_file"].to_list()
    rejected_files = rejected_files.filter(~seen)
    valid: dict[str, list[pl.DataFrame]] = {"orders": [], "batches": []}
    received = {"orders": 0, "batches": 0}
    rejected = [rejected_files]
    records: list[dict[str, Any]] = []
    read_seconds = validate_seconds = 0.0
    for file in files:
        if (file.source_file, file.sha256) in skip:
            skipped.append(file.source_file)
            continue
        tick = time.perf_counter()
        read = inbox_io.read_inbox_file(file)
        tock = time.perf_counter()
        checked = _VALIDATORS[file.kind](read.rows)
        validate_seconds += time.perf_counter() - tock
        read_seconds += tock - tick
        valid[file.kind].append(validation.leave_out_plain_raw(checked.valid, file.kind))
        rejected += [read.rejected, checked.rejected]
        unreadable = 0 if read.file_rejected else read.rejected.height  # e.g. ragged CSV rows
        received[file.kind] += read.rows.height + unreadable
        if read.extra_columns:
            log.info(
                "%s: ignored extra columns %s", file.source_file, ", ".join(read.extra_columns)
            )
        reason = read.rejected["reason"][0] if read.file_rejected else None
        if reason:
            log.warning("Rejected file %s: %s", file.source_file, reason)
        records.append(
            {
                "kind": file.kind,
                "file_name": file.source_file,
                "size": file.size,
                "sha256": file.sha256,
                "rows": read.rows.height + unreadable,
                "status": "rejected" if read.file_rejected else "loaded",
                "reason": reason,
            }
        )
        del read, checked  # this file's strings: the next file reuses the memory
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
        orders=_concat(valid["orders"], "orders"),
        batches=_concat(valid["batches"], "batches"),
        rejected=pl.concat(rejected, how="vertical"),
        files=pl.DataFrame(records, schema=FILES_SCHEMA),
        received=received,
        skipped=skipped,
    )
    row_rejects = night.rejected.filter(pl.col("line").is_not_null()).height
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


def _concat(frames: list[pl.DataFrame], kind: inbox_io.Kind) -> pl.DataFrame:
    if frames:
        return pl.concat(frames, how="vertical")
    return _VALIDATORS[kind](inbox_io.empty_rows(kind)).valid  # no file: typed, empty


def log_rejected_rows(rejected: pl.DataFrame, reasons_per_file: int = 5) -> None:
    """Logs the rejected rows counted per file and reason, never one line per row.

    Reasons that differ only in their values (quoted, or any word with a digit: "qty -3 must be
    at least 1", "row has 5 fields, ...") count as one, shown with its first line as an example.
    A file with more kinds of reason than ``reasons_per_file`` gets one more line for the rest.
    """
    rows = rejected.filter(pl.col("line").is_not_null())
    if rows.is_empty():
        return
    groups = (
        rows.group_by(
            "source_file",
            pl.col("reason")
            .str.replace_all(r"'[^']*'", "'…'")
            .str.replace_all(r"[^\s'(),;]*\d[^\s'(),;]*", "…")
            .alias("alike"),
        )
        .agg(
            rows=pl.len(),
            line=pl.col("line").min(),
            example=pl.col("reason").sort_by("line").first(),
        )
        .sort(["source_file", "rows", "line"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len()).over("source_file"))
    )
    shown = groups.filter(pl.col("rank") < reasons_per_file)
    for source_file, alike, count, line, example in shown.select(
        "source_file", "alike", "rows", "line", "example"
    ).iter_rows():
        if count == 1:
            log.warning("%s: 1 row(s) rejected: %s (line %d)", source_file, example, line)
        elif alike == example:
            log.warning(
                "%s: %d row(s) rejected: %s (first at line %d)", source_file, count, alike, line
            )
        else:
            log.warning(
                "%s: %d row(s) rejected: %s (e.g. line %d: %s)",
                source_file,
                count,
                alike,
                line,
                example,
            )
    rest = (
        groups.filter(pl.col("rank") >= reasons_per_file)
        .group_by("source_file", maintain_order=True)
        .agg(rows=pl.col("rows").sum(), reasons=pl.len())
    )
    for source_file, count, reasons in rest.iter_rows():
        log.warning(
            "%s: %d row(s) rejected for %d other reason(s): see rejected.csv",
            source_file,
            count,
            reasons,
        )


# -- allocate and commit ---------------------------------------------------------------------
@dataclass(frozen=True)
class NightOutcome:
    run_id: str
    business_date: dt.date
    counts: dict[str, int]
    dry_run_folder: Path | None = None  # a dry run writes its reports before rolling back


Allocator = Callable[[pl.DataFrame, pl.DataFrame], pl.DataFrame]


def allocate_night(
    params: RunParameters,
    night: ValidatedInbox,
    run_id: str,
    started_at: dt.datetime,
    allocator: Allocator | None = None,
) -> NightOutcome:
    """One transaction: ingest, apply manifest changes, allocate every open line, record the run.
    Commits unless this is a dry run (then the reports are read before rolling back).

    `allocator(lines, batches)` places the lines (see `allocation.allocator.allocate_lines` for
    the frames); by default in this process, spread over `params.workers` processes. Whatever
    runs it, the merge into the warehouse happens here, in this run's single transaction."""
    day = params.business_date
    with DuckDBUnitOfWork(state_db(params)) as uow:
        repo = uow.repo
        batches = classify_batches(night.batches, repo.known_batches(night.batches))
        repo.add_batches(batches.new, day)
        changes = apply_manifest_updates(repo, batches.updates, day, run_id)

        orders = classify_orders(night.orders, repo.known_lines(night.orders))
        new_lines = orders.new.with_row_index("arrival_seq", offset=repo.next_arrival_seq())
        new_lines = new_lines.with_columns(pl.col("arrival_seq").cast(pl.Int64))
        waiting = repo.open_lines()
        candidates = pl.concat(
            [waiting, new_lines.select("orderid", "sku", "qty", "arrival_seq")], how="vertical"
        )
        tick = time.perf_counter()
        allocate = allocator or partial(allocate_lines, workers=params.workers)
        placed = allocate(candidates, repo.batches_for_skus(candidates.select("sku").unique()))
        log.info(
            "Allocated %s: %d placed, %d out of stock",
            rate(candidates.height, time.perf_counter() - tick),
            placed["batchref"].is_not_null().sum(),
            placed["batchref"].is_null().sum(),
        )
        # `placed` is `candidates` row for row (checked): the waiting lines, then tonight's.
        if not placed["arrival_seq"].equals(candidates["arrival_seq"]):
            raise RuntimeError("the allocator must return every line once, in arrival order")
        repo.add_lines(
            new_lines.with_columns(placed["batchref"].tail(new_lines.height)), day, run_id
        )
        placed_before = placed.head(waiting.height).filter(pl.col("batchref").is_not_null())
        repo.save_allocations(placed_before, placed, day, run_id)
        replaced = changes.record_destinations(repo, placed, day, run_id)
        allocated = int(placed["batchref"].is_not_null().sum())

        rejected = pl.concat([night.rejected, batches.rejected, orders.rejected], how="vertical")
        log_rejected_rows(rejected)
        repo.add_rows(
            "rejected_rows",
            rejected.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        repo.add_rows(
            "ingested_files",
            night.files.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
        )
        counts = _counts(night, orders.duplicates, batches.duplicates, rejected, changes.counts)
        counts.update(
            allocated=allocated,
            out_of_stock=placed.height - allocated,
            lines_replaced=replaced,
        )
        _record_run(uow, run_id, day, started_at, night, counts)
        if params.dry_run:
            folder = write_night(uow.con, day, params.outbox, dry_run=True)
            log.info("Dry run: nothing committed")
            return NightOutcome(run_id, day, counts, folder)
        crash_point("before-commit")
        uow.commit()
        crash_point("after-commit")
    return NightOutcome(run_id, day, counts)


def _counts(
    night: ValidatedInbox,
    order_duplicates: int,
    batch_duplicates: int,
    rejected: pl.DataFrame,
    changes: dict[str, int],
) -> dict[str, int]:
    rows = rejected.filter(pl.col("line").is_not_null())
    counts: dict[str, int] = {}
    for kind, duplicates in (("orders", order_duplicates), ("batches", batch_duplicates)):
        rejected_rows = rows.filter(pl.col("kind") == kind).height
        counts[f"{kind}_received"] = night.received[kind]
        counts[f"{kind}_duplicate"] = duplicates
        counts[f"{kind}_rejected"] = rejected_rows
        counts[f"{kind}_accepted"] = night.received[kind] - duplicates - rejected_rows
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
    con = connect(state_db(params))
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
    )


def check_inbox(inbox: Path) -> None:
    """Fails before anything else when the inbox itself is missing: a person must fix that."""
    if not inbox.is_dir():
        raise inbox_io.InboxError(
            f"inbox folder {inbox} does not exist or is not a folder: create it with batches/ "
            "and orders/ subfolders, or pass --inbox"
        )


def check_run_paths(params: RunParameters) -> None:
    """Refuses, before anything is read or written, paths no night can run with: the CLI and
    the flow both start with this one check."""
    check_inbox(params.inbox)
    check_warehouse_path(params.warehouse)
    if params.outbox.exists() and not params.outbox.is_dir():
        raise ParameterError(f"outbox {params.outbox} is a file: give a folder for the reports")


def night_label(params: RunParameters, started: dt.datetime, run_id: str) -> str:
    """The name a night's published copy is kept under: sortable by date, then start time."""
    return f"{params.business_date}-{started:%Y%m%dT%H%M%S}-{run_id[:8]}"


def committed_run(params: RunParameters, run_id: str) -> bool:
    """Whether run `run_id` is already committed (an earlier attempt of its allocate step
    committed, then failed before returning)."""
    path = state_db(params)
    if params.dry_run or not path.exists():
        return False
    with DuckDBUnitOfWork(path) as uow:
        return uow.repo.has_run(run_id)


def read_summary(folder: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return summary


def top_out_of_stock(folder: Path, limit: int = 20) -> pl.DataFrame:
    """Skus with the most open demand, for the run's artifact."""
    return (
        pl.read_parquet(folder / "out_of_stock.parquet")
        .group_by("sku")
        .agg(
            open_lines=pl.len(),
            open_qty=pl.col("qty").sum(),
            available=pl.col("available").first(),
            next_eta=pl.col("next_eta").min(),
        )
        .sort(["open_qty", "sku"], descending=[True, False])
        .head(limit)
    )


def run_night(params: RunParameters, run_id: str | None = None) -> dict[str, Any]:
    """The whole night without Prefect (tests, and a way to run in a bare Python process):
    the same steps as the flow, in the same order, under the same lock."""
    from allocation.io.run_lock import run_lock

    run_id = run_id or str(uuid.uuid4())
    started = dt.datetime.now(dt.UTC)
    check_inbox(params.inbox)
    with run_lock(
        params.state_dir / "run.lock",
        run_id=run_id,
        business_date=params.business_date.isoformat(),
        timeout=params.lock_timeout_seconds,
    ):
        night = load_inbox(params.inbox, already_ingested(params))
        outcome = allocate_night(params, night, run_id, started)
        del night  # the night's rows: the reports read the warehouse
        folder = write_reports(params, outcome)
        if not params.dry_run:
            publish(params, night_label(params, started, run_id))
    return {**read_summary(folder), "outbox_folder": str(folder)}
