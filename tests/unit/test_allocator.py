"""The night's allocation over frames: the domain rule for every line, same answer in parallel."""

from __future__ import annotations

import datetime as dt
import random

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


def test_parallel_allocation_gives_identical_results() -> None:
    rng = random.Random(7)
    skus = [f"SKU-{i}" for i in range(300)]
    batches = pl.DataFrame(
        [
            (f"b{i}-{j}", sku, None if j == 0 else dt.date(2026, 12, 1 + j), rng.randint(0, 40), 0)
            for i, sku in enumerate(skus)
            for j in range(rng.randint(1, 4))
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    lines = pl.DataFrame(
        [(f"o{n}", rng.choice(skus), rng.randint(1, 9), n) for n in range(60_000)],
        schema=LINE_SCHEMA,
        orient="row",
    )
    one = allocate_lines(lines, batches, workers=1)
    two = allocate_lines(lines, batches, workers=2)
    assert one.equals(two)
    assert 0 < one["batchref"].null_count() < one.height
