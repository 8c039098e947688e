"""What every reader builds: the ``FileRead`` of one file and reader frames (rejection frames come
from ``allocation.io.rejections``).

Shared by the CSV, Parquet and JSON Lines readers; the column contract itself (``Kind``,
``REQUIRED_COLUMNS``, ``rows_schema``, ``raw_text``) lives in ``allocation.io.schemas``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial

import polars as pl

from allocation.io import rejections
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.header import Header
from allocation.io.schemas import REQUIRED_COLUMNS, empty_rows, raw_text

#: A value or a row as compact JSON text, non-ASCII kept as is (the wording of ``raw``).
dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, eq=False)  # frames have no boolean equality
class FileRead:
    file: InboxFile
    rows: pl.DataFrame  # reader contract: source_file, line, <required columns>, raw
    rejected: pl.DataFrame  # rejection frame; line null = the whole file
    extra_columns: tuple[str, ...]  # file columns not used (original names), for the log
    sha256: str = ""  # checksum of the bytes read ("" when unknown)
    changed: bool = False  # the file changed while it was read (rejected whole)

    @property
    def file_rejected(self) -> bool:
        """True when the whole file was rejected (``rows`` is then empty)."""
        return bool(self.rejected.height) and self.rejected["line"].is_null().any()


@dataclass(frozen=True, eq=False)
class FileSlice:
    """A slice of one file as a reader streams it: its rows (reader contract) and its row
    rejections, ``line`` numbered across the whole file."""

    rows: pl.DataFrame
    rejected: pl.DataFrame


def cut_last_row(file: InboxFile, rows: pl.DataFrame, reason: str) -> FileSlice:
    """``rows`` without its last row, which becomes a rejection with ``reason`` (a last line
    that may have been cut while the file was being written)."""
    last = rows.tail(1)
    rejected = rejections.build(
        rows=last,
        kind=file.kind,
        source_file=pl.col("source_file"),
        line=pl.col("line"),
        reason=reason,
        raw=pl.coalesce("raw", raw_text(file.kind)),
    )
    return FileSlice(rows.head(rows.height - 1), rejected)


def reject_file(
    file: InboxFile, reason: str, *, sha256: str = "", changed: bool = False
) -> FileRead:
    """The ``FileRead`` of a file rejected whole: no rows, one rejection with line null."""
    return FileRead(
        file=file,
        rows=empty_rows(file.kind),
        rejected=rejections.build(
            kind=file.kind, source_file=file.source_file, line=None, reason=reason, raw=None
        ),
        extra_columns=(),
        sha256=sha256,
        changed=changed,
    )


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (library messages may span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def assemble(
    file: InboxFile, header: Header, values: pl.DataFrame, lines: pl.Series
) -> pl.DataFrame:
    """Reader frame from string columns named by ``header.keys`` (one per file column)."""
    height = values.height
    if header.keys == REQUIRED_COLUMNS[file.kind]:
        # `raw_text` words it when a row needs it: most never do, so JSON is not built for them.
        raw = pl.repeat(None, height, dtype=pl.String, eager=True)
    else:
        raw = values.select(pl.struct(pl.all()).struct.json_encode()).to_series()
    columns = [
        pl.repeat(file.source_file, height, dtype=pl.String, eager=True).alias("source_file"),
        lines.alias("line"),
    ]
    for name, source in zip(REQUIRED_COLUMNS[file.kind], header.sources, strict=True):
        if source is None:
            columns.append(pl.repeat(None, height, dtype=pl.String, eager=True).alias(name))
        else:
            columns.append(values.to_series(source).alias(name))
    columns.append(raw.alias("raw"))
    return pl.DataFrame(columns)
