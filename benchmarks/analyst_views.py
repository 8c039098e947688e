"""How fast the analysts' views and documented queries answer on a warehouse of many nights.

Builds a warehouse with the pipeline's own schema (every table, view, macro and comment of the
current version) and fills it with synthetic history in SQL: ``--nights`` nights of
``--lines`` new order lines each, 3,000 skus, about 90 % of lines placed within three nights,
2 % of placements released by a manifest cut the next night and placed again the night after.
Then runs every ```sql block of docs/analysts.md and ``open_lines_asof`` on the first, middle and
last night, best of three each, and prints the times. The views are computed when queried, so a
night pays nothing for them (the only per-night work is coding the night's rejections, one
UPDATE over that run's rejected rows).

    python -m benchmarks.analyst_views --nights 100 --lines 30000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import tempfile
import time
from pathlib import Path

import duckdb

from allocation.io.warehouse_schema import migrate

DOC = Path(__file__).resolve().parents[1] / "docs" / "analysts.md"
FIRST_NIGHT = dt.date(2026, 1, 1)

_FILL = """
INSERT INTO runs (run_id, business_date, started_at, finished_at, status, orders_received,
    orders_accepted, orders_duplicate, orders_rejected, batches_received, batches_accepted,
    batches_duplicate, batches_rejected, allocated, out_of_stock, files_received, files_rejected,
    files_skipped, input_files, rejected_files)
SELECT 'run-' || n, $first + n::INTEGER, TIMESTAMP '2026-01-01' + INTERVAL (n) DAY,
       TIMESTAMP '2026-01-01' + INTERVAL (n) DAY, 'completed', $lines, $lines, 0, 0, 100, 100,
       0, 0, 0, 0, 2, 0, 0, ['orders/x.csv'], []
FROM range($nights) t(n);

INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen)
SELECT 'B' || i, 'SKU-' || (i % 3000), CASE WHEN i % 2 = 0 THEN NULL
       ELSE $first + (i % $nights)::INTEGER END, 1000000, 0, $first
FROM range(30000) t(i);

CREATE TEMP TABLE placed AS
SELECT i, 'o' || i AS orderid, 'SKU-' || (i % 3000) AS sku, 1 + i % 5 AS qty,
       $first + (i // $lines)::INTEGER AS first_seen,
       $first + (i // $lines)::INTEGER + (hash(i) % 3)::INTEGER AS placed_on,
       hash(i) % 10 = 0 AS stays_open, hash(i * 7) % 50 = 0 AS released,
       'B' || (i % 3000 + 3000 * (hash(i) % 10)::INTEGER) AS batchref
FROM range($nights * $lines) t(i);

INSERT INTO allocations (orderid, sku, qty, batchref, eta, business_date, run_id, arrival_seq,
    released_on)
SELECT orderid, sku, qty, batchref, NULL, placed_on, 'run-' || (placed_on - $first), i,
       CASE WHEN released THEN placed_on + 1 END
FROM placed WHERE NOT stays_open AND placed_on < $first + $nights
UNION ALL
SELECT orderid, sku, qty, batchref, NULL, placed_on + 2, 'run-' || (placed_on + 2 - $first), i,
       NULL
FROM placed WHERE NOT stays_open AND released AND placed_on + 2 < $first + $nights;

INSERT INTO order_lines (orderid, sku, qty, status, batchref, first_seen, allocated_on,
    arrival_seq, source_file, source_line, run_id)
SELECT p.orderid, p.sku, p.qty,
       CASE WHEN a.orderid IS NULL THEN 'out_of_stock' ELSE 'allocated' END,
       a.batchref, p.first_seen, a.business_date, p.i, 'orders/x.csv', p.i,
       'run-' || (p.first_seen - $first)
FROM placed p
LEFT JOIN allocations a ON a.arrival_seq = p.i AND a.released_on IS NULL;
"""


def build(path: Path, nights: int, lines: int) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN")
        migrate(con)
        values = {"first": FIRST_NIGHT, "nights": nights, "lines": lines}
        for statement in _FILL.split(";"):
            if statement.strip():
                used = {k: v for k, v in values.items() if f"${k}" in statement}
                con.execute(statement, used or None)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def documented_queries() -> list[tuple[str, str]]:
    blocks = re.findall(r"^```sql\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    return [(block.splitlines()[0].removeprefix("--").strip(), block) for block in blocks]


def best_of(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object], tries: int
) -> tuple[float, float]:
    """Best wall time and best CPU time (all of DuckDB's threads) of ``tries`` runs: on a
    shared machine the CPU time is the steadier figure, and bounds a quiet machine's wall time
    from above even on one core."""
    walls, cpus = [], []
    for _ in range(tries):
        wall, cpu = time.perf_counter(), time.process_time()
        con.sql(sql, params=params).fetchall()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=100)
    parser.add_argument("--lines", type=int, default=30_000, help="new order lines a night")
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "warehouse.duckdb"
        start = time.perf_counter()
        build(path, args.nights, args.lines)
        print(
            f"built {args.nights} nights x {args.lines:,} lines in {time.perf_counter() - start:.1f}s"
        )
        con = duckdb.connect(str(path), read_only=True)
        try:
            counts = con.sql(
                "SELECT (SELECT count(*) FROM order_lines), (SELECT count(*) FROM allocations)"
            ).fetchall()[0]
            print(f"order_lines {counts[0]:,}, allocations {counts[1]:,}")
            timings = [
                (title, best_of(con, sql, [], args.tries)) for title, sql in documented_queries()
            ]
            for label, night in [
                ("first", FIRST_NIGHT),
                ("middle", FIRST_NIGHT + dt.timedelta(days=args.nights // 2)),
                ("last", FIRST_NIGHT + dt.timedelta(days=args.nights - 1)),
            ]:
                sql = "SELECT count(*) FROM open_lines_asof(?)"
                timings.append(
                    (f"open_lines_asof, {label} night", best_of(con, sql, [night], args.tries))
                )
        finally:
            con.close()
    print("| query | wall, s | CPU, s |\n|---|---:|---:|")
    for title, (wall, cpu) in timings:
        print(f"| {title} | {wall:.3f} | {cpu:.3f} |")
    print(f"slowest: wall {max(w for _t, (w, _c) in timings):.3f} s, ", end="")
    print(f"CPU {max(c for _t, (_w, c) in timings):.3f} s; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
