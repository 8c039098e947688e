"""The night's open lines streamed out of DuckDB in slices or chunks of skus, and their
placements kept.

The local runner reads the lines as integer columns (`column_slices`): one query ordered by sku
rank and arrival, streamed and cut into slices of whole skus. DuckDB sorts within its memory
limit, spilling past it, far cheaper in time and memory than collecting the columns into one
polars frame and sorting it there (docs/benchmarks.md, issue 24).

The chunked path (the Dask runner, helper processes):

Candidates are the lines waiting in `order_lines` (backorders, and lines a manifest change
released tonight) and tonight's new lines (the TEMP table `night_lines`). DuckDB counts the lines
per sku and packs the skus (in sku order) into chunks of about the lines the allocator asks for
(a sku is never split between chunks); the chunks holding a hot sku come first, then the
biggest. ONE unordered pass over the lines spools each whole chunk to its own Arrow file and the
hot chunks' rows to one Parquet file, in the night's spill folder; DuckDB then sorts only the
hot rows (read back in pieces of at most the chunk's lines), and a whole chunk is handed out as
a scan of its file that orders it (by integer sku rank, then arrival) where it is collected: in
a helper process, which reads its own chunk. Sorting the whole night in one ordered query
before the first chunk could go out kept the helpers idle for several times the unordered
pass's cost (docs/benchmarks.md, issue 14). Python holds the pieces and chunks in flight (and
the Arrow record batch they are cut from), never a whole hot sku.

While the hot pieces stream, the connection can run nothing else, so the placements go to a
Parquet file in the night's spill folder as they come back; `load_placements` then reads it into the
TEMP table `placements` (arrival_seq, batch, qty), from which the night is recorded by SQL
(`DuckDBRepository.record_placements`). `batch` is the batch's `rowid` in `batches`: an integer
key, stable for the night's transaction (batches are updated in place, never deleted).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as arrow
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from allocation.io.memory_limit import streaming_memory
from allocation.io.night_tables import OPEN_LINE_COUNT, create_candidate_lines
from allocation.settings.duckdb_limits import DuckDBLimits

PLACEMENTS_SCHEMA = arrow.schema(
    [("arrival_seq", arrow.int64()), ("batch", arrow.int64()), ("qty", arrow.int64())]
)
#: Lines in each Arrow record batch DuckDB hands over at a time: what slices and pieces are cut
#: from and the spool is written in (a unit of reading, not of deciding).
_ARROW_LINES = 100_000
_COLUMNS = ("orderid", "sku", "qty", "arrival_seq")
#: Bytes of one line in the decision's ordered stream: sku rank (4), quantity and arrival (8 each).
_LINE_BYTES = 20


class DuckDBCandidates:
    """`allocation.service.engine.sources.Candidates` and `Columns` over the night's connection.
    `folder`: where the placements are kept while the candidates stream (the night's spill
    folder). `limits`: the connection's own; `column_slices` sorts under their `sorting()` share
    (None: the connection has DuckDB's defaults, left as they are)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, folder: Path, limits: DuckDBLimits | None = None
    ) -> None:
        self.con = con
        self._limits = limits
        create_candidate_lines(con)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE candidate_skus AS "
            "SELECT sku, row_number() OVER (ORDER BY sku) AS sku_rank, count(*) AS lines "
            "FROM candidate_lines GROUP BY sku"
        )
        rows = con.sql("SELECT coalesce(sum(lines), 0)::BIGINT FROM candidate_skus").fetchall()
        self._lines = int(rows[0][0])
        self._open_lines = int(con.sql(OPEN_LINE_COUNT).fetchall()[0][0])
        folder.mkdir(parents=True, exist_ok=True)
        # Runs never overlap (the run lock): a placements file here is one a killed night left.
        for pattern in ("placements-*.parquet", "pieces-*.parquet"):
            for leftover in folder.glob(pattern):
                leftover.unlink(missing_ok=True)
        for leftover in folder.glob("chunks-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        self._path = folder / f"placements-{uuid.uuid4().hex}.parquet"
        self._writer: pq.ParquetWriter | None = None
        self.placed = 0

    @property
    def lines(self) -> int:
        """The lines to decide: `candidate_lines`."""
        return self._lines

    @property
    def open_lines(self) -> int:
        """Every line open when the decision starts (`OPEN_LINE_COUNT`): those to decide and
        the waiting ones too large for any batch's room tonight, which stay waiting unread."""
        return self._open_lines

    def batches(self) -> pl.DataFrame:
        """The batches with room of the candidates' skus (as `sku_batches`, with their sku):
        what the chunked path and the Dask shards allocate over."""
        frame: pl.DataFrame = self.con.sql(
            "SELECT b.reference, b.sku, b.eta, b.purchased, b.allocated, b.rowid AS __batch "
            "FROM batches b SEMI JOIN candidate_skus c USING (sku) "
            "WHERE b.purchased > b.allocated ORDER BY b.sku, b.reference"
        ).pl()
        return frame

    # -- the night as integer columns (`allocation.service.engine.columns.allocate_columns`) ------
    def skus(self) -> pl.DataFrame:
        """sku_rank (1, 2, ... in sku order), sku, lines: every sku with a candidate line."""
        frame: pl.DataFrame = self.con.sql(
            "SELECT sku_rank::INTEGER AS sku_rank, sku, lines::BIGINT AS lines "
            "FROM candidate_skus ORDER BY sku_rank"
        ).pl()
        return frame

    def sku_batches(self) -> pl.DataFrame:
        """sku_rank, reference, eta, purchased, allocated, `__batch` (the batch's rowid) of every
        batch with room of the candidates' skus, by sku_rank: the catalogue, not the night. A
        full batch takes no line (`domain.place`), and a sku's full batches of earlier nights
        would otherwise be read, built and sorted every night for nothing."""
        frame: pl.DataFrame = self.con.sql(
            "SELECT c.sku_rank::INTEGER AS sku_rank, b.reference, b.eta, b.purchased, "
            "b.allocated, b.rowid AS __batch "
            "FROM batches b JOIN candidate_skus c USING (sku) WHERE b.purchased > b.allocated "
            "ORDER BY c.sku_rank, b.reference"
        ).pl()
        return frame

    @contextmanager
    def column_slices(self, sizes: list[int]) -> Iterator[Iterator[pl.DataFrame]]:
        """Every candidate line as integers only (sku_rank, qty, arrival_seq: no text), ordered
        by sku_rank then arrival_seq, cut into consecutive slices of `sizes` lines (the caller
        sizes them to whole skus from `skus()`). One ordered query, streamed: DuckDB sorts
        within its memory limit (spilling past it) and Python holds one slice and the arrow
        batch it is cut from, whatever the night's size. While the slices stream the connection
        runs nothing else: the placements go to `record` (a file), then `load_placements`.

        The sort runs under a share of the night's memory sized to its data
        (`DuckDBLimits.sorting`): it spills and streams back at about the same speed, and what
        DuckDB holds here is held beside the slice in Python at the night's peak
        (docs/benchmarks.md, "Memory by step")."""
        if not sizes:
            yield iter(())
            return
        lowered = self._limits.sorting(self._lines * _LINE_BYTES) if self._limits else None
        with streaming_memory(self.con, self._limits, lowered):
            reader = self.con.sql(
                "SELECT c.sku_rank::INTEGER AS sku_rank, l.qty::BIGINT AS qty, l.arrival_seq "
                "FROM candidate_lines l JOIN candidate_skus c USING (sku) "
                "ORDER BY c.sku_rank, l.arrival_seq"
            ).to_arrow_reader(_ARROW_LINES)
            try:
                yield _cut(reader, sizes)
            finally:
                reader.close()  # else the connection refuses every statement, ROLLBACK included

    @contextmanager
    def chunks(
        self, chunk_lines: int
    ) -> Iterator[tuple[Iterator[pl.DataFrame], Iterator[pl.LazyFrame]]]:
        """`allocation.service.engine.sources.Candidates.chunks`. One unordered pass over the
        lines spools each whole chunk to its own Arrow file and the big chunks to one Parquet file in the
        spill folder; then DuckDB sorts only the big chunks' rows (read back in pieces), and
        each whole chunk is sorted when it is read (a few hundred thousand rows), so the helpers
        get their first chunk without waiting for a sort of the whole night."""
        lines = max(1, chunk_lines)
        # A sku goes to the chunk where its first line falls (skus in sku order), as
        # `benchmarks.frame_allocation.chunk_of_skus` packs them; `place` orders the chunks: the
        # ones holding a sku bigger than a chunk first, then biggest first.
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE candidate_chunks AS WITH packed AS ("
            "  SELECT sku, sku_rank, lines, (sum(lines) OVER (ORDER BY sku_rank ROWS BETWEEN "
            "  UNBOUNDED PRECEDING AND CURRENT ROW) - lines) // $lines AS chunk "
            "  FROM candidate_skus"
            "), sized AS ("
            "  SELECT chunk, sum(lines) AS size, max(lines) > $lines AS big FROM packed "
            "  GROUP BY chunk"
            "), placed AS ("
            "  SELECT chunk, big, row_number() OVER (ORDER BY big DESC, size DESC, chunk) AS place"
            "  FROM sized"
            ") SELECT p.sku, p.sku_rank, c.place, c.big FROM packed p JOIN placed c USING (chunk)",
            {"lines": lines},
        )
        places = self.con.sql(
            "SELECT DISTINCT place, big FROM candidate_chunks ORDER BY place"
        ).fetchall()
        folder = self._path.with_name(f"chunks-{uuid.uuid4().hex}")
        spool = self._path.with_name(f"pieces-{uuid.uuid4().hex}.parquet")
        reader: arrow.RecordBatchReader | None = None
        try:
            _spool(self.con, folder, spool)
            if spool.exists():
                reader = self.con.sql(
                    "SELECT orderid, sku, qty, arrival_seq FROM read_parquet(?) "
                    "ORDER BY place, sku_rank, arrival_seq",
                    params=[str(spool)],
                ).to_arrow_reader(_ARROW_LINES)
            pieces = _pieces(reader, lines) if reader is not None else iter(())
            yield pieces, _whole_chunks(folder, [place for place, big in places if not big])
        finally:
            if reader is not None:
                reader.close()  # else the connection refuses every statement, ROLLBACK included
            spool.unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)

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


