"""The night's allocation over frames already in memory: the same chunks, pieces and domain calls
as the streamed night (`allocation.service.engine.by_chunks.allocate_candidates`), fed from polars
frames instead of DuckDB. For tests (they compare chunk sizes, processes and runners against it) and
the domain's benchmarks; a night itself never holds its lines as frames, so this is not part of the
installed package.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl

from allocation.service.engine.by_chunks import allocate_candidates
from allocation.service.engine.sources import BATCH_ID, Streams
from allocation.service.progress import Progress, no_progress

#: The `batches` frame `FrameCandidates` and `allocate_lines` take.
BATCH_FRAME_SCHEMA = {
    "reference": pl.String,
    "sku": pl.String,
    "eta": pl.Date,
    "purchased": pl.Int64,
    "allocated": pl.Int64,
}


def chunk_of_skus(lines_per_sku: pl.Expr, chunk_lines: int) -> pl.Expr:
    """Packs skus, in the order given, into chunks of about `chunk_lines` lines: a sku goes to
    the chunk where its first line falls, so a sku bigger than a chunk is a chunk of its own
    (with at most the tail of the skus before it)."""
    return (lines_per_sku.cum_sum() - lines_per_sku) // chunk_lines


class FrameCandidates:
    """`Candidates` over frames already in memory (tests, benchmarks of the domain loop):
    `lines` (orderid, sku, qty, arrival_seq, each arrival_seq once) and `batches` (reference,
    sku, eta, purchased, allocated)."""

    def __init__(self, lines: pl.DataFrame, batches: pl.DataFrame) -> None:
        self._lines = lines
        self._batches = batches.select(
            "reference",
            "sku",
            "eta",
            "purchased",
            "allocated",
            pl.int_range(pl.len()).alias(BATCH_ID),
        )
        self.placed: list[pl.DataFrame] = []

    @property
    def lines(self) -> int:
        return self._lines.height

    def batches(self) -> pl.DataFrame:
        return self._batches

    @contextmanager
    def chunks(self, chunk_lines: int) -> Iterator[Streams]:
        chunk_lines = max(1, chunk_lines)
        per_sku = (
            self._lines.group_by("sku")
            .len("lines")
            .sort("sku")
            .with_columns(chunk=chunk_of_skus(pl.col("lines"), chunk_lines))
        )
        chunked = self._lines.join(per_sku, on="sku").with_columns(
            size=pl.len().over("chunk"), big=(pl.col("lines").max() > chunk_lines).over("chunk")
        )
        ordered = chunked.sort(
            ["big", "size", "chunk", "sku", "arrival_seq"],
            descending=[True, True, False, False, False],
        )
        columns = ("orderid", "sku", "qty", "arrival_seq")
        big = ordered.filter(pl.col("big")).select(columns)
        small = ordered.filter(~pl.col("big"))
        yield (
            iter(big.iter_slices(chunk_lines)),
            (
                chunk.select(columns).lazy()
                for chunk in small.partition_by("chunk", maintain_order=True)
            ),
        )

    def record(self, placed: pl.DataFrame) -> None:
        self.placed.append(placed)


def allocate_lines(
    lines: pl.DataFrame,
    batches: pl.DataFrame,
    workers: int = 1,
    progress: Progress = no_progress,
    chunk_lines: int | None = None,
) -> pl.DataFrame:
    """Places every line of frames in memory; returns `lines` with `batchref` (null = out of
    stock) and the batch's `eta`, in arrival order. The night itself streams its candidates
    out of DuckDB (`allocate_candidates`); this is the same allocation over frames."""
    candidates = FrameCandidates(lines, batches)
    allocate_candidates(candidates, workers, progress, chunk_lines)
    numbered = candidates.batches()
    placed = pl.concat(
        [
            pl.DataFrame(schema={"arrival_seq": pl.Int64, "batch": pl.Int64, "qty": pl.Int64}),
            *candidates.placed,
        ],
        how="vertical",
    )
    found = placed.join(
        numbered.select(
            pl.col(BATCH_ID).alias("batch"), pl.col("reference").alias("batchref"), "eta"
        ),
        on="batch",
    ).select("arrival_seq", "batchref", "eta")
    return lines.sort("arrival_seq", maintain_order=True).join(
        found, on="arrival_seq", how="left", maintain_order="left"
    )
