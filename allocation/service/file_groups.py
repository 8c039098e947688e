"""Small inbox files validated and staged together, in groups, instead of one by one.

Validating a frame with pandera and appending it to DuckDB costs about the same whatever the
frame's size, so a night of many small files paid that cost per file (docs/benchmarks.md, "many
small files"). `FileGroup` holds small files of one kind, read but not yet validated, and
validates and stages them as one frame; the rows and rejections land in the staging file in the
order they would have had file by file. Also here: the `ingested_files` row of a file read, and
the note of a manifest's ignored columns, which the load (`allocation.service.loading`) writes
for small and big files alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from allocation.io import readers, rejections, staging, validation
from allocation.io.schemas import Kind, rows_schema

log = logging.getLogger("allocation")

#: Each kind's validator: small files' groups and big files' slices alike go through it.
VALIDATORS: dict[Kind, Callable[[pl.DataFrame], validation.Validated]] = {
    "orders": validation.validate_orders,
    "batches": validation.validate_batches,
}

#: Rows of small files read before they are validated and staged together. A group never holds
#: more than this many rows plus one file, so memory stays bounded as when one file at a time
#: was held.
GROUP_ROWS = 100_000


class FileGroup:
    """Files read but not yet validated: small files of one kind in arrival order, validated as
    one frame and appended to the staging file at once (rows, then the readers' rejections and
    validation's, file by file in the order found, as when each file went alone)."""

    def __init__(self, staged: staging.StagingWriter) -> None:
        self.staged = staged
        self.reads: list[readers.FileRead] = []
        self.rows = 0
        self.validate_seconds = 0.0
        self.row_rejects = 0

    def add(self, read: readers.FileRead) -> None:
        if self.reads and self.reads[0].file.kind != read.file.kind:
            self.flush()
        self.reads.append(read)
        self.rows += read.rows.height
        if self.rows >= GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.reads:
            return
        kind = self.reads[0].file.kind
        contract = rows_schema(kind)
        rows = pl.concat(
            [
                read.rows
                if read.rows.schema == contract
                else read.rows.select(pl.col(c).cast(t) for c, t in contract.items())
                for read in self.reads
            ]
        )
        tick = time.perf_counter()
        checked = VALIDATORS[kind](rows)
        self.validate_seconds += time.perf_counter() - tick
        self.staged.add(kind, validation.leave_out_plain_raw(checked.valid, kind))
        found = pl.concat([read.rejected for read in self.reads] + [checked.rejected])
        if found.height:  # each file's rejections together, the reader's first (arrival order)
            order = {read.file.source_file: i for i, read in enumerate(self.reads)}
            readers_first = [0] * (found.height - checked.rejected.height)
            found = found.with_columns(
                _file=pl.col("source_file").replace_strict(
                    order, default=len(order), return_dtype=pl.Int64
                ),
                _step=pl.Series(readers_first + [1] * checked.rejected.height),
            ).sort("_file", "_step", maintain_order=True)
            self.staged.add("rejected", found.drop("_file", "_step"))
        self.row_rejects += int(found["line"].is_not_null().sum())
        self.reads.clear()
        self.rows = 0


def small_file_read(
    file: readers.InboxFile, stream: readers.FileStream, slices: list[readers.FileSlice]
) -> readers.FileRead:
    """A file the reader gave in at most one slice, as one `FileRead` for the group."""
    if stream.problem is not None:
        return readers.reject_file(
            file, stream.problem, sha256=stream.sha256, changed=stream.changed
        )
    return readers.FileRead(
        file=file,
        rows=slices[0].rows if slices else readers.empty_rows(file.kind),
        rejected=slices[0].rejected if slices else rejections.empty(),
        extra_columns=stream.extra_columns,
        sha256=stream.sha256,
    )


def file_record(
    file: readers.InboxFile,
    stream: readers.FileStream,
    read: readers.FileRead | None,
    rows: int = 0,
) -> dict[str, Any]:
    """The `ingested_files` row of a file read: `read` for a small file, `rows` for a big one."""
    if read is not None:
        rows = 0 if read.file_rejected else read.rows.height + read.rejected.height
    return {
        "kind": file.kind,
        "file_name": file.source_file,
        "size": stream.size,
        # A file that changed while it was read has no checksum of its own: recorded with "",
        # which no file read has, so a rerun of the date reads it again.
        "sha256": "" if stream.changed else stream.sha256,
        "rows": rows,
        "status": "loaded" if stream.problem is None else "rejected",
        "reason": stream.problem,
    }


def no_eta(rows: pl.DataFrame) -> bool:
    """A manifest's rows all say "in stock now" (no eta): with ignored columns beside, the eta
    column was likely renamed."""
    if not rows.height or "eta" not in rows.columns:
        return bool(rows.height)
    eta = rows["eta"]
    blank = eta.is_null() | (eta.cast(pl.String).str.strip_chars() == "")
    return bool(blank.all())


def note_extra_columns(
    file: readers.InboxFile, extra: Sequence[str], without_eta_rows: bool, without_eta: list[str]
) -> None:
    """Logs the columns a file had beyond the contract's; a manifest whose every row says "in
    stock now" beside such columns (`without_eta_rows`) probably had its eta column renamed: it
    joins `without_eta` (the night's checks flag it)."""
    if not extra:
        return
    log.info("%s: ignored extra columns %s", file.source_file, ", ".join(extra))
    if file.kind == "batches" and without_eta_rows:
        without_eta.append(file.source_file)
