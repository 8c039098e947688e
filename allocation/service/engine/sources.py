"""What the allocation engine reads the night's open lines from and records their placements to:
`Columns` (the default, integer columns in slices of whole skus) and `Candidates` (chunks of
skus, for helper processes and the Dask runner). `allocation.io.candidates` implements both over
DuckDB, `benchmarks.frame_allocation` the chunked one over frames in memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

import polars as pl

#: The column of a batch's integer id (in production its `rowid`), which placements refer to.
BATCH_ID = "__batch"

#: `Candidates.chunks`: the pieces of the big chunks, in order; the whole small chunks, each as
#: a plan (`pl.LazyFrame`) that whoever allocates it collects: a helper reads its chunk itself.
Streams = tuple[Iterator[pl.DataFrame], Iterator[pl.LazyFrame]]


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
