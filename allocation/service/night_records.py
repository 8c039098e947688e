"""What a night writes into the warehouse within its transaction, and how it counts itself.

Each function is one step of `allocation.service.night_transaction._allocate_night`, in the
order it calls them: tonight's manifests taken in, the placements, the rejections and the files
recorded, the night's counts, and finally its `runs` row. They all work on `Tonight`, the run
and its open transaction.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from dataclasses import dataclass

import polars as pl

from allocation.io.ingest import Classified, classify_batches
from allocation.io.rejection_log import log_rejected_rows
from allocation.io.staged_night import StagedNight
from allocation.io.unit_of_work import DuckDBUnitOfWork
from allocation.service.loading import INBOX_COUNTS, ValidatedInbox
from allocation.service.manifest import ManifestChanges
from allocation.settings import RunParameters

log = logging.getLogger("allocation")


@dataclass(frozen=True)
class Tonight:
    """What every step of the transaction works with: the run, its inbox, the open transaction
    and the run's staging file attached to it."""

    params: RunParameters
    inbox: ValidatedInbox
    run_id: str
    uow: DuckDBUnitOfWork
    staged: StagedNight

    @property
    def day(self) -> dt.date:
        return self.params.business_date


def take_in_manifests(tonight: Tonight) -> Classified:
    """Tonight's manifest rows classified against the warehouse (new batches, changes to known
    ones, duplicates, rejections); the rows received and the new batches recorded."""
    repo = tonight.uow.repo
    tonight_batches = tonight.staged.batches()
    batches = classify_batches(
        tonight_batches,
        repo.known_batches(tonight_batches),
        repo.received_manifest_rows(tonight_batches),
        repo.loaded_before(tonight.inbox.files.filter(pl.col("kind") == "batches")),
    )
    del tonight_batches
    repo.add_rows(
        "manifest_rows",
        batches.received.with_columns(
            business_date=pl.lit(tonight.day), run_id=pl.lit(tonight.run_id)
        ),
    )
    repo.add_batches(batches.new, tonight.day)
    return batches


def record_placements(tonight: Tonight, changes: ManifestChanges) -> int:
    """The placements recorded by SQL, and where the lines released by manifest changes went;
    returns the lines replaced."""
    tick, cpu = time.perf_counter(), time.process_time()
    replaced = changes.record_destinations(tonight.uow.repo, tonight.day, tonight.run_id)
    tonight.uow.repo.record_placements(tonight.day, tonight.run_id)
    log.info(
        "Recorded the night's placements in %.2fs (%.2f CPU-s)",
        time.perf_counter() - tick,
        time.process_time() - cpu,
    )
    return replaced


def record_rejections(tonight: Tonight, rejected_batches: pl.DataFrame) -> None:
    """The rejections by SQL from the staging file, in the order they were found: the load's,
    the manifests', the orders'."""
    staged, run_id, day = tonight.staged, tonight.run_id, tonight.day
    log_rejected_rows(itertools.chain(staged.rejection_chunks(), [rejected_batches]))
    staged.add_load_rejections(run_id, day)
    tonight.uow.repo.add_rows(
        "rejected_rows",
        rejected_batches.with_columns(run_id=pl.lit(run_id), business_date=pl.lit(day)),
    )
    staged.add_order_rejections(run_id, day)
    tonight.uow.repo.code_rejections(run_id)


def record_files(tonight: Tonight) -> None:
    tonight.uow.repo.add_rows(
        "ingested_files",
        tonight.inbox.files.with_columns(
            run_id=pl.lit(tonight.run_id), business_date=pl.lit(tonight.day)
        ),
    )


def count_night(
    tonight: Tonight,
    order_duplicates: int,
    batches: Classified,
    changes: ManifestChanges,
    placed: tuple[int, int, int],
) -> dict[str, int]:
    """The night's counts (`runs` columns and `INBOX_COUNTS`), the rejected rows logged first.
    `placed`: the lines allocated, the lines open, the lines replaced."""
    allocated, open_lines, replaced = placed
    rejected_rows = tonight.staged.rejected_row_counts()
    rejected_rows["batches"] = rejected_rows.get("batches", 0) + int(
        batches.rejected["line"].is_not_null().sum()
    )
    counts = _counts(
        tonight.inbox, order_duplicates, batches.duplicates, rejected_rows, changes.counts
    )
    log_rejected_total(counts)
    counts.update(
        allocated=allocated,
        out_of_stock=open_lines - allocated,
        lines_replaced=replaced,
    )
    return counts


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
    inbox: ValidatedInbox,
    order_duplicates: int,
    batch_duplicates: int,
    rejected_rows: dict[str, int],
    changes: dict[str, int],
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, duplicates in (("orders", order_duplicates), ("batches", batch_duplicates)):
        rejected = rejected_rows.get(kind, 0)
        counts[f"{kind}_received"] = inbox.received[kind]
        counts[f"{kind}_duplicate"] = duplicates
        counts[f"{kind}_rejected"] = rejected
        counts[f"{kind}_accepted"] = inbox.received[kind] - duplicates - rejected
    counts.update(changes)
    # Received: read, or rejected unread (as before entries in the wrong place were reported);
    # the entries ignored or waiting are in `INBOX_COUNTS`.
    counts["files_received"] = inbox.files.filter(
        pl.col("status").is_in(["loaded", "rejected"])
    ).height
    counts["files_rejected"] = inbox.files.filter(pl.col("status") == "rejected").height
    counts["files_skipped"] = len(inbox.skipped)
    counts.update(inbox.inbox_counts)
    return counts


def record_run(tonight: Tonight, started_at: dt.datetime, counts: dict[str, int | None]) -> None:
    """The night's `runs` row: its counts, when it ran, the files it read and rejected."""
    files = tonight.inbox.files
    row = {
        "run_id": tonight.run_id,
        "business_date": tonight.day,
        "started_at": started_at.replace(tzinfo=None),
        "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        "status": "completed",
        **{name: count for name, count in counts.items() if name not in INBOX_COUNTS},
        "input_files": files.filter(pl.col("status").is_in(["loaded", "rejected"]))[
            "file_name"
        ].to_list(),
        "rejected_files": files.filter(pl.col("status") == "rejected")["file_name"].to_list(),
    }
    tonight.uow.repo.add_rows("runs", pl.DataFrame([row]))
