"""The night's reports, read from warehouse state (committed, or the open transaction of a dry run).

Reports are derived, never accumulated: a night's folder can be rebuilt at any time from the
warehouse, which is what makes a rerun after a crash produce complete files.

A report is read as a stream of chunks (`report_chunks`), each validated against its pandera
model before anyone sees it: a night of ten million order lines never sits in memory whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator
from typing import Any

import duckdb
import pandera.errors
import pandera.polars as pa
import polars as pl
import pyarrow as arrow

from allocation.io import schemas
from allocation.io.readers.discovery import TEMPORARY_NAME

#: Rows per chunk. A validation call costs ~10 ms whatever its size; a chunk is held a few
#: times over (DuckDB's slice, polars, neutralised text, Arrow for Parquet) at ~85 MB per
#: million allocations. At 10M order lines 500k kept the step at ~0.6-0.75 GB over its
#: baseline (1M: ~0.95 GB) for the same CPU.
CHUNK_ROWS = 500_000

SUMMARY_COUNTS = (
    "orders_received",
    "orders_accepted",
    "orders_duplicate",
    "orders_rejected",
    "batches_received",
    "batches_accepted",
    "batches_duplicate",
    "batches_rejected",
    "batches_updated",
    "eta_changes",
    "qty_increases",
    "qty_decreases",
    "cancellations",
    "lines_released",
    "lines_replaced",
    "files_received",
    "files_rejected",
    "files_skipped",
)


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


#: Allocations, the report that grows with the night, are read in slices of `arrival_seq`, their
#: first sort key, each slice sorted by DuckDB on its own: sorting the whole night held ~1.4 GB
#: at 10M order lines. Same rows and order as `REPORT_SQL`. (Slicing `out_of_stock`, ~1M rows
#: there, cost 0.7 s of CPU more than its 0.3 s whole: each slice re-runs the view's joins.)
#: Name -> (one slice, `$lo <= arrival_seq < $hi`, in report order;
#:          `arrival_seq` bounds and row count per bucket of `arrival_seq // $width`, in order).
SLICE_SQL: dict[str, tuple[str, str]] = {
    "allocations": (
        "SELECT orderid, sku, qty, batchref, eta, business_date, run_id FROM allocations "
        "WHERE business_date = $day AND arrival_seq >= $lo AND arrival_seq < $hi "
        "ORDER BY arrival_seq, run_id",
        "SELECT min(arrival_seq), max(arrival_seq), count(*) FROM allocations "
        "WHERE business_date = $day GROUP BY arrival_seq // $width ORDER BY 1 NULLS LAST",
    ),
}


def report_chunks(
    con: duckdb.DuckDBPyConnection,
    name: str,
    day: dt.date,
    *,
    rows: int | None = None,
) -> Generator[pl.DataFrame, None, None]:
    """One report of the night in report order, about `rows` (default `CHUNK_ROWS`) rows at a
    time, each chunk validated against the report's model before it is handed on.

    Only the chunk being handed on is held in Python, and DuckDB sorts no more than a slice of
    the big reports (`SLICE_SQL`) at a time. An empty report is one empty chunk, so its columns
    and types are checked and a writer still gets a header. A bad chunk raises pandera's
    `SchemaErrors`; its `failure_cases.index` counts from the chunk's first row, and a note on
    the error says which row of the report that is.

    While the generator is open, `con` runs nothing else: exhaust or `close()` it first.
    """
    model = REPORT_SQL[name][0]
    rows = rows or CHUNK_ROWS
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
        sql = SLICE_SQL[name][0]
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


def _slices(
    con: duckdb.DuckDBPyConnection, name: str, day: dt.date, rows: int
) -> list[tuple[int, int]] | None:
    """`[low, high)` bounds of `arrival_seq` cutting the report into consecutive slices of about
    `rows` rows (at least one slice); None if a row has no `arrival_seq` (never written so)."""
    sql = SLICE_SQL[name][1]
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
    """DuckDB hands a sorted result over in batches of ~120k rows whatever `rows` asks for, and
    per-chunk costs (a validation is ~10 ms) call for bigger chunks. Yields at least one table,
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


