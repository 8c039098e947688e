"""The night's decision over integer columns (`allocate_columns`, the local runner's way).

The night comes out of DuckDB as one query ordered by sku then arrival, integers only (sku rank,
quantity, arrival number), cut into slices of whole skus; each sku's quantities go to its domain
`Product` as a column, and each slice's placements are recorded until the night is. Python holds
one slice and the catalogue of the night's skus, whatever the night's size.
"""

from __future__ import annotations

import logging
from typing import Any

import polars as pl

from allocation.domain import Batch, Product
from allocation.io.garbage_collector import gc_paused
from allocation.service.engine.sources import BATCH_ID, Columns
from allocation.service.progress import Progress, no_progress

log = logging.getLogger("allocation")

#: A slice: consecutive whole skus read as one frame and decided together, the lines whose
#: quantities are Python integers at once (a sku with more lines is a slice alone).
SLICE_LINES = 1_000_000


def slices_of_skus(counts: list[int], slice_lines: int) -> list[tuple[int, int, int]]:
    """(first, end, lines): consecutive slices of whole skus (indexes into `counts`, each sku's
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
    # Only acyclic `Batch`/`Product` objects here: reference counting frees them.
    with gc_paused(), candidates.column_slices([lines for _, _, lines in spans]) as slices:
        for (first, end, _), rows in zip(spans, slices, strict=True):
            base = firsts[first + 1]
            own_rows = catalogue.slice(base, firsts[end + 1] - base).rows()
            candidates.record(_decide_slice(rows, names, counts, own_rows, firsts, first, end))
            done += rows.height
            progress(done, total)
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
