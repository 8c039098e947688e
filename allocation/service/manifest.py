"""Manifest updates (the book's chapter 9): a known batch gets a new eta or quantity.

The domain decides which lines a shrinking batch gives back (newest arrival first); those lines
become open again, keep their place in the arrival order, and are allocated with every other open
line the same night. Here we only feed the changes to the domain and record what it did, through
the repository the service layer speaks to (`allocation.service.storage.Repository`): DuckDB's in
a night, a plain-Python one in the unit tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from allocation.domain import Batch
from allocation.service.storage import Repository

CHANGE_SCHEMA = {
    "reference": pl.String,
    "sku": pl.String,
    "change": pl.String,
    "old_qty": pl.Int64,
    "new_qty": pl.Int64,
    "old_eta": pl.Date,
    "new_eta": pl.Date,
    "business_date": pl.Date,
    "run_id": pl.String,
    "source_file": pl.String,
    "source_line": pl.Int64,
}


@dataclass
class ManifestChanges:
    counts: dict[str, int]
    released: pl.DataFrame = field(default_factory=lambda: released_lines_frame([]))

    def record_destinations(self, repo: Repository, day: dt.date, run_id: str) -> int:
        """Writes a `reallocations` row per released line, with where it went tonight (or
        nowhere: out of stock), from the night's placements: call it after the allocation and
        before the placements are recorded. Returns how many were re-placed."""
        if not self.released.height:
            return 0
        moved = repo.destinations(self.released).with_columns(
            business_date=pl.lit(day), run_id=pl.lit(run_id)
        )
        repo.record_reallocations(moved)
        return int(moved["to_batchref"].is_not_null().sum())


def _change_kind(old_qty: int, new_qty: int) -> str:
    if new_qty == 0:
        return "cancelled"
    return "qty_up" if new_qty > old_qty else "qty_down"


def apply_manifest_updates(
    repo: Repository, updates: pl.DataFrame, day: dt.date, run_id: str
) -> ManifestChanges:
    """Feeds tonight's changes to known batches (`updates`: reference, qty, eta, source_file,
    line; in the order received) to the domain, and saves the batches, the change log and the
    lines they gave back. Returns the counts and the released lines."""
    counts = {
        "batches_updated": 0,
        "eta_changes": 0,
        "qty_increases": 0,
        "qty_decreases": 0,
        "cancellations": 0,
        "lines_released": 0,
    }
    if not updates.height:
        return ManifestChanges(counts)
    batches: dict[str, Batch] = repo.batches_with_lines(updates["reference"].unique().to_list())
    changes: list[dict[str, object]] = []
    released: list[tuple[str, str, int, str, str, str, str, int]] = []
    for row in updates.iter_rows(named=True):  # manifest changes are few; order matters
        batch = batches[row["reference"]]
        base = {
            "reference": batch.reference,
            "sku": batch.sku,
            "old_qty": batch.purchased_quantity,
            "new_qty": row["qty"],
            "old_eta": batch.eta,
            "new_eta": row["eta"],
            "business_date": day,
            "run_id": run_id,
            "source_file": row["source_file"],
            "source_line": row["line"],
        }
        counts["batches_updated"] += 1
        if row["eta"] != batch.eta:
            batch.change_eta(row["eta"])
            changes.append({**base, "change": "eta"})
            counts["eta_changes"] += 1
        if row["qty"] != batch.purchased_quantity:
            kind = _change_kind(batch.purchased_quantity, row["qty"])
            changes.append({**base, "change": kind})
            counts[
                {"qty_up": "qty_increases", "qty_down": "qty_decreases"}.get(kind, "cancellations")
            ] += 1
            reason = (
                f"batch {batch.reference} cancelled"
                if kind == "cancelled"
                else f"batch {batch.reference} quantity reduced from {batch.purchased_quantity} "
                f"to {row['qty']}"
            )
            for line in batch.change_purchased_quantity(row["qty"]):
                released.append(
                    (
                        line.orderid,
                        line.sku,
                        line.qty,
                        batch.reference,
                        reason,
                        kind,
                        row["source_file"],
                        row["line"],
                    )
                )
    counts["lines_released"] = len(released)
    repo.save_batch_changes(
        list(batches.values()),
        pl.DataFrame(changes, schema=CHANGE_SCHEMA),
        released_lines_frame(released),
        day,
    )
    return ManifestChanges(counts, released_lines_frame(released))


def released_lines_frame(
    rows: Sequence[tuple[str, str, int, str, str, str, str, int]],
) -> pl.DataFrame:
    """Lines a manifest change gave back: orderid, sku, qty, from_batchref, the change's reason
    in words and its code (``qty_down``/``cancelled``), and the manifest row that made it."""
    return pl.DataFrame(
        rows,
        schema={
            "orderid": pl.String,
            "sku": pl.String,
            "qty": pl.Int64,
            "from_batchref": pl.String,
            "reason": pl.String,
            "reason_code": pl.String,
            "change_source_file": pl.String,
            "change_source_line": pl.Int64,
        },
        orient="row",
    )
