"""What recording a night costs, and what attaching the decision by position would buy.

    python -m benchmarks.recording --warehouse WAREHOUSE.duckdb [--no-columns]

WAREHOUSE is the analysts' copy a night published (`make bench --keep` leaves one per size).
Its `order_lines` stand for a night: their text is copied into a scratch DuckDB file (in the
analysts' storage version, as the working state is) three ways, each in one transaction rolled
back afterwards, and the wall and CPU seconds of each are printed as JSON lines:

- `column <name>`: storing that one column of every line (what each column costs to write);
- `join`: today's recording of `order_lines` (`DuckDBRepository.record_placements`): range by
  range of `arrival_seq`, the placements joined back to the lines, the batch's reference joined
  in, `ORDER BY arrival_seq`;
- `positional`: the same rows with the decision attached by DuckDB's `POSITIONAL JOIN` (the
  decision as a column in arrival order, one row per line);
- `arrow`: the decision attached by position in Arrow (the range's lines and its decisions read
  in arrival order, the reference gathered by batch number), the rows inserted from Arrow.

Each way writes the same rows; the run checks that their digests agree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

#: The warehouse's `order_lines` as the recording writes them.
COLUMNS = (
    "orderid VARCHAR, sku VARCHAR, qty BIGINT, status VARCHAR, batchref VARCHAR, "
    "first_seen DATE, allocated_on DATE, arrival_seq BIGINT, source_file VARCHAR, "
    "source_line BIGINT, run_id VARCHAR, line_key UBIGINT"
)
#: The same lines with integer keys for the sku, the batch, the file and the run, the status
#: told by the batch (item 3 of issue 24, "narrow rows"): only the order id stays text.
NARROW_COLUMNS = (
    "orderid VARCHAR, sku INTEGER, qty BIGINT, batch INTEGER, first_seen DATE, "
    "allocated_on DATE, arrival_seq BIGINT, source_file INTEGER, source_line BIGINT, "
    "run INTEGER, line_key UBIGINT"
)
TEXT_COLUMNS = ("orderid", "sku", "status", "batchref", "source_file", "run_id")
DAY = dt.date(2026, 11, 26)
RUN = "00000000-0000-4000-8000-000000000000"
#: Lines recorded per statement, as `allocation.io.night_tables.RECORD_ROWS`.
RANGE_ROWS = 1_000_000


def prepare(
    con: duckdb.DuckDBPyConnection, warehouse: Path, scratch: Path
) -> list[tuple[int, int]]:
    """TEMP tables standing for a night in `con`: `night` (its lines in arrival order, as
    staged), `refs` (batch number, reference), `placements` (arrival_seq, batch of each line
    placed, in arrival order) and `decisions` (arrival_seq, batch or NULL of every line, in
    arrival order); the scratch file attached as `dst` with an empty `ol`. Returns the ranges
    of `arrival_seq` [low, high) to record."""
    con.execute("ATTACH ? AS src (READ_ONLY)", [str(warehouse)])
    con.execute(
        "CREATE TEMP TABLE night AS SELECT orderid, sku, qty, arrival_seq, source_file, "
        "source_line AS line, line_key AS key_hash, dense_rank() OVER (ORDER BY sku)::INTEGER "
        "AS sku_key, dense_rank() OVER (ORDER BY source_file)::INTEGER AS file_key "
        "FROM src.order_lines ORDER BY arrival_seq"
    )
    con.execute(
        "CREATE TEMP TABLE refs AS SELECT (row_number() OVER (ORDER BY reference) - 1)::BIGINT "
        "AS batch, reference FROM src.batches ORDER BY batch"
    )
    con.execute(
        "CREATE TEMP TABLE decisions AS SELECT o.arrival_seq, r.batch FROM src.order_lines o "
        "LEFT JOIN refs r ON r.reference = o.batchref ORDER BY o.arrival_seq"
    )
    con.execute(
        "CREATE TEMP TABLE placements AS SELECT arrival_seq, batch FROM decisions "
        "WHERE batch IS NOT NULL ORDER BY arrival_seq"
    )
    con.execute("ATTACH ? AS dst (STORAGE_VERSION 'v1.1.0')", [str(scratch)])
    con.execute(f"CREATE TABLE dst.ol ({COLUMNS})")
    con.execute(f"CREATE TABLE dst.narrow ({NARROW_COLUMNS})")
    low, high = con.sql("SELECT min(arrival_seq), max(arrival_seq) + 1 FROM night").fetchall()[0]
    return [(start, min(high, start + RANGE_ROWS)) for start in range(low, high, RANGE_ROWS)]


def by_join(con: duckdb.DuckDBPyConnection, ranges: list[tuple[int, int]]) -> None:
    for low, high in ranges:
        con.execute(
            "INSERT INTO dst.ol SELECT n.orderid, n.sku, n.qty, "
            "CASE WHEN r.reference IS NULL THEN 'out_of_stock' ELSE 'allocated' END, r.reference, "
            "$day, CASE WHEN r.reference IS NULL THEN NULL ELSE $day END, "
            "n.arrival_seq, n.source_file, n.line, $run, hash(n.orderid, n.sku) "
            "FROM (SELECT * FROM night WHERE arrival_seq >= $low AND arrival_seq < $high) n "
            "LEFT JOIN (SELECT * FROM placements WHERE arrival_seq >= $low AND arrival_seq < $high)"
            " p USING (arrival_seq) LEFT JOIN refs r ON r.batch = p.batch "
            "ORDER BY n.arrival_seq",
            {"day": DAY, "run": RUN, "low": low, "high": high},
        )


def by_positional_join(con: duckdb.DuckDBPyConnection, ranges: list[tuple[int, int]]) -> None:
    for low, high in ranges:
        con.execute(
            "INSERT INTO dst.ol SELECT n.orderid, n.sku, n.qty, "
            "CASE WHEN d.reference IS NULL THEN 'out_of_stock' ELSE 'allocated' END, d.reference, "
            "$day, CASE WHEN d.reference IS NULL THEN NULL ELSE $day END, "
            "CASE WHEN n.arrival_seq = d.arrival_seq THEN n.arrival_seq "
            "ELSE error('the decisions are not aligned with the lines') END, "
            "n.source_file, n.line, $run, n.key_hash "
            "FROM (SELECT * FROM night WHERE arrival_seq >= $low AND arrival_seq < $high) n "
            "POSITIONAL JOIN (SELECT d.arrival_seq, r.reference FROM decisions d "
            "LEFT JOIN refs r USING (batch) WHERE d.arrival_seq >= $low AND d.arrival_seq < $high "
            "ORDER BY d.arrival_seq) d",
            {"day": DAY, "run": RUN, "low": low, "high": high},
        )


def in_arrival_order(
    con: duckdb.DuckDBPyConnection, low: int, high: int, text: bool
) -> tuple[pl.DataFrame, pl.Series]:
    """The lines of one range and each one's batch number (null: out of stock), both read in
    arrival order and checked to line up; the lines' sku and file as text, or as their keys."""
    sku, source_file = ("sku", "source_file") if text else ("sku_key", "file_key")
    bounds = {"low": low, "high": high}
    lines = con.sql(
        f"SELECT orderid, {sku}, qty, arrival_seq, {source_file}, line, key_hash FROM night "  # noqa: S608
        "WHERE arrival_seq >= $low AND arrival_seq < $high",
        params=bounds,
    ).pl()
    decided = con.sql(
        "SELECT arrival_seq, batch FROM decisions WHERE arrival_seq >= $low AND arrival_seq < $high",
        params=bounds,
    ).pl()
    if not lines["arrival_seq"].equals(decided["arrival_seq"]):
        raise RuntimeError("the decisions are not aligned with the lines")
    return lines, decided["batch"]


