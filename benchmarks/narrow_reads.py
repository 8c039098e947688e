"""What narrow rows would cost the readers (issue 24, item 3): the reports' and analysts' queries
over views that rebuild the text columns from integer keys, against today's wide tables.

    python -m benchmarks.narrow_reads --warehouse WAREHOUSE.duckdb [--scratch DIR]

WAREHOUSE is an analysts' copy a night published. It is copied byte for byte into the scratch
folder (`wide`), and a second file (`narrow`) is built from it: `order_lines` and `allocations`
stored with integer keys for the sku, the batch, the file and the run (dimension tables beside
them), served under their own names by views with the same columns, and the `out_of_stock` view
as the warehouse defines it, over those views. Each query then runs against both files in turn,
read-only, at the night's DuckDB memory limit, its rows streamed as a report is; the wall and CPU
seconds, the rows and a digest of the rows in order are printed as JSON lines, with the storage
each layout's two tables take. The digests of the two layouts must agree: the views answer what
the tables do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb

MEMORY_LIMIT = "384MB"

#: The narrow tables, the views that serve them under today's names, and the dimensions.
NARROW_DDL = (
    "CREATE TABLE sku_keys AS SELECT (row_number() OVER (ORDER BY sku))::INTEGER AS sku_key, sku "
    "FROM (SELECT sku FROM w.order_lines UNION SELECT sku FROM w.batches)",
    "CREATE TABLE batches AS SELECT * FROM w.batches",
    "CREATE TABLE runs AS SELECT * FROM w.runs",
    "CREATE TABLE batch_keys AS SELECT (row_number() OVER (ORDER BY reference))::INTEGER "
    "AS batch_key, reference FROM batches",
    "CREATE TABLE file_keys AS SELECT (row_number() OVER (ORDER BY source_file))::INTEGER "
    "AS file_key, source_file FROM (SELECT DISTINCT source_file FROM w.order_lines "
    "WHERE source_file IS NOT NULL)",
    "CREATE TABLE run_keys AS SELECT (row_number() OVER (ORDER BY run_id))::INTEGER AS run_key, "
    "run_id FROM runs",
    "CREATE TABLE order_line_rows AS SELECT l.orderid, s.sku_key, l.qty, "
    "l.status = 'allocated' AS allocated, b.batch_key, l.first_seen, l.allocated_on, "
    "l.arrival_seq, f.file_key, l.source_line, r.run_key, l.line_key "
    "FROM w.order_lines l JOIN sku_keys s USING (sku) "
    "LEFT JOIN batch_keys b ON b.reference = l.batchref "
    "LEFT JOIN file_keys f USING (source_file) LEFT JOIN run_keys r USING (run_id) "
    "ORDER BY l.arrival_seq",
    "CREATE TABLE allocation_rows AS SELECT a.orderid, s.sku_key, a.qty, b.batch_key, a.eta, "
    "a.business_date, r.run_key, a.arrival_seq, a.released_on "
    "FROM w.allocations a JOIN sku_keys s USING (sku) "
    "JOIN batch_keys b ON b.reference = a.batchref JOIN run_keys r USING (run_id) "
    "ORDER BY a.arrival_seq",
    "CREATE VIEW order_lines AS SELECT l.orderid, s.sku, l.qty, "
    "CASE WHEN l.allocated THEN 'allocated' ELSE 'out_of_stock' END AS status, "
    "b.reference AS batchref, l.first_seen, l.allocated_on, l.arrival_seq, f.source_file, "
    "l.source_line, r.run_id, l.line_key "
    "FROM order_line_rows l JOIN sku_keys s USING (sku_key) LEFT JOIN batch_keys b USING (batch_key) "
    "LEFT JOIN file_keys f USING (file_key) LEFT JOIN run_keys r USING (run_key)",
    "CREATE VIEW allocations AS SELECT a.orderid, s.sku, a.qty, b.reference AS batchref, a.eta, "
    "a.business_date, r.run_id, a.arrival_seq, a.released_on "
    "FROM allocation_rows a JOIN sku_keys s USING (sku_key) JOIN batch_keys b USING (batch_key) "
    "JOIN run_keys r USING (run_key)",
)

#: Name -> query; `$day` is the last night. The first two are the night's reports as
#: `allocation.io.reports` asks them, the others questions analysts ask (docs/analysts.md).
QUERIES = {
    "allocations report": "SELECT orderid, sku, qty, batchref, eta, business_date, run_id "
    "FROM allocations WHERE business_date = $day ORDER BY arrival_seq, run_id",
    "out_of_stock report": "SELECT orderid, sku, qty, first_seen, "
    "greatest($day::DATE - first_seen, 0)::BIGINT AS days_waiting, available, shortfall, next_eta "
    "FROM out_of_stock ORDER BY arrival_seq",
    "allocated lines per sku": "SELECT sku, count(*) AS n, sum(qty) AS units FROM order_lines "
    "WHERE status = 'allocated' GROUP BY sku ORDER BY n DESC, sku LIMIT 10",
    "one order's lines": "SELECT * FROM order_lines "
    "WHERE orderid = (SELECT min(orderid) FROM order_lines) ORDER BY arrival_seq",
    "allocations per batch": "SELECT batchref, count(*) AS n, sum(qty) AS units "
    "FROM allocations GROUP BY batchref ORDER BY n DESC, batchref LIMIT 10",
}


def build(warehouse: Path, scratch: Path) -> tuple[Path, Path]:
    """The two files in `scratch` (emptied first): `wide.duckdb`, a byte copy of `warehouse`,
    and `narrow.duckdb` built from it."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    wide, narrow = scratch / "wide.duckdb", scratch / "narrow.duckdb"
    shutil.copyfile(warehouse, wide)
    con = duckdb.connect(str(narrow), config={"memory_limit": MEMORY_LIMIT})
    try:
        con.execute("ATTACH ? AS w (READ_ONLY)", [str(wide)])
        for statement in NARROW_DDL:
            con.execute(statement)
        view = con.sql(
            "SELECT sql FROM duckdb_views() WHERE database_name = 'w' AND view_name = 'out_of_stock'"
        ).fetchall()[0][0]
        con.execute(view)
        con.execute("DETACH w")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return wide, narrow


