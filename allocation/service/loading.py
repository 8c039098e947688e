"""Tonight's inbox read and validated into the run's staging file: the load step.

`load_inbox` reads the inbox file by file and appends the typed valid rows and everything
rejected to the run's staging file (`allocation.io.staging`), so that at most one file's rows (or
a group of small ones, `allocation.service.file_groups`) are in memory at a time. It hands on a
`ValidatedInbox`, a small handle the allocate step (`allocation.service.night_transaction`)
reads the staging file through.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from allocation.faults import crash_point
from allocation.io import readers, staging, validation
from allocation.io.schemas import Kind
from allocation.service.file_groups import (
    VALIDATORS,
    FileGroup,
    file_record,
    no_eta,
    note_extra_columns,
    small_file_read,
)
from allocation.service.progress import Progress, no_progress
from allocation.service.rates import rate
from allocation.settings import RunParameters

log = logging.getLogger("allocation")


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
    removed = staging.clear_leftovers(params.state_folder.load)
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
    path = params.state_folder.load_file(run_id)
    with staging.StagingWriter(path, params.duckdb_limits) as staged:
        staged.add("rejected", rejected_files)
        group = FileGroup(staged)
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
                read = small_file_read(file, stream, head)
                records.append(file_record(file, stream, read))
                received[file.kind] += records[-1]["rows"]
                manifest_without_eta = (
                    file.kind == "batches" and bool(read.extra_columns) and no_eta(read.rows)
                )
                note_extra_columns(file, read.extra_columns, manifest_without_eta, without_eta)
                if stream.problem is not None:
                    log.warning("Rejected file %s: %s", file.source_file, stream.problem)
                group.add(read)  # validated and staged with the small files around it
                del read, head
                progress(done, total_bytes)
                continue
            group.flush()  # a big file streams alone, slice by slice, in arrival order
            rows = row_rejected = 0
            manifest_without_eta = file.kind == "batches"  # every row so far: "in stock now"
            with staged.file() as one:
                tick = time.perf_counter()
                for part in itertools.chain(head, slices):
                    tock = time.perf_counter()
                    checked = VALIDATORS[file.kind](part.rows)
                    manifest_without_eta = manifest_without_eta and (
                        not part.rows.height or no_eta(part.rows)
                    )
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
                note_extra_columns(
                    file, stream.extra_columns, manifest_without_eta and rows > 0, without_eta
                )
            else:
                rows = 0
                staged.add("rejected", readers.reject_file(file, reason).rejected)
                log.warning("Rejected file %s: %s", file.source_file, reason)
            records.append(file_record(file, stream, None, rows))
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
    validated = ValidatedInbox(
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
    return validated


_NOT_READ = {"ignored": "Not read:", "waiting": "Left for a later run:"}


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
