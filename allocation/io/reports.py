"""The night's reports, read from warehouse state (committed, or the open transaction of a dry run).

Reports are derived, never accumulated: a night's folder can be rebuilt at any time from the
warehouse, which is what makes a rerun after a crash produce complete files.

A report is read as a stream of chunks (`report_chunks`), each validated against its pandera
model before anyone sees it: a night of ten million order lines never sits in memory whole.
The night's `summary.json` is read the same way, by `allocation.io.night_summary`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import duckdb
import pandera.errors
import pandera.polars as pa
import polars as pl
import pyarrow as arrow
import pyarrow.compute as compute

from allocation.io import schemas
from allocation.io.readers.discovery import TEMPORARY_NAME

#: Rows per chunk of a report handed on: big enough that a validation call's fixed cost does not count, small enough
#: that the few copies of a chunk held at once (DuckDB's slice, polars, neutralised text, Arrow
#: for Parquet) stay small (docs/benchmarks.md).
REPORT_CHUNK_ROWS = 500_000

#: Whether a later run of the same business date loaded the file `{file}` that run `{run}`
#: rejected whole (unreadable, then its permissions fixed; a bad export, then re-sent under the
#: same name) or left waiting (under that name, or an upload's temporary name such as
#: `o1.csv.part` loaded as `o1.csv`): that entry no longer describes the date, so the date's
#: rejected.csv and summary leave it out. The warehouse keeps it (`rejected_rows`,
#: `ingested_files`). Takes `$temporary`: `TEMPORARY_NAME`.
LOADED_LATER = (
    "EXISTS (SELECT 1 FROM ingested_files AS later JOIN runs AS later_run USING (run_id), "
    "runs AS this_run WHERE this_run.run_id = {run} AND later.business_date = {day} "
    "AND later.file_name IN ({file}, regexp_replace({file}, $temporary, '')) "
    "AND later.status = 'loaded' AND later_run.started_at > this_run.started_at)"
)

REPORT_SQL: dict[str, tuple[type[pa.DataFrameModel], str]] = {
    "allocations": (
        schemas.AllocationReport,
        "SELECT orderid, sku, qty, batchref, eta, business_date, run_id FROM allocations "
        "WHERE business_date = $day ORDER BY arrival_seq, run_id",
    ),
    "out_of_stock": (
        schemas.OutOfStockReport,
        "SELECT orderid, sku, qty, first_seen, greatest($day::DATE - first_seen, 0)::BIGINT "
        "AS days_waiting, available, shortfall, next_eta FROM out_of_stock ORDER BY arrival_seq",
    ),
    "rejected": (
        schemas.RejectedReport,
        "SELECT kind, source_file, line, reason, raw FROM rejected_rows AS r "  # noqa: S608
        "WHERE business_date = $day AND NOT (line IS NULL AND "
        + LOADED_LATER.format(file="r.source_file", run="r.run_id", day="$day")
        + ") ORDER BY kind DESC, source_file, line NULLS FIRST, reason",
    ),
    "reallocations": (
        schemas.ReallocationReport,
        "SELECT orderid, sku, qty, from_batchref, to_batchref, reason, business_date "
        "FROM reallocations WHERE business_date = $day ORDER BY run_id, orderid, sku",
    ),
}


def report_params(name: str, day: dt.date) -> dict[str, object]:
    """`REPORT_SQL[name]`'s parameters: the date, and for rejected.csv the upload names."""
    return {"day": day, "temporary": TEMPORARY_NAME} if name == "rejected" else {"day": day}


@dataclass(frozen=True)
class SlicedReport:
    """The SQL of a report read in slices of `arrival_seq`, its first sort key."""

    #: One slice, `$lo <= arrival_seq < $hi`, rows as stored.
    slice: str
    #: What puts a slice in report order.
    order: str
    #: `arrival_seq` bounds and row count per bucket of `arrival_seq // $width`, in order.
    bounds: str
    #: The report's `arrival_seq` alone, as stored.
    keys: str


#: Allocations, the report that grows with the night, are read in slices of `arrival_seq`, each
#: sorted by DuckDB on its own: sorting the whole night at once held too much memory. Same rows
#: and order as `REPORT_SQL`. (`out_of_stock` is read whole: each slice would re-run the view's
#: joins; docs/benchmarks.md has both measurements.)
#:
#: On a usual night the slices need no sort: recording appends a run's allocations in
#: `arrival_seq` order, one row per line, and DuckDB hands a table's rows out in the order they
#: were stored when no ORDER BY is asked (`preserve_insertion_order`, on by default and never
#: turned off here). So the slices are read as stored once a first pass over the day's
#: `arrival_seq` alone has found it strictly increasing (`stored_in_report_order`); a date run
#: twice, which places earlier lines after later ones, or a line released and placed again the
#: same day (two rows) is sorted. Sorting 9M rows cost more than reading their keys once more
#: (docs/benchmarks.md, "The allocations report read as stored").
SLICE_SQL: dict[str, SlicedReport] = {
    "allocations": SlicedReport(
        slice="SELECT orderid, sku, qty, batchref, eta, business_date, run_id FROM allocations "
        "WHERE business_date = $day AND arrival_seq >= $lo AND arrival_seq < $hi",
        order=" ORDER BY arrival_seq, run_id",
        bounds="SELECT min(arrival_seq), max(arrival_seq), count(*) FROM allocations "
        "WHERE business_date = $day GROUP BY arrival_seq // $width ORDER BY 1 NULLS LAST",
        keys="SELECT arrival_seq FROM allocations WHERE business_date = $day",
    ),
}