def storage_mib(path: Path, tables: tuple[str, ...]) -> float:
    """The storage blocks `tables` take in `path`, in MiB."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        size = con.sql("SELECT block_size FROM pragma_database_size()").fetchall()[0][0]
        blocks = 0
        for table in tables:
            blocks += con.sql(
                "SELECT count(DISTINCT block_id) FROM pragma_storage_info(?) WHERE block_id >= 0",
                params=[table],
            ).fetchall()[0][0]
    finally:
        con.close()
    return round(blocks * int(size) / 2**20, 1)


def measure(wide: Path, narrow: Path) -> list[dict[str, Any]]:
    """Every query against each layout in turn: one record per (layout, query)."""
    results: list[dict[str, Any]] = []
    for layout, path in (("wide", wide), ("narrow", narrow)):
        con = duckdb.connect(str(path), read_only=True, config={"memory_limit": MEMORY_LIMIT})
        try:
            day = con.sql("SELECT max(business_date) FROM runs").fetchall()[0][0]
            for name, sql in QUERIES.items():
                params = {"day": day} if "$day" in sql else {}
                wall, cpu = time.perf_counter(), time.process_time()
                rows = 0
                for batch in con.sql(sql, params=params).to_arrow_reader(500_000):
                    rows += batch.num_rows
                seconds, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results.append(
                    {
                        "layout": layout,
                        "query": name,
                        "rows": rows,
                        "seconds": round(seconds, 3),
                        "cpu_seconds": round(cpu, 3),
                        "digest": _digest(con, sql, params),
                    }
                )
        finally:
            con.close()
    return results


def _digest(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> str:
    """A digest of the query's rows in their order (not timed)."""
    found = con.sql(
        f"SELECT sum(hash(COLUMNS(*)) * n)::VARCHAR FROM (SELECT *, row_number() OVER () AS n "  # noqa: S608
        f"FROM ({sql}))",
        params=params,
    ).fetchall()[0]
    return ",".join(str(value) for value in found)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--scratch", type=Path, default=Path("narrow-reads-scratch"))
    args = parser.parse_args(argv)
    wide, narrow = build(args.warehouse, args.scratch)
    try:
        sizes = {
            "wide": storage_mib(wide, ("order_lines", "allocations")),
            "narrow": storage_mib(
                narrow,
                ("order_line_rows", "allocation_rows", "sku_keys", "batch_keys", "file_keys"),
            ),
        }
        print(json.dumps({"storage_mib": sizes}))
        for record in measure(wide, narrow):
            print(json.dumps(record))
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
