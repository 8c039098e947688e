"""The night's summary (`summary.json`), read from warehouse state like the reports: every run
of the date added up, what the inbox held and what became of it, the night's checks and the
trend of the nights before it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from allocation.io.readers.discovery import TEMPORARY_NAME
from allocation.io.reports import LOADED_LATER
from allocation.io.run_counts import SUMMARY_COUNTS


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
