"""How fast the analysts' views and documented queries answer on a warehouse of many nights.

Builds a warehouse with the pipeline's own schema (every table, view, macro and comment of the
current version) and fills it with synthetic history in SQL: ``--nights`` nights of
``--lines`` new order lines each, 3,000 skus, about 90 % of lines placed within three nights,
2 % of placements released by a manifest cut the next night (its ``batch_changes`` row and a
``reallocations`` row each) and placed again that night or the next, an ETA change a night for
1 % of the batches, and 0.5 % of order rows and one manifest row a night rejected
(``rejected_rows`` with their codes). Then runs every ```sql block of docs/analysts.md and
``open_lines_asof`` on the first, middle and last night, best of three each, and what a night
itself pays for the views (``night_cost``), and prints the times. ``make bench`` runs it too.

    python -m benchmarks.analyst_views --nights 100 --lines 30000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from allocation.io.night_summary import trend_rows
from allocation.io.warehouse_schema import code_rejections, migrate

#: A query's title and its best (wall, CPU) seconds.
Timing = tuple[str, tuple[float, float]]

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
       -- half the released lines are placed again the night they are released, half a night later
       (hash(i * 11) % 2)::INTEGER AS replaced_after,
       'B' || (i % 3000 + 3000 * (hash(i) % 10)::INTEGER) AS batchref,
       'B' || (i % 3000 + 3000 * ((hash(i) + 1) % 10)::INTEGER) AS next_batchref
FROM range($nights * $lines) t(i);

INSERT INTO allocations (orderid, sku, qty, batchref, eta, business_date, run_id, arrival_seq,
    released_on)
SELECT orderid, sku, qty, batchref, NULL, placed_on, 'run-' || (placed_on - $first), i,
       CASE WHEN released THEN placed_on + 1 END
FROM placed WHERE NOT stays_open AND placed_on < $first + $nights
UNION ALL
SELECT orderid, sku, qty, next_batchref, NULL, placed_on + 1 + replaced_after,
       'run-' || (placed_on + 1 + replaced_after - $first), i, NULL
FROM placed
WHERE NOT stays_open AND released AND placed_on + 1 + replaced_after < $first + $nights;

INSERT INTO order_lines (orderid, sku, qty, status, batchref, first_seen, allocated_on,
    arrival_seq, source_file, source_line, run_id)
SELECT p.orderid, p.sku, p.qty,
       CASE WHEN a.orderid IS NULL THEN 'out_of_stock' ELSE 'allocated' END,
       a.batchref, p.first_seen, a.business_date, p.i, 'orders/x.csv', p.i,
       'run-' || (p.first_seen - $first)
FROM placed p
LEFT JOIN allocations a ON a.arrival_seq = p.i AND a.released_on IS NULL;

-- The manifest cuts that released those lines: one qty_down row per batch cut on a night, and
-- one ETA change a night for 1 % of the batches.
CREATE TEMP TABLE cuts AS
SELECT batchref AS reference, released_on AS business_date,
       row_number() OVER (PARTITION BY released_on ORDER BY batchref) AS source_line
FROM (SELECT DISTINCT batchref, released_on FROM allocations WHERE released_on IS NOT NULL);

INSERT INTO batch_changes (reference, sku, change, old_qty, new_qty, old_eta, new_eta,
    business_date, run_id, source_file, source_line)
SELECT c.reference, b.sku, 'qty_down', 1000000, 999000, b.eta, b.eta, c.business_date,
       'run-' || (c.business_date - $first), 'batches/cuts-' || c.business_date || '.csv',
       c.source_line
FROM cuts c JOIN batches b USING (reference)
UNION ALL
SELECT b.reference, b.sku, 'eta', 1000000, 1000000, b.eta, b.eta + 7, $first + n::INTEGER,
       'run-' || n, 'batches/eta-' || ($first + n::INTEGER) || '.csv', 1
FROM range($nights) t(n) JOIN batches b ON hash(b.reference, n) % 100 = 0 AND b.eta IS NOT NULL;

INSERT INTO reallocations (orderid, sku, qty, from_batchref, to_batchref, reason, business_date,
    run_id, reason_code, change_source_file, change_source_line)
SELECT a.orderid, a.sku, a.qty, a.batchref, r.batchref,
       'batch ' || a.batchref || ' quantity reduced from 1000000 to 999000', a.released_on,
       'run-' || (a.released_on - $first), 'qty_down',
       'batches/cuts-' || a.released_on || '.csv', c.source_line
FROM allocations a
JOIN cuts c ON c.reference = a.batchref AND c.business_date = a.released_on
LEFT JOIN allocations r
  ON r.arrival_seq = a.arrival_seq AND r.business_date = a.released_on AND r.released_on IS NULL
WHERE a.released_on IS NOT NULL;

-- Rejected rows: 0.5 % of a night's order rows (three reasons) and 1 % of its manifest rows.
INSERT INTO rejected_rows (run_id, business_date, kind, source_file, line, reason, raw,
    reason_code)
SELECT 'run-' || n, $first + n::INTEGER, 'orders', 'orders/x.csv', k,
       CASE k % 3 WHEN 0 THEN 'qty ''ten'' is not a whole number'
                  WHEN 1 THEN 'qty 0 must be at least 1' ELSE 'sku is empty' END,
       '{"orderid": "r' || k || '", "sku": "SKU-1", "qty": "ten"}',
       CASE k % 3 WHEN 0 THEN 'not_whole_number' WHEN 1 THEN 'qty_below_one'
                  ELSE 'empty_value' END
FROM range($nights) t(n), range($lines // 200) s(k)
UNION ALL
SELECT 'run-' || n, $first + n::INTEGER, 'batches', 'batches/m.csv', 1,
       'eta ''2026-13-40'' is not a YYYY-MM-DD date',
       '{"reference": "X", "sku": "SKU-1", "qty": "4", "eta": "2026-13-40"}', 'not_a_date'
FROM range($nights) t(n);

-- The runs' counters say the same as the rows above.
UPDATE runs SET
    orders_rejected = $lines // 200, orders_received = $lines + $lines // 200,
    batches_rejected = 1, batches_received = 101,
    allocated = (SELECT count(*) FROM allocations a WHERE a.business_date = runs.business_date),
    lines_released = (SELECT count(*) FROM reallocations r
                      WHERE r.business_date = runs.business_date),
    lines_replaced = (SELECT count(to_batchref) FROM reallocations r
                      WHERE r.business_date = runs.business_date),
    qty_decreases = (SELECT count(*) FROM batch_changes c
                     WHERE c.business_date = runs.business_date AND c.change = 'qty_down'),
    eta_changes = (SELECT count(*) FROM batch_changes c
                   WHERE c.business_date = runs.business_date AND c.change = 'eta');
UPDATE runs SET out_of_stock = k.lines_open FROM nightly_kpis k
WHERE k.business_date = runs.business_date;
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


def night_cost(con: duckdb.DuckDBPyConnection, tries: int) -> list[Timing]:
    """What a night pays for the views, measured: opening the warehouse at the current version
    (``migrate`` rebuilds views and comments only on an upgrade), coding the run's rejected rows,
    and the summary's ``trend`` (``nightly_trend``, a slice of ``nightly_kpis``). Each in a
    transaction rolled back, as a night's own work is until its commit."""
    last_run, last_night = con.sql(
        "SELECT arg_max(run_id, business_date), max(business_date) FROM runs"
    ).fetchall()[0]
    steps: list[tuple[str, Callable[[], object]]] = [
        ("a night's views: migrate at the current version", lambda: migrate(con)),
        (
            "a night's views: code the run's rejected rows",
            lambda: code_rejections(con, last_run),
        ),
        (
            "a night's views: the summary's trend (nightly_trend)",
            lambda: trend_rows(con, last_night),
        ),
    ]
    timings = []
    for title, step in steps:
        walls, cpus = [], []
        for _ in range(tries):
            con.execute("BEGIN")
            wall, cpu = time.perf_counter(), time.process_time()
            step()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            con.execute("ROLLBACK")
        timings.append((title, (min(walls), min(cpus))))
    return timings


