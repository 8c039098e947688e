"""What declaring the documented keys would cost a night: time and file size, side by side.

    python -m benchmarks.keys --sizes 1M,10M

For each size, one generated inbox (``benchmarks.generate``, Zipf) is loaded into two fresh
DuckDB files with the warehouse's columns: ``plain`` as the schema declares them (primary keys of
``batches`` and ``runs`` only) and ``keys`` with ``PRIMARY KEY (orderid, sku)`` and
``UNIQUE (arrival_seq)`` on ``order_lines`` and the foreign keys BI tools join on
(``allocations`` -> ``order_lines`` and -> ``batches``). A first night (every line stored, 90 %
allocated: the allocations written and the lines updated, as the night's repository does) and a
second night (a tenth as many new lines on top of the first) are timed in turns, then the file
is checkpointed and its size read. Both files are in the warehouse's storage version
(v1.1.0 by default), as the pipeline writes it. Wall and CPU seconds (all of DuckDB's threads) per step.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import duckdb

from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION
from benchmarks.generate import generate
from benchmarks.report import label, parse_size

_TABLES = {
    "plain": (
        "",
        "",
    ),
    "keys": (
        ", PRIMARY KEY (orderid, sku), UNIQUE (arrival_seq)",
        ", FOREIGN KEY (orderid, sku) REFERENCES order_lines (orderid, sku)"
        ", FOREIGN KEY (batchref) REFERENCES batches (reference)",
    ),
}

_CREATE = """
CREATE TABLE batches (reference VARCHAR PRIMARY KEY, sku VARCHAR NOT NULL, eta DATE,
    purchased BIGINT NOT NULL, allocated BIGINT NOT NULL DEFAULT 0);
CREATE TABLE order_lines (orderid VARCHAR NOT NULL, sku VARCHAR NOT NULL, qty BIGINT NOT NULL,
    status VARCHAR NOT NULL, batchref VARCHAR, first_seen DATE NOT NULL, allocated_on DATE,
    arrival_seq BIGINT NOT NULL, source_file VARCHAR, source_line BIGINT, run_id VARCHAR,
    line_key UBIGINT LINES_KEYS);
CREATE TABLE allocations (orderid VARCHAR NOT NULL, sku VARCHAR NOT NULL, qty BIGINT NOT NULL,
    batchref VARCHAR NOT NULL, eta DATE, business_date DATE NOT NULL, run_id VARCHAR NOT NULL,
    arrival_seq BIGINT, released_on DATE ALLOCATION_KEYS);
"""

_NIGHT = [
    (
        "store the lines",
        "INSERT INTO order_lines SELECT orderid, sku, qty, 'out_of_stock', NULL, $day, NULL, "
        "$seq + row_number() OVER (), 'orders/x.csv', 1, 'run', hash(orderid, sku) "
        "FROM new_lines",
    ),
    (
        "write the allocations",
        "INSERT INTO allocations SELECT l.orderid, l.sku, l.qty, b.reference, NULL, $day, 'run', "
        "l.arrival_seq, NULL FROM order_lines l JOIN first_batch b USING (sku) "
        "WHERE l.status = 'out_of_stock' AND hash(l.arrival_seq) % 10 <> 0",
    ),
    (
        "update the lines placed",
        "UPDATE order_lines SET status = 'allocated', batchref = a.batchref, allocated_on = $day "
        "FROM allocations a WHERE a.arrival_seq = order_lines.arrival_seq "
        "AND a.business_date = $day AND order_lines.status = 'out_of_stock'",
    ),
]


def run_night(
    con: duckdb.DuckDBPyConnection, night: int, seq: int
) -> dict[str, tuple[float, float]]:
    timings = {}
    con.execute("BEGIN")
    for title, sql in _NIGHT:
        params = {"day": f"2026-11-{25 + night}"}
        if "$seq" in sql:
            params["seq"] = str(seq)
        wall, cpu = time.perf_counter(), time.process_time()
        con.execute(sql, params)
        timings[title] = (time.perf_counter() - wall, time.process_time() - cpu)
    wall, cpu = time.perf_counter(), time.process_time()
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    timings["commit and checkpoint"] = (time.perf_counter() - wall, time.process_time() - cpu)
    return timings


def measure(lines: int, work: Path) -> list[str]:
    inbox = work / f"inbox-{label(lines)}"
    generate(lines, inbox)
    out = [
        f"### {label(lines)} lines",
        "",
        "| night, step | plain: wall / CPU s | keys: wall / CPU s |",
        "|---|---:|---:|",
    ]
    results: dict[str, dict[str, tuple[float, float]]] = {}
    sizes: dict[str, int] = {}
    cons = {}
    for variant, (line_keys, allocation_keys) in _TABLES.items():
        path = work / f"{variant}-{label(lines)}.duckdb"
        # The warehouse's own storage version (ALLOCATION_WAREHOUSE_STORAGE_VERSION's default).
        con = duckdb.connect(
            str(path), config={"storage_compatibility_version": DEFAULT_STORAGE_VERSION}
        )
        con.execute(
            _CREATE.replace("LINES_KEYS", line_keys).replace("ALLOCATION_KEYS", allocation_keys)
        )
        con.execute(
            "INSERT INTO batches (reference, sku, eta, purchased) "
            "SELECT reference, sku, eta, qty FROM read_csv(?)",
            [str(inbox / "batches" / "*.csv")],
        )
        con.execute(
            "CREATE TEMP TABLE first_batch AS SELECT sku, min(reference) AS reference "
            "FROM batches GROUP BY sku"
        )
        cons[variant] = (con, path)
    for night, share in ((1, 1), (2, 10)):
        for variant, (con, path) in cons.items():
            con.execute(
                "CREATE OR REPLACE TEMP TABLE new_lines AS SELECT orderid || ? AS orderid, sku, qty "
                "FROM read_csv(?) WHERE hash(orderid) % ? = 0",
                [f"-{night}", str(inbox / "orders" / "*.csv"), share],
            )
            seq = con.sql("SELECT coalesce(max(arrival_seq), 0) FROM order_lines").fetchall()[0][0]
            for title, timing in run_night(con, night, seq).items():
                results.setdefault(f"night {night}: {title}", {})[variant] = timing
            sizes[variant] = path.stat().st_size
            if night == 2:
                con.close()
        for variant in cons:
            results.setdefault(f"night {night}: file size, MiB", {})[variant] = (
                sizes[variant] / 2**20,
                0.0,
            )
    for title, by_variant in results.items():
        cells = []
        for variant in _TABLES:
            wall, cpu = by_variant[variant]
            cells.append(f"{wall:.1f}" if "size" in title else f"{wall:.2f} / {cpu:.2f}")
        out.append(f"| {title} | {' | '.join(cells)} |")
    totals = {v: sum(r[v][0] for t, r in results.items() if "size" not in t) for v in _TABLES}
    out += [
        "",
        f"Total wall: plain {totals['plain']:.1f} s, keys {totals['keys']:.1f} s "
        f"({totals['keys'] / totals['plain'] - 1:+.0%}); load {os.getloadavg()[0]:.1f}.",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,10M")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes.split(","):
            print("\n".join(measure(parse_size(size), Path(folder))), flush=True)


if __name__ == "__main__":
    main()
