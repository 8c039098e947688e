"""The I/O floor: what just moving tonight's data costs, with nothing of the pipeline.

    python -m benchmarks.floor --inbox DIR --work DIR

DuckDB's own CSV reader loads every ``batches/*.csv`` and ``orders/*.csv`` of the inbox into a
DuckDB file, then one output row per order line is written as CSV and as Parquet. No
validation, no allocation, no Prefect: a lower bound for any pipeline over the same files.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import duckdb


def floor(inbox: Path, work: Path) -> int:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    con = duckdb.connect(str(work / "floor.duckdb"))
    try:
        for kind in ("batches", "orders"):
            files = sorted(str(p) for p in (inbox / kind).glob("*.csv"))
            con.execute(
                f"CREATE TABLE {kind} AS SELECT * FROM read_csv(?)",  # noqa: S608
                [files],
            )
        query = "SELECT orderid, sku, qty FROM orders"
        con.execute(f"COPY ({query}) TO ? (FORMAT csv, HEADER)", [str(work / "lines.csv")])
        con.execute(
            f"COPY ({query}) TO ? (FORMAT parquet)",
            [str(work / "lines.parquet")],
        )
        row = con.execute("SELECT count(*) FROM orders").fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inbox", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    print(f"floor: {floor(args.inbox, args.work)} order lines")


if __name__ == "__main__":
    main()
