"""The night's allocation over frames: the domain rule for every line, and the same answer when
sku shards run in worker processes (forced below the size where `allocate_lines` would go
parallel on its own)."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from allocation import allocator
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


def _night(seed: int, lines: int, repeat_lines: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = random.Random(seed)
    skus = [f"SKU-{i}" for i in range(50)]
    batches = pl.DataFrame(
        [
            (f"b{i}-{j}", sku, None if j == 0 else dt.date(2026, 12, 1 + j), rng.randint(0, 30), 0)
            for i, sku in enumerate(skus)
            for j in range(rng.randint(1, 4))
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    rows = [(f"o{n}", rng.choice(skus), rng.randint(1, 9), n) for n in range(lines)]
    if repeat_lines:  # the same line twice: the domain places it once, on the same batch
        rows += [(orderid, sku, qty, seq + lines) for orderid, sku, qty, seq in rows[::7]]
    shuffled = rng.sample(rows, len(rows))  # arrival order is arrival_seq, not row order
    return pl.DataFrame(shuffled, schema=LINE_SCHEMA, orient="row"), batches


@pytest.mark.parametrize("repeat_lines", [False, True])
def test_shards_in_worker_processes_match_one_process(
    monkeypatch: pytest.MonkeyPatch, repeat_lines: bool
) -> None:
    lines, batches = _night(11, 3_000, repeat_lines)
    one = allocate_lines(lines, batches, workers=1)
    monkeypatch.setattr(allocator, "PARALLEL_MIN_LINES", 0)
    two = allocate_lines(lines, batches, workers=2)
    assert one.equals(two)
    assert one["arrival_seq"].is_sorted()
    assert 0 < one["batchref"].null_count() < one.height


def test_each_line_gets_the_domain_answer_in_arrival_order() -> None:
    """Against the domain itself, line by line in arrival order: the first in-stock batch with
    room, else the earliest arrival with room; full batches are skipped."""
    from allocation.domain import Batch, OrderLine, OutOfStockError, allocate

    lines, batches = _night(5, 2_000, repeat_lines=False)
    placed = allocate_lines(lines, batches)
    stock = {
        sku: [Batch(r, s, q, e) for r, s, e, q, _ in group.rows()]
        for (sku,), group in batches.group_by("sku")
    }
    expected = []
    for orderid, sku, qty, _ in lines.sort("arrival_seq").rows():
        try:
            expected.append(allocate(OrderLine(orderid, sku, qty), stock.get(sku, [])))
        except OutOfStockError:
            expected.append(None)
    assert placed["batchref"].to_list() == expected
