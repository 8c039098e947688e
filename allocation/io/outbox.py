"""Writes a night's reports to `OUTBOX/<business-date>/`, replacing the folder in one step.

CSV files are for people and spreadsheets: a text cell that would start a formula (`=`, `+`,
`-`, `@`, tab, carriage return) gets a leading `'`, as OWASP advises for CSV exports. Parquet
files keep exact values for programs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from allocation.faults import crash_point
from allocation.io.files import point_symlink, remove_leftovers, swap_in_folder
from allocation.io.reports import NightReports

FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefixes text cells that a spreadsheet would run as a formula with a quote."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(FORMULA_START))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name in text
    )


def _write_pair(frame: pl.DataFrame, folder: Path, name: str) -> None:
    neutralise_formulas(frame).write_csv(folder / f"{name}.csv")
    frame.write_parquet(folder / f"{name}.parquet")


def write_report_files(reports: NightReports, folder: Path) -> None:
    """Writes every report of the night into `folder` (which must exist and be empty)."""
    _write_pair(reports.allocations, folder, "allocations")
    _write_pair(reports.out_of_stock, folder, "out_of_stock")
    _write_pair(reports.reallocations, folder, "reallocations")
    rejected = reports.rejected.select("source_file", "line", "reason", "raw", "kind")
    neutralise_formulas(rejected).write_csv(folder / "rejected.csv")
    (folder / "summary.json").write_text(
        json.dumps(reports.summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write_night(reports: NightReports, outbox: Path, *, dry_run: bool = False) -> Path:
    """Writes the reports to a temporary folder, then swaps it in as `<date>/` (or
    `<date>/dry-run/`); points `latest` at the newest business date. Returns the folder."""
    outbox.mkdir(parents=True, exist_ok=True)
    day = reports.business_date.isoformat()
    parent = outbox / day if dry_run else outbox
    parent.mkdir(parents=True, exist_ok=True)
    name = "dry-run" if dry_run else day
    # Runs never overlap (the run lock), so a temporary folder here is what a killed run left,
    # whichever night it was writing: remove them all, not only this night's.
    for folder in {outbox, parent}:
        remove_leftovers(folder, ".*.tmp-*")
        remove_leftovers(folder, ".*.old-*")
    staging = parent / f".{name}.tmp-{os.getpid()}"
    staging.mkdir()
    write_report_files(reports, staging)
    crash_point("while-writing-reports")
    target = parent / name
    swap_in_folder(staging, target)
    if not dry_run:
        _point_latest(outbox)
    return target


def _point_latest(outbox: Path) -> None:
    days = sorted(
        p.name
        for p in outbox.iterdir()
        if p.is_dir() and not p.name.startswith(".") and _is_day(p.name)
    )
    if days:
        point_symlink(outbox / "latest", days[-1])


def _is_day(name: str) -> bool:
    return len(name) == 10 and name[4] == "-" and name[7] == "-" and name.replace("-", "").isdigit()
