"""The domain `allocate` applied to every open line of the night, one sku at a time.

Skus never share a batch, so each sku is an independent unit: its batches are built and sorted
once, its lines are tried in arrival order, then it is dropped (memory stays flat however many
skus there are). Shards of skus can run in separate processes; the result is the same.

What keeps the per-line cost down (the domain `allocate` stays the rule for every line):

* lines and batches travel as plain columns; a sku's `Batch` objects are built once, sorted once;
* a batch with nothing left is dropped from the sku's list: `allocate` would skip it for any
  line anyway (every line has qty >= 1 and none is already held), so it only cost time;
* the result is an integer per line (the batch's row in `batches`, -1 when out of stock) and
  the reference and eta are gathered by position, not joined on strings;
* the cyclic garbage collector is paused in the loop: it holds only `OrderLine`/`Batch` objects
  without cycles, which reference counting frees.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed

import polars as pl

from allocation.domain import Batch, OrderLine, OutOfStockError, allocate

log = logging.getLogger("allocation")

_ROW = "__row"
_BATCH = "__batch"
# Below this many lines a second process costs more than it saves: a spawned worker imports
# polars and the parent's main module again (about 1 s for the `allocation` command on 2 cores,
# measured: 100k lines took 0.3 s in one process, 2.9 s with two workers).
PARALLEL_MIN_LINES = 500_000
_PROGRESS_SECONDS = 10.0
_SLICE_ROWS = 100_000


def allocate_shard(
    lines: pl.DataFrame, batches: pl.DataFrame, drop_full: bool = True
) -> pl.DataFrame:
    """`lines` (orderid, sku, qty, and a `__row` id), each sku's lines together in arrival order;
    `batches` (reference, sku, eta, purchased, allocated, and a `__batch` id). Returns `__row`
    and `__batch` (the id of the batch the line went to, -1 when out of stock) per line, in the
    same order. `drop_full`: no line appears twice, so a full batch can leave the sku's list
    (a repeated line must still find the batch that holds it)."""
    by_sku: dict[str, list[tuple[str, dt.date | None, int, int, int]]] = {}
    for reference, sku, eta, purchased, allocated, batch_id in batches.select(
        "reference", "sku", "eta", "purchased", "allocated", _BATCH
    ).iter_rows():
        by_sku.setdefault(sku, []).append((reference, eta, purchased, allocated, batch_id))

    # Slices of lines become Python objects one at a time: memory stays flat on big shards.
    results: list[pl.Series] = []
    done = 0
    current_sku: str | None = None
    current: list[Batch] = []
    by_ref: dict[str, tuple[Batch, int]] = {}  # the current sku's batches and their ids
    started = last = time.perf_counter()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in lines.select("orderid", "sku", "qty").iter_slices(_SLICE_ROWS):
            placed: list[int] = []
            append = placed.append
            for orderid, sku, qty in zip(
                chunk["orderid"].to_list(),
                chunk["sku"].to_list(),
                chunk["qty"].to_list(),
                strict=True,
            ):
                if sku != current_sku:
                    current_sku = sku
                    by_ref = {
                        ref: (Batch(ref, sku, purchased, eta, previously_allocated=allocated), bid)
                        for ref, eta, purchased, allocated, bid in by_sku.get(sku, ())
                    }
                    current = sorted(batch for batch, _ in by_ref.values())
                    if drop_full:
                        current = [batch for batch in current if batch.available_quantity > 0]
                try:
                    reference = allocate(OrderLine(orderid, sku, qty), current)
                except OutOfStockError:
                    append(-1)
                    continue
                batch, batch_id = by_ref[reference]
                append(batch_id)
                if drop_full and batch.available_quantity == 0:
                    current.remove(batch)
            results.append(pl.Series(_BATCH, placed, dtype=pl.Int64))
            done += chunk.height
            if time.perf_counter() - last > _PROGRESS_SECONDS:
                last = time.perf_counter()
                log.info(
                    "Allocating: %s of %s lines done (%s lines/s)",
                    f"{done:,}",
                    f"{lines.height:,}",
                    f"{done / (last - started):,.0f}",
                )
    finally:
        if was_enabled:
            gc.enable()
    placed_ids = pl.concat(results) if results else pl.Series(_BATCH, [], dtype=pl.Int64)
    return pl.DataFrame({_ROW: lines[_ROW], _BATCH: placed_ids})


def shard_by_sku(lines: pl.DataFrame, count: int) -> list[pl.DataFrame]:
    """Splits lines into at most `count` shards by a stable hash of the sku: skus never share a
    batch, so each shard can be allocated on its own (in a process, or on a Dask worker)."""
    shard = pl.col("sku").hash(seed=0) % count
    return [
        part.drop("_shard")
        for part in lines.with_columns(_shard=shard).partition_by("_shard", maintain_order=True)
    ]


def shards_with_batches(
    lines: pl.DataFrame, batches: pl.DataFrame, count: int
) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """`shard_by_sku`, each shard paired with the batches of its skus: what one worker needs."""
    return [
        (part, batches.join(part.select("sku").unique(), on="sku", how="semi"))
        for part in shard_by_sku(lines, count)
    ]


def allocate_lines(lines: pl.DataFrame, batches: pl.DataFrame, workers: int = 1) -> pl.DataFrame:
    """Places every line it can; returns `lines` with `batchref` (null = out of stock) and the
    batch's `eta`, in arrival order. `workers` > 1 spreads sku shards over processes
    (0 = one per CPU core)."""
    workers = workers or os.cpu_count() or 1
    numbered = batches.select(
        "reference", "sku", "eta", "purchased", "allocated", pl.int_range(pl.len()).alias(_BATCH)
    )
    # Each sku's lines together, in arrival order (grouping is much cheaper than sorting by sku).
    ordered = (
        lines.select("orderid", "sku", "qty", "arrival_seq", pl.int_range(pl.len()).alias(_ROW))
        .sort("arrival_seq", maintain_order=True)
        .group_by("sku")
        .agg("orderid", "qty", _ROW)
        .explode("orderid", "qty", _ROW)
    )
    drop_full = ordered.select(pl.struct("orderid", "sku", "qty").is_unique().all()).item()
    if workers <= 1 or ordered.height < PARALLEL_MIN_LINES:
        results = [allocate_shard(ordered, numbered, drop_full)]
    else:
        pairs = shards_with_batches(ordered, numbered, workers)
        parts = [part for part, _ in pairs]
        # spawn, not fork: forking a process that runs polars' and Prefect's threads can hang.
        spawn = multiprocessing.get_context("spawn")
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            futures = {
                pool.submit(allocate_shard, part, batch_part, drop_full): index
                for index, (part, batch_part) in enumerate(pairs)
            }
            done: dict[int, pl.DataFrame] = {}
            for future in as_completed(futures):
                index = futures[future]
                done[index] = future.result()
                seconds = time.perf_counter() - started
                log.info(  # progress: the workers' own log lines stay in their processes
                    "Allocated shard %d of %d: %s lines in %.1fs (%s lines/s)",
                    len(done),
                    len(parts),
                    f"{parts[index].height:,}",
                    seconds,
                    f"{parts[index].height / seconds if seconds > 0 else 0:,.0f}",
                )
            results = [done[index] for index in range(len(parts))]
    batch_of_row = (
        pl.concat(results).sort(_ROW)[_BATCH] if results else pl.Series(_BATCH, [], dtype=pl.Int64)
    )
    found = batch_of_row.to_frame().select(
        pl.when(pl.col(_BATCH) >= 0).then(pl.col(_BATCH)).alias(_BATCH)
    )[_BATCH]
    return lines.with_columns(
        batchref=batches["reference"].gather(found),
        eta=batches["eta"].gather(found),
    ).sort("arrival_seq", maintain_order=True)


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
