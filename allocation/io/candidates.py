"""The night's open lines streamed out of DuckDB in chunks of skus, and their placements kept.

Candidates are the lines waiting in `order_lines` (backorders, and lines a manifest change
released tonight) and tonight's new lines (the TEMP table `night_lines`). DuckDB counts the lines
per sku, packs the skus (in sku order) into chunks of about the lines the allocator asks for (a
sku is never split between chunks), and hands the lines over in ONE ordered query (sorted on
integers: a rank per sku, not its text), the chunks holding a hot sku first, then biggest chunk
first, each sku's lines in arrival order: one sort, spilled by DuckDB past its memory limit,
instead of a query per chunk (each of which scans the whole night). The hot chunks' rows are
spooled to a Parquet file and read back in pieces of at most the chunk's lines while the query
streams the other chunks: Python holds the pieces and chunks in flight (and the arrow batch they
are cut from), never a whole hot sku.

While that query streams, the connection can run nothing else, so the placements go to a Parquet
file in the night's spill folder as they come back; `load_placements` then reads it into the
TEMP table `placements` (arrival_seq, batch, qty), from which the night is recorded by SQL
(`DuckDBRepository.record_placements`). `batch` is the batch's `rowid` in `batches`: an integer
key, stable for the night's transaction (batches are updated in place, never deleted).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as arrow
import pyarrow.parquet as pq

from allocation.io.repository import CANDIDATE_LINES

PLACEMENTS_SCHEMA = arrow.schema(
    [("arrival_seq", arrow.int64()), ("batch", arrow.int64()), ("qty", arrow.int64())]
)
_READ_ROWS = 100_000  # rows per arrow batch of the ordered query
_COLUMNS = ("orderid", "sku", "qty", "arrival_seq")


class DuckDBCandidates:
    """`allocation.allocator.Candidates` over the night's connection. `folder`: where the
    placements are kept while the candidates stream (the night's spill folder)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path) -> None:
        self.con = con
        con.execute(f"CREATE OR REPLACE TEMP VIEW candidate_lines AS {CANDIDATE_LINES}")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE candidate_skus AS "
            "SELECT sku, row_number() OVER (ORDER BY sku) AS sku_rank, count(*) AS lines "
            "FROM candidate_lines GROUP BY sku"
        )
        rows = con.sql("SELECT coalesce(sum(lines), 0)::BIGINT FROM candidate_skus").fetchall()
        self._lines = int(rows[0][0])
        folder.mkdir(parents=True, exist_ok=True)
        # Runs never overlap (the run lock): a placements file here is one a killed night left.
        for pattern in ("placements-*.parquet", "pieces-*.parquet"):
            for leftover in folder.glob(pattern):
                leftover.unlink(missing_ok=True)
        self._path = folder / f"placements-{uuid.uuid4().hex}.parquet"
        self._writer: pq.ParquetWriter | None = None
        self.placed = 0

    @property
    def lines(self) -> int:
        return self._lines

    def batches(self) -> pl.DataFrame:
        frame: pl.DataFrame = self.con.sql(
            "SELECT b.reference, b.sku, b.eta, b.purchased, b.allocated, b.rowid AS __batch "
            "FROM batches b SEMI JOIN candidate_skus c USING (sku) ORDER BY b.sku, b.reference"
        ).pl()
        return frame

    @contextmanager
    def chunks(
        self, chunk_lines: int
    ) -> Iterator[tuple[Iterator[pl.DataFrame], Iterator[pl.DataFrame]]]:
        """`allocation.allocator.Candidates.chunks`. The big chunks come first out of the
        ordered query; they are spooled to a Parquet file in the spill folder (the connection
        cannot serve a second query while this one streams), read back piece by piece while
        the rest of the query streams the whole chunks."""
        lines = max(1, chunk_lines)
        # A sku goes to the chunk where its first line falls (skus in sku order), as
        # `allocation.frame_allocation.chunk_of_skus` packs them; chunks are contiguous ranges of
        # sku_rank, so sorting on the integer rank keeps each chunk together.
        reader = self.con.sql(
            "WITH packed AS ("
            "  SELECT sku, sku_rank, (sum(lines) OVER (ORDER BY sku_rank ROWS BETWEEN "
            "  UNBOUNDED PRECEDING AND CURRENT ROW) - lines) // $lines AS chunk, lines "
            "  FROM candidate_skus"
            "), sized AS ("
            "  SELECT sku, sku_rank, chunk, sum(lines) OVER (PARTITION BY chunk) AS chunk_size, "
            "  max(lines) OVER (PARTITION BY chunk) > $lines AS big FROM packed"
            ") SELECT l.orderid, l.sku, l.qty, l.arrival_seq, c.chunk, c.big "
            "FROM candidate_lines l JOIN sized c USING (sku) "
            "ORDER BY c.big DESC, c.chunk_size DESC, c.sku_rank, l.arrival_seq",
            params={"lines": lines},
        ).to_arrow_reader(_READ_ROWS)
        spool = self._path.with_name(f"pieces-{uuid.uuid4().hex}.parquet")
        try:
            rest = _spool_big_chunks(reader, spool)
            pieces = _pieces(spool, lines) if spool.exists() else iter(())
            yield pieces, _whole_chunks(rest, reader)
        finally:
            reader.close()  # else the connection refuses every statement, ROLLBACK included
            spool.unlink(missing_ok=True)

    def record(self, placed: pl.DataFrame) -> None:
        table = placed.select("arrival_seq", "batch", "qty").to_arrow().cast(PLACEMENTS_SCHEMA)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, PLACEMENTS_SCHEMA, compression="lz4")
        self._writer.write_table(table)
        self.placed += placed.height

    def load_placements(self) -> int:
        """Closes the placements file and loads it as the TEMP table `placements`; returns how
        many lines were placed. Call once every chunk is recorded."""
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE placements "
            "(arrival_seq BIGINT NOT NULL, batch BIGINT NOT NULL, qty BIGINT NOT NULL)"
        )
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.con.execute(
                "INSERT INTO placements SELECT arrival_seq, batch, qty FROM read_parquet(?)",
                [str(self._path)],
            )
        self.discard()
        return self.placed

    def discard(self) -> None:
        """Removes the placements file (also when the night fails)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._path.unlink(missing_ok=True)


def _spool_big_chunks(reader: arrow.RecordBatchReader, spool: Path) -> pl.DataFrame | None:
    """Writes the rows of the big chunks (the first out of the reader) to `spool`; returns the
    rest of the batch where they end (None when the reader is done)."""
    writer: pq.ParquetWriter | None = None
    try:
        for batch in reader:
            frame = pl.DataFrame(arrow.Table.from_batches([batch]))
            big = frame.filter(pl.col("big"))
            if big.height:
                if writer is None:
                    writer = pq.ParquetWriter(spool, big.to_arrow().schema, compression="lz4")
                writer.write_table(big.to_arrow())
            if big.height < frame.height:
                return frame.filter(~pl.col("big"))
        return None
    finally:
        if writer is not None:
            writer.close()


def _pieces(spool: Path, lines: int) -> Iterator[pl.DataFrame]:
    """The spooled rows in order, in pieces of `lines` lines (the last one fewer)."""
    held: list[pl.DataFrame] = []
    count = 0
    for batch in pq.ParquetFile(spool).iter_batches(batch_size=_READ_ROWS):
        frame = pl.DataFrame(arrow.Table.from_batches([batch])).select(_COLUMNS)
        while frame.height:
            take = frame.head(lines - count)
            held.append(take)
            count += take.height
            frame = frame.slice(take.height)
            if count == lines:
                yield pl.concat(held, how="vertical")
                held.clear()
                count = 0
    if held:
        yield pl.concat(held, how="vertical")


def _whole_chunks(
    first: pl.DataFrame | None, reader: arrow.RecordBatchReader
) -> Iterator[pl.DataFrame]:
    """The chunks of `first` and the rest of `reader`, one frame each."""
    if first is None:
        return
    held: list[pl.DataFrame] = []
    frames = itertools.chain(
        [first], (pl.DataFrame(arrow.Table.from_batches([batch])) for batch in reader)
    )
    for frame in frames:
        for part in frame.partition_by("chunk", maintain_order=True):
            if held and held[0]["chunk"][0] != part["chunk"][0]:
                yield _chunk(held)
            held.append(part)
    if held:
        yield _chunk(held)


def _chunk(held: list[pl.DataFrame]) -> pl.DataFrame:
    frame = pl.concat(held, how="vertical").select(_COLUMNS)
    held.clear()
    return frame
