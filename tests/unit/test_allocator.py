"""The night's allocation over frames: the domain rule for every line, same answer in parallel."""

from __future__ import annotations

import datetime as dt

import polars as pl

from allocation.allocator import allocate_lines

BATCH_SCHEMA = {
    "reference": pl.String,
    "sku": pl.String,
    "eta": pl.Date,
    "purchased": pl.Int64,
    "allocated": pl.Int64,
}
LINE_SCHEMA = {"orderid": pl.String, "sku": pl.String, "qty": pl.Int64, "arrival_seq": pl.Int64}


def test_previous_allocations_count_against_a_batch() -> None:
    batches = pl.DataFrame(
        [("b1", "RETRO-CLOCK", None, 10, 8), ("b2", "RETRO-CLOCK", dt.date(2026, 12, 1), 10, 0)],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    lines = pl.DataFrame(
        [("o1", "RETRO-CLOCK", 3, 1), ("o2", "RETRO-CLOCK", 2, 2)], schema=LINE_SCHEMA, orient="row"
    )
    placed = allocate_lines(lines, batches)
    assert placed.select("orderid", "batchref", "eta").rows() == [
        ("o1", "b2", dt.date(2026, 12, 1)),
        ("o2", "b1", None),
    ]
