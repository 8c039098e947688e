"""Writes a night's reports to `OUTBOX/<business-date>/`, replacing the folder in one step.

CSV files are for people and spreadsheets: a text cell that would start a formula (`=`, `+`,
`-`, `@`, tab, carriage return) gets a leading `'`, as OWASP advises for CSV exports. Parquet
files keep exact values for programs.

Reports stream from DuckDB chunk by chunk (`reports.report_chunks`): each chunk is validated,
then appended to the CSV and the Parquet file, so memory does not grow with the night.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from allocation.faults import crash_point
from allocation.io.disk import is_disk_full
from allocation.io.files import point_symlink, remove_leftovers, swap_in_folder
from allocation.io.memory_limit import is_out_of_memory, streaming_memory
from allocation.io.night_summary import summary
from allocation.io.publish import PublishError
from allocation.io.reports import report_chunks
from allocation.settings.duckdb_limits import DuckDBLimits

log = logging.getLogger("allocation")

FORMULA_START = r"^[=+\-@\t\r]"

#: Reports written as CSV and Parquet, in this order; `rejected` is CSV only (below).
PAIRED_REPORTS = ("allocations", "out_of_stock", "reallocations")
#: Column order of rejected.csv (the public contract; the model's order starts with `kind`).
REJECTED_CSV_COLUMNS = ("source_file", "line", "reason", "raw", "kind")
#: Same codec as polars' default, which wrote these files before streaming.
PARQUET_COMPRESSION = "zstd"


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


def write_report(
    chunks: Iterable[pl.DataFrame],
    csv_path: Path,
    parquet_path: Path | None = None,
    *,
    csv_columns: tuple[str, ...] | None = None,
) -> None:
    """Appends validated chunks of one report to its CSV (formulas neutralised, header once) and,
    if asked, its Parquet file (exact values). `chunks` must yield at least one frame (an empty
    one for an empty report).

    A chunk's Parquet is encoded on a second thread while this one writes its CSV and reads the
    next chunk (Arrow and polars work outside the GIL): one more chunk in memory, less wall time
    when a core is free."""
    header = True
    pending: Future[None] | None = None
    with ExitStack() as stack:
        csv_file = stack.enter_context(open(csv_path, "wb"))
        parquet: pq.ParquetWriter | None = None
        encoder: ThreadPoolExecutor | None = None
        for chunk in chunks:
            if parquet_path is not None:
                # Large strings, as polars wrote them: readers see the same Arrow types as before.
                table = chunk.to_arrow(compat_level=pl.CompatLevel.oldest())
                if parquet is None or encoder is None:
                    parquet = stack.enter_context(
                        pq.ParquetWriter(
                            parquet_path, table.schema, compression=PARQUET_COMPRESSION
                        )
                    )
                    # Entered after the writer, so left first: no write outlives the file.
                    encoder = stack.enter_context(ThreadPoolExecutor(1, "parquet"))
                if pending is not None:
                    pending.result()
                pending = encoder.submit(parquet.write_table, table)
            text = chunk.select(csv_columns) if csv_columns else chunk
            neutralise_formulas(text).write_csv(csv_file, include_header=header)
            header = False
        if pending is not None:
            pending.result()


def write_report_files(con: duckdb.DuckDBPyConnection, day: dt.date, folder: Path) -> None:
    """Writes every report of the night from `con` into `folder` (which must exist and be
    empty). Raises pandera's `SchemaErrors` at the first chunk that breaks its model."""
    for name in PAIRED_REPORTS:
        with closing(report_chunks(con, name, day)) as chunks:
            write_report(chunks, folder / f"{name}.csv", folder / f"{name}.parquet")
    with closing(report_chunks(con, "rejected", day)) as chunks:
        write_report(chunks, folder / "rejected.csv", csv_columns=REJECTED_CSV_COLUMNS)
    _write_summary(summary(con, day), folder)


