"""The domain `allocate` applied to every open line of the night, one sku at a time.

Skus never share a batch, so each sku is an independent unit: its lines are gathered in arrival
order beside its batches (one row per sku), a domain `Product` is built over those batches,
every line goes through `Product.allocate`, then the product is dropped (memory stays flat
however many skus there are). Shards of skus can go to other processes; the result is the same.

What keeps the per-line cost down (the domain's rule still decides every line):

* one polars `group_by` and join put each sku's lines and batches in one row: Python sees a
  sku once, then the lists of its lines' order ids and quantities;
* the product sorts its batches once, finds a line it already holds in one dict look-up, and
  leaves full batches out of its search;
* the result is an integer per line (the batch's row in `batches`, -1 when out of stock) and
  the reference and eta are gathered by position, not joined on strings;
* the cyclic garbage collector is paused in the loop: it holds only `OrderLine`/`Batch` objects
  without cycles, which reference counting frees.

In parallel, the helper processes are spawned first, so their start-up (imports, about 1 s)
overlaps the sharding here; this process allocates too, from the smallest shards up, while the
helpers take the biggest ones as soon as they are up.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import pairwise

import polars as pl

from allocation.domain import Batch, OrderLine, OutOfStockError, Product

log = logging.getLogger("allocation")

_ROW = "__row"
_BATCH = "__batch"
_BATCH_COLUMNS = ("reference", "eta", "purchased", "allocated", _BATCH)
# Below this many lines a second process costs more than it saves: a spawned helper imports
# polars and the parent's main module again (about 1 s for the `allocation` command on 2 cores;
# measured with a busy machine: 100k lines took 0.2 s in one process, 0.45 s with a helper;
# 500k lines about 0.6 s either way).
PARALLEL_MIN_LINES = 500_000
_PROGRESS_SECONDS = 10.0
_RUN_LINES = 100_000  # lines turned into Python objects at once: memory stays flat
# Shards per allocating process: enough that the processes finish close together, few enough
# that grouping each one stays cheap.
_SHARDS_PER_WORKER = 12


def _per_sku(lines: pl.DataFrame, batches: pl.DataFrame) -> pl.DataFrame:
    """One row per sku, in order of first appearance: `orderid`, `qty`, `__row` lists of its
    lines in their order in `lines`, and its batches' `reference`, `eta`, `purchased`,
    `allocated`, `__batch` lists (null when it has none)."""
    return (
        lines.group_by("sku", maintain_order=True)
        .agg("orderid", "qty", _ROW)
        .join(
            batches.group_by("sku").agg(*_BATCH_COLUMNS),
            on="sku",
            how="left",
            maintain_order="left",
        )
    )


def _runs(per_sku: pl.DataFrame, lines_per_run: int) -> list[pl.DataFrame]:
    """Consecutive slices of `per_sku` of about `lines_per_run` lines each (a sku is never
    split)."""
    ends = per_sku["orderid"].list.len().cum_sum()
    if ends.is_empty():
        return []
    cuts = ends.search_sorted(
        pl.Series(range(lines_per_run, int(ends[-1]), lines_per_run)), side="left"
    ).to_list()
    bounds = sorted({0, *(cut + 1 for cut in cuts), per_sku.height})
    return [per_sku.slice(start, end - start) for start, end in pairwise(bounds)]


def _allocate_run(per_sku: pl.DataFrame) -> pl.Series:
    """The batch id (-1 when out of stock) of every line of a `_per_sku` run, sku by sku."""
    placed: list[int] = []
    append = placed.append
    columns = [per_sku[name].to_list() for name in ("sku", "orderid", "qty", *_BATCH_COLUMNS)]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for sku, orderids, qtys, references, etas, purchased, allocated, ids in zip(
            *columns, strict=True
        ):
            if references is None:  # no batches at all: every line is still the domain's call
                references = etas = purchased = allocated = ids = []
            product = Product(
                sku,
                [
                    Batch(reference, sku, qty, eta, previously_allocated=already)
                    for reference, eta, qty, already in zip(
                        references, etas, purchased, allocated, strict=True
                    )
                ],
            )
            allocate = product.allocate
            id_of = dict(zip(references, ids, strict=True))
            for orderid, qty in zip(orderids, qtys, strict=True):
                try:
                    append(id_of[allocate(OrderLine(orderid, sku, qty))])
                except OutOfStockError:
                    append(-1)
    finally:
        if was_enabled:
            gc.enable()
    return pl.Series(_BATCH, placed, dtype=pl.Int64)


def _no_progress(done: int, total: int) -> None:
    """Nobody is watching."""


class _Progress:
    """A progress line at most every `_PROGRESS_SECONDS`, for nights that take a while, and
    `report(lines done, lines in all)` after every run of lines or shard (the caller decides
    how often to pass it on: never per line, at most once per `_RUN_LINES` lines)."""

    def __init__(self, total: int, report: Callable[[int, int], None] = _no_progress) -> None:
        self.total = total
        self.done = 0
        self.report = report
        self.started = self.last = time.perf_counter()

    def add(self, lines: int) -> None:
        self.done += lines
        self.report(self.done, self.total)
        if time.perf_counter() - self.last > _PROGRESS_SECONDS:
            self.last = time.perf_counter()
            log.info(
                "Allocating: %s of %s lines done (%s lines/s)",
                f"{self.done:,}",
                f"{self.total:,}",
                f"{self.done / (self.last - self.started):,.0f}",
            )


def allocate_shard(
    lines: pl.DataFrame,
    batches: pl.DataFrame,
    progress: Callable[[int, int], None] = _no_progress,
) -> pl.DataFrame:
    """`lines` (orderid, sku, qty, and a `__row` id), each sku's lines together in arrival order;
    `batches` (reference, sku, eta, purchased, allocated, and a `__batch` id). Returns `__row`
    and `__batch` (the id of the batch the line went to, -1 when out of stock) per line, in the
    same order.
    `progress(lines done, lines)` after each run of `_RUN_LINES` lines."""
    per_sku = _per_sku(lines, batches)
    done = _Progress(lines.height, progress)
    placed = []
    for run in _runs(per_sku, _RUN_LINES):
        placed.append(_allocate_run(run))
        done.add(len(placed[-1]))
    return pl.DataFrame(
        {
            _ROW: per_sku[_ROW].explode(),
            _BATCH: pl.concat(placed) if placed else pl.Series(_BATCH, [], dtype=pl.Int64),
        }
    )


def _warm_up() -> None:
    """Submitted first, so a helper starts (and imports this module) before there is work."""


class _Helpers:
    """`count` spawned processes that allocate sku shards beside this one."""

    def __init__(self, count: int) -> None:
        # spawn, not fork: forking a process that runs polars' and Prefect's threads can hang.
        spawn = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(max_workers=count, mp_context=spawn)
        # Started now, so their imports (about 1 s) overlap this process's own preparation.
        self._started = [self._pool.submit(_warm_up) for _ in range(count)]

    def __enter__(self) -> _Helpers:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(cancel_futures=True)

    def share(
        self,
        shards: list[pl.DataFrame],
        batches: pl.DataFrame,
        report: Callable[[int, int], None] = _no_progress,
    ) -> list[pl.DataFrame]:
        """`allocate_shard` of every shard of lines with its skus' batches, results in order.
        Helpers that are up get the biggest shards (two each at a time), this process takes the
        smallest, until none is left: nobody waits for a helper still starting, and the last
        shards are small ones."""
        queue = deque(sorted(range(len(shards)), key=lambda index: -shards[index].height))
        results: dict[int, pl.DataFrame] = {}
        running: dict[Future[pl.DataFrame], int] = {}
        progress = _Progress(sum(shard.height for shard in shards), report)
        here = 0
        while queue:
            for future in [future for future in running if future.done()]:
                index = running.pop(future)
                results[index] = future.result()
                progress.add(shards[index].height)
            ready = sum(started.done() for started in self._started)
            while queue and len(running) < 2 * ready:
                index = queue.popleft()
                work = (shards[index], _batches_of(shards[index], batches))
                running[self._pool.submit(allocate_shard, *work)] = index
            if queue:
                index = queue.pop()
                results[index] = allocate_shard(shards[index], _batches_of(shards[index], batches))
                progress.add(shards[index].height)
                here += shards[index].height
        for future, index in running.items():
            results[index] = future.result()
            progress.add(shards[index].height)
        log.info(
            "Allocated %s lines in %d sku shards: %s in this process, the rest in %d helper(s)",
            f"{progress.total:,}",
            len(shards),
            f"{here:,}",
            len(self._started),
        )
        return [results[index] for index in range(len(shards))]


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
    return [(part, _batches_of(part, batches)) for part in shard_by_sku(lines, count)]


def _batches_of(lines: pl.DataFrame, batches: pl.DataFrame) -> pl.DataFrame:
    return batches.join(lines.select("sku").unique(), on="sku", how="semi")


def allocate_lines(
    lines: pl.DataFrame,
    batches: pl.DataFrame,
    workers: int = 1,
    progress: Callable[[int, int], None] = _no_progress,
) -> pl.DataFrame:
    """Places every line it can; returns `lines` with `batchref` (null = out of stock) and the
    batch's `eta`, in arrival order. `workers` > 1 spreads sku shards over that many processes,
    this one included (0 = one per CPU core). `progress(lines done, lines)` is called in this
    process after every run of lines or shard done."""
    workers = workers or os.cpu_count() or 1
    parallel = workers > 1 and lines.height >= PARALLEL_MIN_LINES
    with _Helpers(workers - 1) if parallel else contextlib.nullcontext() as helpers:
        if not lines["arrival_seq"].is_sorted():
            lines = lines.sort("arrival_seq", maintain_order=True)
        numbered_lines = lines.select("orderid", "sku", "qty", pl.int_range(pl.len()).alias(_ROW))
        numbered = batches.select("sku", *_BATCH_COLUMNS[:-1], pl.int_range(pl.len()).alias(_BATCH))
        if helpers is None:
            placed = [allocate_shard(numbered_lines, numbered, progress=progress)]
        else:
            # Each shard's batches are picked when it is handed out: work starts sooner.
            shards = shard_by_sku(numbered_lines, workers * _SHARDS_PER_WORKER)
            placed = helpers.share(shards, numbered, progress)
    # Each line's batch id back at the line's row (cheaper than sorting by row), -1 to null.
    batch_of_row = pl.repeat(-1, lines.height, dtype=pl.Int64, eager=True).alias(_BATCH)
    for result in placed:
        batch_of_row.scatter(result[_ROW], result[_BATCH])
    found = batch_of_row.to_frame().select(
        pl.when(pl.col(_BATCH) >= 0).then(pl.col(_BATCH)).alias(_BATCH)
    )[_BATCH]
    return lines.with_columns(
        batchref=batches["reference"].gather(found), eta=batches["eta"].gather(found)
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