def summary(con: duckdb.DuckDBPyConnection, day: dt.date) -> dict[str, Any]:
    """Counts of every run of `day` added up (a rerun after a crash only adds what was missing),
    plus the state at the end: allocations of the night and lines still open."""
    sums = ", ".join(f"coalesce(sum({c}), 0)::BIGINT" for c in SUMMARY_COUNTS)
    row = con.sql(
        f"SELECT {sums} FROM runs WHERE business_date = ? AND status = 'completed'",  # noqa: S608
        params=[day],
    ).fetchall()[0]
    counts = dict(zip(SUMMARY_COUNTS, row, strict=True))
    runs = con.sql(
        "SELECT run_id FROM runs WHERE business_date = ? AND status = 'completed' "
        "ORDER BY started_at",
        params=[day],
    ).fetchall()
    files = con.sql(
        "SELECT kind, file_name, status, reason, sha256 <> '' AS was_read, "  # noqa: S608
        + LOADED_LATER.format(file="f.file_name", run="f.run_id", day="$day")
        + " AS loaded_later FROM ingested_files AS f WHERE business_date = $day "
        "ORDER BY kind DESC, file_name",
        params={"day": day, "temporary": TEMPORARY_NAME},
    ).fetchall()
    # A file rejected whole and loaded by a later run of the date is no longer rejected.
    counts["files_rejected"] -= sum(
        1 for _kind, _name, status, _reason, _read, later in files if status == "rejected" and later
    )
    allocated = con.sql(
        "SELECT count(*) FROM allocations WHERE business_date = ?", params=[day]
    ).fetchall()[0][0]
    open_lines = con.sql(
        "SELECT count(*) FROM order_lines WHERE status = 'out_of_stock'"
    ).fetchall()
    last_run = runs[-1][0] if runs else None
    return {
        "business_date": day.isoformat(),
        "run_id": runs[-1][0] if runs else None,
        "runs": [r[0] for r in runs],
        "orders": {
            k: counts[f"orders_{k}"] for k in ("received", "accepted", "duplicate", "rejected")
        },
        "batches": {
            **{
                k: counts[f"batches_{k}"] for k in ("received", "accepted", "duplicate", "rejected")
            },
            "updated": {
                "eta": counts["eta_changes"],
                "qty_up": counts["qty_increases"],
                "qty_down": counts["qty_decreases"],
                "cancelled": counts["cancellations"],
            },
        },
        "allocated": int(allocated),
        "out_of_stock": int(open_lines[0][0]),
        "lines_released": counts["lines_released"],
        "lines_replaced": counts["lines_replaced"],
        "files": {
            "received": counts["files_received"],
            "rejected": counts["files_rejected"],
            "skipped_already_ingested": counts["files_skipped"],
            "rejected_files": [
                {"file": f"{name}", "reason": reason}
                for _kind, name, status, reason, _read, later in files
                if status == "rejected" and not later
            ],
            **_entries_not_read(files),
        },
        "warnings": _inbox_warnings(files),
        "checks": night_check_rows(con, last_run),
        "trend": trend_rows(con, day),
    }


def _entries_not_read(files: list[tuple[Any, ...]]) -> dict[str, Any]:
    """What the date's runs did with the inbox's entries (`ingested_files`): files read (their
    rows loaded, or the file rejected after reading), and the entries ignored (in the wrong
    place, hidden, a backup) or waiting (still being written when the night looked; not listed
    once a later run of the date read them, under that name or, for an upload's temporary name
    such as `o1.csv.part`, under its final name `o1.csv`)."""
    read = {name for _kind, name, _status, _reason, was_read, _later in files if was_read}
    not_read = [
        {"file": name, "status": status, "reason": reason}
        for _kind, name, status, reason, _read, later in files
        if status == "ignored" or (status == "waiting" and name not in read and not later)
    ]
    return {
        "read": sum(1 for _k, _n, _s, _r, was_read, _l in files if was_read),
        "order_files_read": sum(
            1 for kind, _n, _s, _r, was_read, _l in files if was_read and kind == "orders"
        ),
        "ignored": sum(1 for entry in not_read if entry["status"] == "ignored"),
        "waiting": sum(1 for entry in not_read if entry["status"] == "waiting"),
        "not_read": not_read,
    }


def _inbox_warnings(files: list[tuple[Any, ...]]) -> list[str]:
    """What a person must look at in the date's inbox, in words: no order file at all, files
    left for a later run, entries never read."""
    entries = _entries_not_read(files)
    warnings = []
    if not entries["order_files_read"]:
        warnings.append(
            "no order file was read for this date: order files go in the inbox's orders/ "
            "folder (.csv, .parquet or .jsonl); only lines already waiting were allocated"
        )
    if entries["waiting"]:
        warnings.append(
            f"{entries['waiting']} file(s) still being written were left for a later run: "
            "see files.not_read"
        )
    if entries["ignored"]:
        warnings.append(
            f"{entries['ignored']} inbox entr{'y' if entries['ignored'] == 1 else 'ies'} in the "
            "wrong place (or hidden) were not read: see files.not_read and rejected.csv"
        )
    return warnings


#: Nights the summary's trend shows (the artifact draws a sparkline per column).
TREND_NIGHTS = 14
TREND_COLUMNS = (
    "received",
    "accepted",
    "rejected",
    "allocated",
    "out_of_stock",
    "lines_waiting",
    "oldest_wait_days",
)


def night_check_rows(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[dict[str, Any]]:
    """The checks the night's latest run made: check, level, figure, threshold, result, detail."""
    rows = con.sql(
        "SELECT check_name, level, figure, threshold, result, detail FROM night_checks "
        "WHERE run_id = ? ORDER BY rowid",
        params=[run_id],
    ).fetchall()
    keys = ("check", "level", "figure", "threshold", "result", "detail")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def trend_rows(con: duckdb.DuckDBPyConnection, day: dt.date) -> list[dict[str, Any]]:
    """The last 14 committed nights up to `day`, oldest first (the `nightly_trend` view)."""
    columns = ", ".join(TREND_COLUMNS)
    rows = con.sql(
        f"SELECT business_date, {columns} FROM nightly_trend "  # noqa: S608 (constant names)
        "WHERE business_date <= ? ORDER BY business_date DESC LIMIT ?",
        params=[day, TREND_NIGHTS],
    ).fetchall()
    return [
        {"business_date": row[0].isoformat(), **dict(zip(TREND_COLUMNS, row[1:], strict=True))}
        for row in reversed(rows)
    ]
