"""The decision of one chunk of skus (`allocate_chunk`): the chunked way's unit of work, the same
wherever it runs (this process, a helper process, a Dask shard).

In a chunk, each sku's lines are gathered beside its batches, a domain `Product` is built over
them and its lines' quantities go through `Product.allocate_quantities`, a slice of whole skus
at a time. What keeps the per-line cost down (the domain's rule still decides every line):

* one polars `group_by` and join put each sku's lines and batches in one row: Python sees a
  sku once, then the list of its lines' quantities;
* the product sorts its batches once and leaves full batches out of its search;
* the result is an integer per line (the batch's id, -1 when out of stock);
* the cyclic garbage collector is paused in the loop (`gc_paused`).

A hot sku (more lines than a chunk) comes in pieces, allocated one after another, each batch's
state carried from piece to piece (`carry`): no `Product` holds more than a piece's lines.
"""

from __future__ import annotations

from itertools import pairwise

import polars as pl

from allocation.domain import Batch, Product
from allocation.io.garbage_collector import gc_paused
from allocation.service.engine.sources import BATCH_ID
from allocation.service.progress import LineProgress, Progress, no_progress

_ROW = "__row"
_BATCH_COLUMNS = ("reference", "eta", "purchased", "allocated", BATCH_ID)
#: A chunk's slice: consecutive whole skus of one chunk whose lines are Python objects at once
#: and decided together, then reported as done; memory stays flat whatever the chunk's size.
_CHUNK_SLICE_LINES = 100_000


def batches_of(batches: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
    """The rows of `batches` of the skus `lines` (a frame with a `sku` column) hold."""
    return batches.join(lines.select("sku").unique(), on="sku", how="semi")


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


def _slices(per_sku: pl.DataFrame, slice_lines: int) -> list[pl.DataFrame]:
    """Consecutive slices of `per_sku` of about `slice_lines` lines each (a sku is never
    split)."""
    ends = per_sku["qty"].list.len().cum_sum()
    if ends.is_empty():
        return []
    cuts = ends.search_sorted(
        pl.Series(range(slice_lines, int(ends[-1]), slice_lines)), side="left"
    ).to_list()
    bounds = sorted({0, *(cut + 1 for cut in cuts), per_sku.height})
    return [per_sku.slice(start, end - start) for start, end in pairwise(bounds)]


def _allocate_slice(per_sku: pl.DataFrame) -> pl.Series:
    """The batch id (-1 when out of stock) of every line of a `_per_sku` slice, sku by sku."""
    placed: list[int] = []
    # No order id crosses into Python: the domain needs each line's quantity, in order.
    columns = [per_sku[name].to_list() for name in ("sku", "qty", *_BATCH_COLUMNS)]
    with gc_paused():
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
    return pl.Series(BATCH_ID, placed, dtype=pl.Int64)


def allocate_shard(
    lines: pl.DataFrame,
    batches: pl.DataFrame,
    progress: Progress = no_progress,
) -> pl.DataFrame:
    """`lines` (orderid, sku, qty, and a `__row` id), each sku's lines together in arrival order;
    `batches` (reference, sku, eta, purchased, allocated, and a `__batch` id). Returns `__row`
    and `__batch` (the id of the batch the line went to, -1 when out of stock) per line, in the
    same order.
    `progress(lines done, lines)` after each slice of `_CHUNK_SLICE_LINES` lines."""
    per_sku = _per_sku(lines, batches)
    done = LineProgress(lines.height, progress)
    placed = []
    for skus in _slices(per_sku, _CHUNK_SLICE_LINES):
        placed.append(_allocate_slice(skus))
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
    `progress(lines done, lines)` after each slice of `_CHUNK_SLICE_LINES` lines of the chunk."""
    placed = allocate_shard(
        lines.select("orderid", "sku", "qty", pl.col("arrival_seq").alias(_ROW)),
        batches_of(batches, lines),
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