def by_arrow(con: duckdb.DuckDBPyConnection, ranges: list[tuple[int, int]]) -> None:
    references = con.sql("SELECT reference FROM refs ORDER BY batch").pl().to_series()
    for low, high in ranges:
        lines, batch = in_arrival_order(con, low, high, text=True)
        reference = references.gather(batch)
        placed = reference.is_not_null()
        rows = lines.select(
            "orderid",
            "sku",
            "qty",
            pl.when(placed)
            .then(pl.lit("allocated"))
            .otherwise(pl.lit("out_of_stock"))
            .alias("status"),
            reference.alias("batchref"),
            pl.lit(DAY).alias("first_seen"),
            pl.when(placed).then(pl.lit(DAY)).alias("allocated_on"),
            "arrival_seq",
            "source_file",
            pl.col("line").alias("source_line"),
            pl.lit(RUN).alias("run_id"),
            pl.col("key_hash").alias("line_key"),
        )
        con.from_arrow(rows.to_arrow()).insert_into("dst.ol")


def narrow(con: duckdb.DuckDBPyConnection, ranges: list[tuple[int, int]]) -> None:
    """As `by_arrow`, into narrow rows (`NARROW_COLUMNS`); written as wide rows too, afterwards
    and untimed, so that its digest can be compared."""
    for low, high in ranges:
        lines, decided = in_arrival_order(con, low, high, text=False)
        batch = decided.cast(pl.Int32)
        rows = lines.select(
            "orderid",
            pl.col("sku_key").alias("sku"),
            "qty",
            batch.alias("batch"),
            pl.lit(DAY).alias("first_seen"),
            pl.when(batch.is_not_null()).then(pl.lit(DAY)).alias("allocated_on"),
            "arrival_seq",
            pl.col("file_key").alias("source_file"),
            pl.col("line").alias("source_line"),
            pl.lit(1, dtype=pl.Int32).alias("run"),
            pl.col("key_hash").alias("line_key"),
        )
        con.from_arrow(rows.to_arrow()).insert_into("dst.narrow")


