"""The domain `allocate` applied to every open line of the night, one sku at a time.

Skus never share a batch, so each sku is an independent unit: its batches are built and sorted
once, its lines are tried in arrival order, then it is dropped (memory stays flat however many
skus there are). Shards of skus can run in separate processes; the result is the same.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import polars as pl

from allocation.domain import Batch, OrderLine, OutOfStockError, allocate

BatchRow = tuple[str, dt.date | None, int, int]  # reference, eta, purchased, allocated


def allocate_shard(lines: pl.DataFrame, batches: pl.DataFrame) -> pl.DataFrame:
    """`lines` (orderid, sku, qty, arrival_seq) sorted by sku then arrival order; `batches`
    (reference, sku, eta, purchased, allocated). Returns orderid, sku, batchref (null when out of
    stock) for every line, in the same order."""
    by_sku: dict[str, list[BatchRow]] = {}
    for reference, sku, eta, purchased, allocated in batches.select(
        "reference", "sku", "eta", "purchased", "allocated"
    ).iter_rows():
        by_sku.setdefault(sku, []).append((reference, eta, purchased, allocated))
    placed: list[str | None] = []
    current_sku: str | None = None
    current: list[Batch] = []
    for orderid, sku, qty in zip(
        lines["orderid"].to_list(), lines["sku"].to_list(), lines["qty"].to_list(), strict=True
    ):
        if sku != current_sku:
            current_sku = sku
            current = sorted(
                Batch(ref, sku, purchased, eta, previously_allocated=allocated)
                for ref, eta, purchased, allocated in by_sku.get(sku, ())
            )
        if not current:
            placed.append(None)
            continue
        try:
            placed.append(allocate(OrderLine(orderid, sku, qty), current))
        except OutOfStockError:
            placed.append(None)
    return lines.select("orderid", "sku").with_columns(batchref=pl.Series(placed, dtype=pl.String))


def _shards(lines: pl.DataFrame, count: int) -> list[pl.DataFrame]:
    shard = pl.col("sku").hash(seed=0) % count
    return [
        part.drop("_shard")
        for part in lines.with_columns(_shard=shard).partition_by("_shard", maintain_order=True)
    ]


def allocate_lines(lines: pl.DataFrame, batches: pl.DataFrame, workers: int = 1) -> pl.DataFrame:
    """Places every line it can; returns `lines` with `batchref` (null = out of stock) and the
    batch's `eta`, in arrival order. `workers` > 1 spreads sku shards over processes."""
    ordered = lines.sort("sku", "arrival_seq")
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or ordered.height < 50_000:
        results = [allocate_shard(ordered, batches)]
    else:
        parts = _shards(ordered, workers)
        batch_parts = [
            batches.join(part.select("sku").unique(), on="sku", how="semi") for part in parts
        ]
        # spawn, not fork: forking a process that runs polars' and Prefect's threads can hang.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            results = list(pool.map(allocate_shard, parts, batch_parts))
    placed = pl.concat(results) if results else ordered.select("orderid", "sku").clear()
    return (
        lines.join(placed, on=["orderid", "sku"], how="left", maintain_order="left")
        .join(
            batches.select(pl.col("reference").alias("batchref"), "eta"),
            on="batchref",
            how="left",
            maintain_order="left",
        )
        .sort("arrival_seq")
    )


def released_lines_frame(rows: Sequence[tuple[str, str, int, str, str]]) -> pl.DataFrame:
    """orderid, sku, qty, from_batchref, reason for lines a manifest change gave back."""
    return pl.DataFrame(
        rows,
        schema={
            "orderid": pl.String,
            "sku": pl.String,
            "qty": pl.Int64,
            "from_batchref": pl.String,
            "reason": pl.String,
        },
        orient="row",
    )