def _spool(con: duckdb.DuckDBPyConnection, folder: Path, spool: Path) -> None:
    """Every candidate line, in one pass in no order: the big chunks' rows to `spool` (Parquet,
    for DuckDB to sort), each whole chunk's to `folder`/PLACE.arrow (Arrow IPC: the cheapest
    to write and read back). Python holds one arrow batch at a time."""
    folder.mkdir()
    reader = con.sql(
        "SELECT l.orderid, l.sku, l.qty, l.arrival_seq, c.sku_rank, c.place, c.big "
        "FROM candidate_lines l JOIN candidate_chunks c USING (sku)"
    ).to_arrow_reader(_ARROW_LINES)
    big: pq.ParquetWriter | None = None
    writers: dict[int, ipc.RecordBatchFileWriter] = {}
    try:
        for batch in reader:
            frame = pl.DataFrame(arrow.Table.from_batches([batch]))
            hot = frame.filter(pl.col("big")).drop("big")
            if hot.height:
                table = hot.to_arrow()
                if big is None:
                    big = pq.ParquetWriter(spool, table.schema, compression="lz4")
                big.write_table(table)
            rest = frame.filter(~pl.col("big"))
            for (place,), part in rest.partition_by("place", as_dict=True).items():
                # plain strings: half the bytes of polars' string views for these short texts
                table = part.select(*_COLUMNS, "sku_rank").to_arrow(
                    compat_level=pl.CompatLevel.oldest()
                )
                writer = writers.get(place)
                if writer is None:
                    writer = ipc.new_file(folder / f"{place}.arrow", table.schema)
                    writers[place] = writer
                writer.write_table(table)
    finally:
        reader.close()
        for writer in writers.values():
            writer.close()
        if big is not None:
            big.close()