def measure(nights: int, lines: int, tries: int) -> tuple[str, list[Timing]]:
    """Builds the synthetic warehouse and times every documented query, ``open_lines_asof`` on
    three nights and a night's own cost of the views; returns what was built and the timings."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "warehouse.duckdb"
        start = time.perf_counter()
        build(path, nights, lines)
        built = time.perf_counter() - start
        con = duckdb.connect(str(path))
        try:
            counts = con.sql(
                "SELECT (SELECT count(*) FROM order_lines), (SELECT count(*) FROM allocations), "
                "(SELECT count(*) FROM reallocations), (SELECT count(*) FROM batch_changes), "
                "(SELECT count(*) FROM rejected_rows)"
            ).fetchall()[0]
            timings = [(title, best_of(con, sql, [], tries)) for title, sql in documented_queries()]
            for label, night in [
                ("first", FIRST_NIGHT),
                ("middle", FIRST_NIGHT + dt.timedelta(days=nights // 2)),
                ("last", FIRST_NIGHT + dt.timedelta(days=nights - 1)),
            ]:
                sql = "SELECT count(*) FROM open_lines_asof(?)"
                timings.append(
                    (f"open_lines_asof, {label} night", best_of(con, sql, [night], tries))
                )
            timings += night_cost(con, tries)
        finally:
            con.close()
    what = (
        f"{nights} nights x {lines:,} lines, built in {built:.1f}s: order_lines {counts[0]:,}, "
        f"allocations {counts[1]:,}, reallocations {counts[2]:,}, batch_changes {counts[3]:,}, "
        f"rejected_rows {counts[4]:,}"
    )
    return what, timings


def table(what: str, timings: list[Timing]) -> list[str]:
    """The timings as a Markdown table, with the slowest query and the machine's load."""
    out = [
        f"The analysts' views ({what}; best of each):",
        "",
        "| query | wall, s | CPU, s |",
        "|---|---:|---:|",
    ]
    out += [f"| {title} | {wall:.3f} | {cpu:.3f} |" for title, (wall, cpu) in timings]
    queries = [t for t in timings if not t[0].startswith("a night's views")]
    slowest = max(queries, key=lambda t: t[1][0])
    per_night = sum(wall for title, (wall, _c) in timings if title.startswith("a night's views"))
    out += [
        "",
        f"Slowest query: {slowest[0]} ({slowest[1][0]:.3f} s wall, {slowest[1][1]:.3f} CPU-s); "
        f"a night's own cost of the views: {per_night:.3f} s wall; "
        f"load {os.getloadavg()[0]:.1f}.",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=100)
    parser.add_argument("--lines", type=int, default=30_000, help="new order lines a night")
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(table(*measure(args.nights, args.lines, args.tries))))


if __name__ == "__main__":
    main()
