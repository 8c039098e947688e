"""The domain `allocate` applied to every open line of the night, a slice of skus at a time.

The default (`allocate_columns`, the local runner): the night comes out of DuckDB as ONE query
ordered by sku then arrival, integers only (sku rank, quantity, arrival number), cut into slices
of whole skus of about `SLICE_LINES` lines; each sku's quantities go to its domain `Product` as
a column, and each slice's placements go to a file until the night is recorded. Python holds one
slice and the catalogue of the night's skus, whatever the night's size.

The chunked path below (`allocate_candidates`: helper processes, or the Dask runner's shards)
is the one the Dask runner streams from:

Skus never share a batch, so each sku is an independent unit. The night's `Candidates` (in
production streamed out of DuckDB, `allocation.io.candidates`) come in chunks of skus of about
`CHUNK_LINES` lines, biggest first, each sku's lines in arrival order. In a chunk, each sku's
lines are gathered beside its batches, a domain `Product` is built over them, every line goes
through `Product.allocate`. A chunk's placements go back to the candidates, which keep them out
of Python: memory holds the chunks in flight, not the night.

What keeps the per-line cost down (the domain's rule still decides every line):

* one polars `group_by` and join put each sku's lines and batches in one row: Python sees a
  sku once, then the lists of its lines' order ids and quantities;
* the product sorts its batches once, finds a line it already holds in one dict look-up, and
  leaves full batches out of its search;
* the result is an integer per line (the batch's id, -1 when out of stock);
* the cyclic garbage collector is paused in the loop: it holds only `OrderLine`/`Batch` objects
  without cycles, which reference counting frees.

A chunk holding a sku of more than `chunk_lines` lines (a hot sku) comes in pieces of at most
`chunk_lines` lines, allocated in order in this process, each batch's state carried from piece
to piece (`carry`): no `Product` holds more than a piece's lines.

In parallel, helpers are spawned first (their imports overlap the first chunks); each holds two
whole chunks at a time, biggest first, handed out before the first piece and topped up between
the pieces of the hot skus, and this process allocates the next whole chunk whenever they are
busy. A whole chunk travels as a plan (`pl.LazyFrame`, in production a scan of the chunk's
spooled file): the helper reads and orders its own lines, so this process neither reads nor
pickles them.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, as_completed
from contextlib import AbstractContextManager
from itertools import pairwise
from typing import Any, Protocol

import polars as pl

from allocation.domain import Batch, Product
from allocation.io.helper_pool import helper_pool

log = logging.getLogger("allocation")

_ROW = "__row"
BATCH_ID = "__batch"
_BATCH_COLUMNS = ("reference", "eta", "purchased", "allocated", BATCH_ID)
# Below this many lines a second process costs more than it saves: a spawned helper starts an
# interpreter and imports polars (0.25-0.4 s on 2 cores, `allocation.io.helper_pool`). Measured
# when a helper still re-ran the `allocation` command's imports (1 s), on a busy machine: 100k
# lines took 0.2 s in one process, 0.45 s with a helper; 500k lines about 0.6 s either way.
PARALLEL_MIN_LINES = 500_000
_PROGRESS_SECONDS = 10.0
_RUN_LINES = 100_000  # lines turned into Python objects at once: memory stays flat
#: Lines per chunk of skus handed out at a time (a sku bigger than this is a chunk alone): small
#: enough that the chunks in flight weigh little beside the process (~4 MB each as frames; a
#: hot sku's piece, all in one `Product`, is the most Python holds), big enough that the
#: per-chunk costs (a DuckDB batch, a trip to a helper) stay small. 100k against 250k: the 10M
#: Zipf night's tree peaked 263 MiB lower (1,361 against 1,624 MiB, run and helper both).
CHUNK_LINES = 100_000
# Chunks each helper holds at a time: one it works on, one waiting, so it never waits for this
# process (which reads the chunks and allocates too) to hand it the next.
_IN_FLIGHT = 2


def _per_sku(lines: pl.DataFrame, batches: pl.DataFrame) -> pl.DataFrame:
    """One row per sku, in order of first appearance: `qty` and `__row` lists of its
    lines in their order in `lines`, and its batches' `reference`, `eta`, `purchased`,
    `allocated`, `__batch` lists (null when it has none)."""
    return (
        lines.group_by("sku", maintain_order=True)
        .agg("qty", _ROW)
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
    ends = per_sku["qty"].list.len().cum_sum()
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
    # No order id crosses into Python: the domain needs each line's quantity, in order.
    columns = [per_sku[name].to_list() for name in ("sku", "qty", *_BATCH_COLUMNS)]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for sku, qtys, references, etas, purchased, allocated, ids in zip(*columns, strict=True):
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
            preferred = dict(zip(references, ids, strict=True))
            ids_in_order = [preferred[batch.reference] for batch in product.batches]
            placed += [
                -1 if position is None else ids_in_order[position]
                for position in product.allocate_quantities(qtys)
            ]
    finally:
        if was_enabled:
            gc.enable()
    return pl.Series(BATCH_ID, placed, dtype=pl.Int64)


#: `progress(done, total)`: how far a step is, in its own units (files, lines). The flow turns
#: it into the run's progress artifact; the service layer knows nothing of Prefect.
Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """The default `Progress`: nobody is watching."""


class _Progress:
    """A progress line at most every `_PROGRESS_SECONDS`, for nights that take a while, and
    `report(lines done, lines in all)` after every run of lines or shard (the caller decides
    how often to pass it on: never per line, at most once per `_RUN_LINES` lines)."""

    def __init__(self, total: int, report: Progress = no_progress) -> None:
        self.total = total
        self.done = 0
        self.report = report
        self.started = self.last = time.perf_counter()

    def within(self, lines: int, _chunk: int) -> None:
        """`lines` done of a chunk this process is allocating (counted by `add` at its end)."""
        self.report(self.done + lines, self.total)

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
    progress: Progress = no_progress,
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
            BATCH_ID: pl.concat(placed) if placed else pl.Series(BATCH_ID, [], dtype=pl.Int64),
        }
    )


def allocate_chunk(
    lines: pl.DataFrame,
    batches: pl.DataFrame,
    progress: Progress = no_progress,
) -> pl.DataFrame:
    """One chunk of a `Candidates` source: `lines` (orderid, sku, qty, arrival_seq), each sku's
    lines together in arrival order; `batches` (reference, sku, eta, purchased, allocated,
    `__batch` id) of at least its skus. Returns `arrival_seq`, `batch` (the `__batch` id) and
    `qty` of the lines placed, sku by sku in arrival order; the others are out of stock.
    `progress(lines done, lines)` after each run of `_RUN_LINES` lines of the chunk."""
    placed = allocate_shard(
        lines.select("orderid", "sku", "qty", pl.col("arrival_seq").alias(_ROW)),
        batches.join(lines.select("sku").unique(), on="sku", how="semi"),
        progress,
    )
    return (
        placed.filter(pl.col(BATCH_ID) >= 0)
        .join(
            lines.select(pl.col("arrival_seq").alias(_ROW), "qty"),
            on=_ROW,
            maintain_order="left",
        )
        .select(pl.col(_ROW).alias("arrival_seq"), pl.col(BATCH_ID).alias("batch"), "qty")
    )


#: `Candidates.chunks`: the pieces of the big chunks, in order; the whole small chunks, each as
#: a plan (`pl.LazyFrame`) that whoever allocates it collects: a helper reads its chunk itself.
Streams = tuple[Iterator[pl.DataFrame], Iterator[pl.LazyFrame]]


def carry(batches: pl.DataFrame, placed: pl.DataFrame) -> pl.DataFrame:
    """`batches` with `allocated` grown by the qty `placed` (`allocate_chunk`'s frame) put on
    each. Exact for the next piece of a sku: the domain's rule places a line on the first
    batch in preference order with room, which depends only on the batches' order and
    available quantity (a night's lines are distinct, so no line is found already held)."""
    used = placed.group_by("batch").agg(pl.col("qty").sum().alias("__used"))
    return batches.join(
        used, left_on=BATCH_ID, right_on="batch", how="left", maintain_order="left"
    ).select(
        *(
            (pl.col("allocated") + pl.col("__used").fill_null(0)).alias("allocated")
            if name == "allocated"
            else pl.col(name)
            for name in batches.columns
        )
    )


class Candidates(Protocol):
    """The night's open lines, handed out one chunk of skus at a time, and where their
    placements go. A sku is never split between chunks (skus never share a batch), so chunks
    are independent: whoever allocates them, in whatever order, the answer is the same."""

    @property
    def lines(self) -> int:
        """How many lines there are in all the chunks."""

    def batches(self) -> pl.DataFrame:
        """reference, sku, eta, purchased, allocated, `__batch` (an integer id) of every batch
        of the candidates' skus: the catalogue, not the night, so it is held whole."""

    def chunks(self, chunk_lines: int) -> AbstractContextManager[Streams]:
        """The lines (orderid, sku, qty, arrival_seq) as two streams that can be read side by
        side: `pieces`, the chunks of skus (`chunk_of_skus`) that hold a sku of more than
        `chunk_lines` lines (a hot sku), biggest first, cut into consecutive pieces of at most
        `chunk_lines` lines (a sku may straddle two), to be allocated one after another
        carrying the batches' state (`carry`); `whole`, the other chunks (under twice
        `chunk_lines` lines), biggest first. Each sku's lines in arrival
        order. A whole chunk is a `pl.LazyFrame` that pickles small (a file scan, say), so that
        a helper, not this process, reads and orders it. Only the pieces and chunks read are in
        memory."""

    def record(self, placed: pl.DataFrame) -> None:
        """Keeps the placements (`allocate_chunk`'s frame) of one chunk."""


def _allocate_whole(lines: pl.LazyFrame, batches: pl.DataFrame) -> pl.DataFrame:
    """`allocate_chunk` of a whole chunk, collected where it is allocated (in a helper: the
    chunk's plan travels, not its rows)."""
    return allocate_chunk(lines.collect(), batches)


def _warm_up() -> None:
    """Submitted first, so a helper starts (and imports this module) before there is work."""


class _Helpers:
    """`count` spawned processes that allocate chunks beside this one."""

    def __init__(self, count: int) -> None:
        # Spawned, and bare: they import polars and the domain, not the command and Prefect.
        self._pool = helper_pool(count)
        # Started now, so their imports (about 1 s) overlap this process's own preparation.
        self._started = [self._pool.submit(_warm_up) for _ in range(count)]

    def __enter__(self) -> _Helpers:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(cancel_futures=True)

    def share(self, candidates: Candidates, chunk_lines: int, progress: _Progress) -> None:
        """Allocates every chunk, biggest first. This process allocates the pieces of the big
        chunks (a hot sku) one after another, carrying the batches' state; between pieces it
        hands the whole chunks to the helpers, `_IN_FLIGHT` each, so they work while it does.
        Once the pieces are done, it takes the next whole chunk whenever the helpers are all
        busy. Only the chunks in flight are in memory; the last ones handed out are the
        smallest, so the processes finish close together."""
        batches = candidates.batches()
        running: dict[Future[pl.DataFrame], int] = {}
        here = handed = 0
        held: pl.LazyFrame | None = None  # the next whole chunk, when no helper had room

        def collect(futures: Iterable[Future[pl.DataFrame]]) -> None:
            for future in futures:
                lines = running.pop(future)
                _record(candidates, future.result(), lines, progress)

        def hand_out(whole: Iterator[pl.LazyFrame]) -> None:
            nonlocal held, handed
            collect([future for future in running if future.done()])
            ready = sum(started.done() for started in self._started)
            while True:
                if held is None:
                    held = next(whole, None)
                    if held is None:
                        return
                    handed += 1
                if len(running) >= _IN_FLIGHT * ready:
                    return
                skus = held.select("sku").collect()  # one column: the chunk's batches, its size
                work = (held, batches.join(skus.unique(), on="sku", how="semi"))
                running[self._pool.submit(_allocate_whole, *work)] = skus.height
                held = None

        with candidates.chunks(chunk_lines) as (pieces, whole):
            carried = batches
            hand_out(whole)  # before the first piece is read: the helpers start at once
            for piece in pieces:
                hand_out(whole)
                placed = allocate_chunk(piece, carried, progress.within)
                carried = carry(carried, placed)
                _record(candidates, placed, piece.height, progress)
                here += piece.height
            while True:
                hand_out(whole)
                if held is None:
                    break
                chunk, held = held.collect(), None
                _record(
                    candidates,
                    allocate_chunk(chunk, batches, progress.within),
                    chunk.height,
                    progress,
                )
                here += chunk.height
            while running:
                collect([next(as_completed(running))])
        log.info(
            "Allocated %s lines in %d whole chunks of skus and the pieces of the big ones: %s in "
            "this process, the rest in %d helper(s)",
            f"{progress.total:,}",
            handed,
            f"{here:,}",
            len(self._started),
        )


def _record(candidates: Candidates, placed: pl.DataFrame, lines: int, progress: _Progress) -> None:
    if placed.height > lines:
        raise RuntimeError(f"a chunk of {lines} lines came back with {placed.height} placements")
    candidates.record(placed)
    progress.add(lines)


class Columns(Protocol):
    """The night's candidate lines as integer columns (`allocate_columns`)."""

    def skus(self) -> pl.DataFrame:
        """sku_rank (1, 2, ... dense), sku, lines: every sku with a candidate line."""

    def sku_batches(self) -> pl.DataFrame:
        """sku_rank, reference, eta, purchased, allocated, `__batch` (an integer id) of every
        batch of those skus, by sku_rank."""

    def column_slices(self, sizes: list[int]) -> AbstractContextManager[Iterator[pl.DataFrame]]:
        """sku_rank, qty, arrival_seq of every candidate line, by sku_rank then arrival_seq,
        in consecutive slices of `sizes` lines."""

    def record(self, placed: pl.DataFrame) -> None:
        """Keeps the placements (arrival_seq, batch, qty) of one slice."""

    def load_placements(self) -> int:
        """Makes the recorded placements the night's; returns how many lines were placed."""


#: Lines whose quantities are Python integers at once in `allocate_columns` (whole skus).
SLICE_LINES = 1_000_000


def slices_of_skus(counts: list[int], slice_lines: int) -> list[tuple[int, int, int]]:
    """(first, end, lines): consecutive runs of whole skus (indexes into `counts`, each sku's
    lines) of at most `slice_lines` lines, or one sku alone when it has more."""
    spans: list[tuple[int, int, int]] = []
    index = 0
    while index < len(counts):
        first, lines = index, 0
        while index < len(counts) and (index == first or lines + counts[index] <= slice_lines):
            lines += counts[index]
            index += 1
        spans.append((first, index, lines))
    return spans


def allocate_columns(
    candidates: Columns,
    progress: Progress = no_progress,
    slice_lines: int = SLICE_LINES,
) -> int:
    """Decides the night over integer columns in this process and records the placements;
    returns how many lines were placed.

    The lines come sku by sku, each sku's in arrival order, in slices of whole skus (about
    `slice_lines` lines; `Columns.column_slices`). Each sku's quantities go to its `Product`
    as a column (`Product.allocate_quantities`), whose answers (batch positions in preference
    order) are put back by position: no `OrderLine`, no text and no look-up per line. Python
    holds one slice at a time, and the catalogue of the night's skus."""
    skus = candidates.skus()
    names = skus["sku"].to_list()
    counts = skus["lines"].to_list()
    batches = candidates.sku_batches()
    # The catalogue by sku (ranks are dense from 1): the batches of rank r are the rows
    # firsts[r]:firsts[r + 1].
    firsts = [0] * (len(names) + 2)
    for rank in batches["sku_rank"].to_list():
        firsts[rank + 1] += 1
    for rank in range(1, len(firsts)):
        firsts[rank] += firsts[rank - 1]
    catalogue = batches.select("reference", "eta", "purchased", "allocated", BATCH_ID)
    spans = slices_of_skus(counts, slice_lines)
    total, done = sum(counts), 0
    was_enabled = gc.isenabled()
    gc.disable()  # only acyclic `Batch`/`Product` objects here: reference counting frees them
    try:
        with candidates.column_slices([lines for _, _, lines in spans]) as slices:
            for (first, end, _), rows in zip(spans, slices, strict=True):
                base = firsts[first + 1]
                own_rows = catalogue.slice(base, firsts[end + 1] - base).rows()
                candidates.record(_decide_slice(rows, names, counts, own_rows, firsts, first, end))
                done += rows.height
                progress(done, total)
    finally:
        if was_enabled:
            gc.enable()
    placed = candidates.load_placements()
    log.info("Allocated %s lines over integer columns: %s placed", f"{total:,}", f"{placed:,}")
    return placed


def _decide_slice(
    rows: pl.DataFrame,
    names: list[str],
    counts: list[int],
    batch_rows: list[tuple[Any, ...]],
    firsts: list[int],
    first: int,
    end: int,
) -> pl.DataFrame:
    """The placements (arrival_seq, batch, qty) of `rows`: the lines of skus first..end - 1
    (indexes into `names`), sku by sku, each in arrival order; `batch_rows` their batches
    (reference, eta, purchased, allocated, id), the rows firsts[first + 1]:firsts[end + 1]
    of the catalogue."""
    base = firsts[first + 1]
    quantities = rows["qty"].to_list()
    positions: list[int | None] = []
    preferred: list[int] = []  # each sku's batch ids, in its product's preference order
    offsets: list[int] = []  # per sku of the slice: where its ids start in `preferred`
    cursor = 0
    for sku in range(first, end):
        name = names[sku]
        own = batch_rows[firsts[sku + 1] - base : firsts[sku + 2] - base]
        product = Product(
            name,
            [
                Batch(reference, name, purchased, eta, previously_allocated=allocated)
                for reference, eta, purchased, allocated, _ in own
            ],
        )
        positions += product.allocate_quantities(quantities[cursor : cursor + counts[sku]])
        cursor += counts[sku]
        offsets.append(len(preferred))
        id_of = {row[0]: row[4] for row in own}
        preferred += [id_of[batch.reference] for batch in product.batches]
    slot = pl.Series(offsets, dtype=pl.Int64).gather(
        rows["sku_rank"].cast(pl.Int64) - (first + 1)
    ) + pl.Series(positions, dtype=pl.Int64)
    batch = pl.Series(preferred, dtype=pl.Int64).gather(slot)
    return rows.select("arrival_seq", pl.lit(batch).alias("batch"), "qty").filter(
        pl.col("batch").is_not_null()
    )


def allocate_candidates(
    candidates: Candidates,
    workers: int = 1,
    progress: Progress = no_progress,
    chunk_lines: int | None = None,
) -> None:
    """Allocates every chunk of `candidates` and records its placements. `workers` > 1 spreads
    the chunks over that many processes, this one included (0 = one per CPU core), for nights
    of `PARALLEL_MIN_LINES` lines or more. `progress(lines done, lines)` is called in this
    process after every chunk. `chunk_lines`: lines per chunk (default `CHUNK_LINES`)."""
    workers = workers or os.cpu_count() or 1
    chunk_lines = chunk_lines or CHUNK_LINES
    done = _Progress(candidates.lines, progress)
    if workers > 1 and candidates.lines >= PARALLEL_MIN_LINES:
        with _Helpers(workers - 1) as helpers:
            helpers.share(candidates, chunk_lines, done)
        return
    batches = candidates.batches()
    with candidates.chunks(chunk_lines) as (pieces, whole):
        carried = batches
        for piece in pieces:
            placed = allocate_chunk(piece, carried, done.within)
            carried = carry(carried, placed)
            _record(candidates, placed, piece.height, done)
        for lazy in whole:
            chunk = lazy.collect()
            _record(candidates, allocate_chunk(chunk, batches, done.within), chunk.height, done)
