"""The night's reports, read from warehouse state (committed, or the open transaction of a dry run).

Reports are derived, never accumulated: a night's folder can be rebuilt at any time from the
warehouse, which is what makes a rerun after a crash produce complete files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import duckdb
import pandera.polars as pa
import polars as pl

from allocation.io import schemas

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


@dataclass(frozen=True)
class NightReports:
    business_date: dt.date
    allocations: pl.DataFrame
    out_of_stock: pl.DataFrame
    rejected: pl.DataFrame
    reallocations: pl.DataFrame
    summary: dict[str, Any]


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
        "SELECT kind, source_file, line, reason, raw FROM rejected_rows "
        "WHERE business_date = $day ORDER BY kind DESC, source_file, line NULLS FIRST, reason",
    ),
    "reallocations": (
        schemas.ReallocationReport,
        "SELECT orderid, sku, qty, from_batchref, to_batchref, reason, business_date "
        "FROM reallocations WHERE business_date = $day ORDER BY run_id, orderid, sku",
    ),
}


def report(con: duckdb.DuckDBPyConnection, name: str, day: dt.date) -> pl.DataFrame:
    """One report of the night, validated against its schema before anyone sees it."""
    model, sql = REPORT_SQL[name]
    frame = con.sql(sql, params={"day": day}).pl()
    checked: pl.DataFrame = model.validate(frame, lazy=True)
    return checked


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
        "SELECT kind, file_name, status, reason FROM ingested_files WHERE business_date = ? "
        "ORDER BY kind DESC, file_name",
        params=[day],
    ).fetchall()
    allocated = con.sql(
        "SELECT count(*) FROM allocations WHERE business_date = ?", params=[day]
    ).fetchall()[0][0]
    open_lines = con.sql(
        "SELECT count(*) FROM order_lines WHERE status = 'out_of_stock'"
    ).fetchall()
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
                for _kind, name, status, reason in files
                if status == "rejected"
            ],
        },
    }


def night_reports(con: duckdb.DuckDBPyConnection, day: dt.date) -> NightReports:
    return NightReports(
        business_date=day,
        allocations=report(con, "allocations", day),
        out_of_stock=report(con, "out_of_stock", day),
        rejected=report(con, "rejected", day),
        reallocations=report(con, "reallocations", day),
        summary=summary(con, day),
    )