def _write_summary(counts: dict[str, Any], folder: Path) -> None:
    (folder / "summary.json").write_text(
        json.dumps(counts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def write_night(
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    outbox: Path,
    *,
    dry_run: bool = False,
    limits: DuckDBLimits | None = None,
) -> Path:
    """Writes the night's reports, read from `con` (a connection to committed state, or a dry
    run's open transaction), to a temporary folder, then swaps it in as `<date>/` (or
    `<date>/dry-run/`); points `latest` at the newest business date. Returns the folder.
    `limits`: those `con` was opened with; the reports are read under their streaming share
    (`allocation.io.memory_limit`).

    If a report breaks its model the error propagates and the previous folder stays as it was.
    """
    outbox.mkdir(parents=True, exist_ok=True)
    date = day.isoformat()
    parent = outbox / date if dry_run else outbox
    parent.mkdir(parents=True, exist_ok=True)
    name = "dry-run" if dry_run else date
    # Runs never overlap (the run lock), so a temporary folder here is what a killed run left,
    # whichever night it was writing: remove them all, not only this night's.
    for folder in {outbox, parent}:
        remove_leftovers(folder, ".*.tmp-*")
        remove_leftovers(folder, ".*.old-*")
    unfinished = parent / f".{name}.tmp-{os.getpid()}"
    target = parent / name
    try:
        unfinished.mkdir()
        try:
            _write_report_files_within(con, day, unfinished, limits, retry=not dry_run)
        except BaseException:
            shutil.rmtree(unfinished, ignore_errors=True)
            raise
        crash_point("while-writing-reports")
        swap_in_folder(unfinished, target)
    except OSError as error:
        raise _not_written(_outbox_cause(error, outbox), day, dry_run, f" to {outbox}") from error
    except duckdb.Error as error:
        # DuckDB spilling a report's sort to its temporary folder, on a full disk.
        if not is_disk_full(error):
            raise
        raise _not_written(_spill_cause(error, limits), day, dry_run) from error
    if not dry_run:
        _point_latest(outbox, target, day)
    return target


def _write_report_files_within(
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    folder: Path,
    limits: DuckDBLimits | None,
    *,
    retry: bool,
) -> None:
    """`write_report_files` under the streaming share of the night's memory; if DuckDB runs out
    of memory there (reports that sort more than the share holds: a backlog of many millions of
    waiting lines), once more under the night's own limit when `retry` (not inside a dry run's
    transaction, which the error has aborted)."""
    try:
        with streaming_memory(con, limits):
            write_report_files(con, day, folder)
        return
    except Exception as error:
        if limits is None or not retry or not is_out_of_memory(error):
            raise
        log.warning(
            "The reports ran out of DuckDB's memory under %s, the streamed share of the "
            "night's: writing them again under the night's %s",
            limits.streaming().memory_limit,
            limits.memory_limit,
        )
    for written in folder.iterdir():
        written.unlink()
    write_report_files(con, day, folder)


class OutboxError(RuntimeError):
    """A dry run's reports could not be written to the outbox (nothing was committed)."""


class ReportsNotWritten(PublishError):
    """The night is committed, but its reports (or the ``latest`` link) are not in the outbox."""


def _not_written(cause: str, day: dt.date, dry_run: bool, written_to: str = "") -> Exception:
    """The error of reports that could not be written, for `cause` (what to fix): nothing was
    committed in a dry run; otherwise the night is, and running it again writes them."""
    if dry_run:
        return OutboxError(
            f"dry run of {day}: its reports could not be written, {cause}, then run it again "
            "(nothing was committed)"
        )
    return ReportsNotWritten(
        f"the night {day} is committed, but its reports could not be written{written_to}: "
        f"{cause}, then run the same night again (it writes the reports and publishes; "
        "nothing is applied twice)"
    )


def _outbox_cause(error: OSError, outbox: Path) -> str:
    if is_disk_full(error):
        return f"the disk holding {outbox} is full (No space left on device): free space there"
    return f"{error.strerror or error} ({error.filename or outbox}): fix that"


def _spill_cause(error: duckdb.Error, limits: DuckDBLimits | None) -> str:
    where = f" ({limits.temp_directory})" if limits is not None else ""
    return (
        f"the disk DuckDB spills to{where} is full ({error}): free space there, or point "
        "ALLOCATION_DUCKDB_TEMP_DIRECTORY at a disk with room"
    )


def _point_latest(outbox: Path, written: Path, day: dt.date) -> None:
    link = outbox / "latest"
    if (link.exists() or link.is_symlink()) and not link.is_symlink():
        what = "folder" if link.is_dir() else "file"
        raise ReportsNotWritten(
            f"the night is committed and its reports are in {written}, but {link} is a real "
            f"{what}, not the link to the newest night the pipeline keeps there: move it away, "
            "then run the same night again (it points latest and publishes)"
        )
    # A night's folder holds its summary; a folder holding only a dry run's `dry-run/` is no
    # night, and must not pin `latest` to a future date.
    days = sorted(
        p.name
        for p in outbox.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and not p.name.startswith(".")
        and _is_day(p.name)
        and (p / "summary.json").is_file()
    )
    if days:
        try:
            point_symlink(link, days[-1])
        except OSError as error:
            cause = _outbox_cause(error, outbox)
            raise _not_written(cause, day, dry_run=False, written_to=f" to {outbox}") from error


def _is_day(name: str) -> bool:
    return len(name) == 10 and name[4] == "-" and name[7] == "-" and name.replace("-", "").isdigit()


def read_summary(folder: Path) -> dict[str, Any]:
    """The `summary.json` of a night's report folder (what a run returns and shows)."""
    summary: dict[str, Any] = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    return summary