def report_chunks(
    con: duckdb.DuckDBPyConnection,
    name: str,
    day: dt.date,
    *,
    rows: int | None = None,
) -> Generator[pl.DataFrame, None, None]:
    """One report of the night in report order, about `rows` (default `REPORT_CHUNK_ROWS`) rows at a
    time, each chunk validated against the report's model before it is handed on.

    Only the chunk being handed on is held in Python, and DuckDB sorts no more than a slice of
    the big reports (`SLICE_SQL`) at a time. An empty report is one empty chunk, so its columns
    and types are checked and a writer still gets a header. A bad chunk raises pandera's
    `SchemaErrors`; its `failure_cases.index` counts from the chunk's first row, and a note on
    the error says which row of the report that is.

    While the generator is open, `con` runs nothing else: exhaust or `close()` it first.
    """
    model = REPORT_SQL[name][0]
    rows = rows or REPORT_CHUNK_ROWS
    first_row = 0
    for frame in _frames(con, name, day, rows):
        try:
            checked: pl.DataFrame = model.validate(frame, lazy=True)
        except pandera.errors.SchemaErrors as error:
            error.add_note(
                f"{name} report of {day}: chunk of rows {first_row}.."
                f"{first_row + frame.height - 1} (0-based); failure_cases.index counts from "
                f"row {first_row}"
            )
            raise
        yield checked
        first_row += frame.height


def _frames(
    con: duckdb.DuckDBPyConnection, name: str, day: dt.date, rows: int
) -> Generator[pl.DataFrame, None, None]:
    """The report's rows in order, in frames of about `rows` rows; at least one frame."""
    bounds = _slices(con, name, day, rows) if name in SLICE_SQL else None
    if bounds is not None:
        sliced = SLICE_SQL[name]
        stored = stored_in_report_order(con, name, day, rows)
        sql = sliced.slice if stored else sliced.slice + sliced.order
        for low, high in bounds:
            frame: pl.DataFrame = con.sql(sql, params={"day": day, "lo": low, "hi": high}).pl()
            yield frame
        return
    # One sorted stream: the other reports, or allocations with rows lacking a key.
    reader = con.sql(REPORT_SQL[name][1], params=report_params(name, day)).to_arrow_reader(rows)
    try:
        for table in _gathered(reader, rows):
            yield pl.DataFrame(table)
    finally:
        reader.close()  # else the connection refuses every statement, ROLLBACK included


def stored_in_report_order(
    con: duckdb.DuckDBPyConnection, name: str, day: dt.date, rows: int = REPORT_CHUNK_ROWS
) -> bool:
    """Whether the rows of report `name` (one of `SLICE_SQL`), as stored, are already in the
    report's order: every row has an `arrival_seq` and each is larger than the one stored before
    it (so no two rows share one, and the second sort key never decides). Reads that one column
    a slice of about `rows` at a time."""
    reader = con.sql(SLICE_SQL[name].keys, params={"day": day}).to_arrow_reader(rows)
    last: int | None = None
    try:
        for batch in reader:
            keys = batch.column(0)
            if keys.null_count:
                return False
            if len(keys) == 0:
                continue
            if last is not None and keys[0].as_py() <= last:
                return False
            if not _increasing(keys):
                return False
            last = keys[-1].as_py()
    finally:
        reader.close()
    return True


def _increasing(keys: arrow.Array) -> bool:
    """Whether each of `keys` (no nulls) is larger than the one before it."""
    later, earlier = keys.slice(1), keys.slice(0, len(keys) - 1)
    return len(keys) < 2 or bool(compute.all(compute.greater(later, earlier)).as_py())


def _slices(
    con: duckdb.DuckDBPyConnection, name: str, day: dt.date, rows: int
) -> list[tuple[int, int]] | None:
    """`[low, high)` bounds of `arrival_seq` cutting the report into consecutive slices of about
    `rows` rows (at least one slice); None if a row has no `arrival_seq` (never written so)."""
    sql = SLICE_SQL[name].bounds
    width = max(1, rows // 8)  # a slice overshoots `rows` by less than a bucket
    buckets = con.sql(sql, params={"day": day, "width": width}).fetchall()
    if any(low is None for low, _high, _count in buckets):
        return None
    if not buckets:
        return [(0, 0)]
    slices: list[tuple[int, int]] = []
    start: int | None = None
    held = 0
    for low, high, count in buckets:
        start = low if start is None else start
        held += count
        if held >= rows:
            slices.append((start, high + 1))
            start, held = None, 0
    if start is not None:
        slices.append((start, buckets[-1][1] + 1))
    return slices


def _gathered(reader: arrow.RecordBatchReader, rows: int) -> Iterator[arrow.Table]:
    """DuckDB hands a sorted result over in smaller batches than `rows` asks for, and per-chunk
    costs (a validation call) call for bigger chunks. Yields at least one table,
    empty for an empty result, and keeps no reference to what it yielded."""
    batches: list[arrow.RecordBatch] = []
    held = 0
    yielded = False
    for batch in reader:
        batches.append(batch)
        held += batch.num_rows
        if held >= rows:
            yielded = True
            held = 0
            yield _take(batches, reader.schema)
    if batches or not yielded:
        yield _take(batches, reader.schema)


def _take(batches: list[arrow.RecordBatch], schema: arrow.Schema) -> arrow.Table:
    table = arrow.Table.from_batches(batches, schema=schema)
    batches.clear()
    return table