def _cut(reader: arrow.RecordBatchReader, sizes: list[int]) -> Iterator[pl.DataFrame]:
    """The rows of `reader` in order, as consecutive frames of `sizes` rows; raises if the
    reader holds fewer or more rows than they add up to."""
    batches = iter(reader)
    held: list[arrow.RecordBatch] = []
    count = 0
    for size in sizes:
        while count < size:
            batch = next(batches, None)
            if batch is None:
                raise RuntimeError(f"the candidate lines ended {size - count:,} lines short")
            held.append(batch)
            count += batch.num_rows
        table = arrow.Table.from_batches(held)
        yield pl.DataFrame(table.slice(0, size))
        rest = table.slice(size)
        held, count = rest.to_batches(), rest.num_rows
        del table, rest
    if count + sum(batch.num_rows for batch in batches):
        raise RuntimeError("the candidate lines hold more lines than their skus count")


def _pieces(reader: arrow.RecordBatchReader, lines: int) -> Iterator[pl.DataFrame]:
    """The rows of `reader` in order, in pieces of `lines` lines (the last one fewer)."""
    held: list[pl.DataFrame] = []
    count = 0
    for batch in reader:
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


def _whole_chunks(folder: Path, places: list[int]) -> Iterator[pl.LazyFrame]:
    """The whole chunks in the order of `places`, each a scan of its file that puts each sku's
    lines together in arrival order when collected (the files stay until the chunks are done)."""
    for place in places:
        yield (
            pl.scan_ipc(folder / f"{place}.arrow").sort("sku_rank", "arrival_seq").select(_COLUMNS)
        )