def one_column(name: str) -> Callable[[duckdb.DuckDBPyConnection, list[tuple[int, int]]], None]:
    """Stores one column of the warehouse's `order_lines` as it is (`name` is one of
    `TEXT_COLUMNS`, never input)."""

    def store(con: duckdb.DuckDBPyConnection, ranges: list[tuple[int, int]]) -> None:
        del ranges
        con.execute(f"CREATE TABLE dst.c AS SELECT {name} FROM src.order_lines LIMIT 0")  # noqa: S608
        con.execute(f"INSERT INTO dst.c SELECT {name} FROM src.order_lines")  # noqa: S608

    return store


@contextmanager
def timed(label: str, into: list[dict[str, Any]]) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    into.append(
        {
            "way": label,
            "seconds": round(time.perf_counter() - wall, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3),
        }
    )


def measure(warehouse: Path, scratch: Path, columns: bool = True) -> list[dict[str, Any]]:
    """Every way, in turn, on one connection (DuckDB's memory limit as the night's default);
    returns one record per way with `digest`, the digest of the rows it wrote (`None` for the
    single columns)."""
    for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(config={"memory_limit": "384MB"})
    results: list[dict[str, Any]] = []
    try:
        ranges = prepare(con, warehouse, scratch)
        ways: list[tuple[str, Callable[[duckdb.DuckDBPyConnection, list[tuple[int, int]]], None]]]
        ways = [
            ("join", by_join),
            ("positional", by_positional_join),
            ("arrow", by_arrow),
            ("narrow", narrow),
        ]
        if columns:
            ways += [(f"column {name}", one_column(name)) for name in TEXT_COLUMNS]
        for label, way in ways:
            con.execute("BEGIN")
            with timed(label, results):
                way(con, ranges)
            if label == "narrow":
                by_arrow(con, ranges)
            digest = None
            if not label.startswith("column"):
                digest = con.sql(
                    "SELECT sum(h * n)::VARCHAR FROM (SELECT hash(orderid, sku, qty, status, "
                    "batchref, first_seen, allocated_on, arrival_seq, source_file, source_line, "
                    "run_id)::HUGEINT AS h, row_number() OVER () AS n FROM dst.ol)"
                ).fetchall()[0][0]
            results[-1]["digest"] = digest
            con.execute("ROLLBACK")
    finally:
        con.close()
        for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=Path("recording-scratch.duckdb"))
    parser.add_argument("--no-columns", action="store_true", help="skip the single columns")
    args = parser.parse_args(argv)
    results = measure(args.warehouse, args.scratch, columns=not args.no_columns)
    for result in results:
        print(json.dumps(result))
    digests = {r["digest"] for r in results if r["digest"] is not None}
    if len(digests) != 1:
        raise SystemExit(f"the ways wrote different rows: {sorted(digests)}")


if __name__ == "__main__":
    main()
