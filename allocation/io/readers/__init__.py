"""The inbox readers: find the files of an inbox folder and read them into string frames.

The inbox holds two folders, ``batches/`` and ``orders/``; the files directly inside them are
tonight's input, read in name order (the arrival order). Every file is read as a stream of
slices (``stream_inbox_file``: memory bounded by the slice, whatever the file's size), in one
pass that hashes the bytes it parses (``source.py``); ``read_inbox_file`` collects them into a
``FileRead``:

* ``rows``: the reader contract of ``docs/design.md`` and ``schemas.rows_schema`` (``source_file, line, <required columns>,
  raw``), every value a string exactly as received, ``line`` the 1-based data row. ``raw`` is
  null for a CSV file whose columns are exactly the required ones, in order (the usual export):
  the row's text is then ``raw_text(kind)`` of its columns, worded only when a row needs it;
* ``rejected``: the rejection frame (``kind, source_file, line, reason, raw``). A row-level
  problem (a ragged CSV row, a JSON Lines line that is not an object) rejects that row and the
  rest of the file still loads; a file-level problem (empty, binary, not UTF-8, missing column,
  unreadable Parquet) rejects the whole file with ``line`` null and the night goes on with the
  other files.

No row is ever dropped silently: for every file, the ``line`` values of ``rows`` and of the row
rejections together are exactly ``1..N``. Values are not validated here (``validation.py`` does
that); only the structure is. A file that changed while it was read, and a last line without a
line break (it may have been cut while the file was written), are never taken as data.
"""

from __future__ import annotations

import polars as pl

from allocation.io import rejections
from allocation.io.readers.csv_general import CSV_FIELD_SIZE_LIMIT
from allocation.io.readers.csv_stream import read_csv_slices
from allocation.io.readers.discovery import (
    KINDS,
    SUPPORTED_SUFFIXES,
    InboxError,
    InboxFile,
    find_inbox_files,
    shown_name,
)
from allocation.io.readers.frames import FileRead, FileSlice, reject_file
from allocation.io.readers.jsonl import read_jsonl_slices
from allocation.io.readers.parquet import read_parquet_slices
from allocation.io.readers.stream import FileStream, Reader
from allocation.io.schemas import empty_rows

__all__ = [
    "CSV_FIELD_SIZE_LIMIT",
    "KINDS",
    "SUPPORTED_SUFFIXES",
    "FileRead",
    "FileSlice",
    "FileStream",
    "InboxError",
    "InboxFile",
    "find_inbox_files",
    "read_inbox_file",
    "shown_name",
    "stream_inbox_file",
]

_READERS: dict[str, tuple[Reader, bool]] = {  # suffix -> reader, is it a text format
    ".csv": (read_csv_slices, True),
    ".jsonl": (read_jsonl_slices, True),
    ".parquet": (read_parquet_slices, False),
}


def stream_inbox_file(file: InboxFile) -> FileStream:
    """One inbox file as a stream of slices (reader frames plus row rejections), a slice at a
    time; after it, whether the file was rejected whole and the checksum of the bytes read.
    Never raises on bad input."""
    suffix = file.path.suffix.lower()
    found = _READERS.get(suffix)
    if found is None:
        return FileStream(
            file,
            None,
            f"unsupported file type '{file.path.suffix}': expected .csv, .parquet or .jsonl",
        )
    reader, text = found
    return FileStream(file, reader, text=text)


def read_inbox_file(file: InboxFile) -> FileRead:
    """One inbox file read whole into a reader frame plus its rejections (for a small file:
    the night itself streams, ``stream_inbox_file``); never raises on bad input."""
    stream = stream_inbox_file(file)
    parts = list(stream)
    if stream.problem is not None:
        return reject_file(file, stream.problem, sha256=stream.sha256, changed=stream.changed)
    return FileRead(
        file=file,
        rows=pl.concat([part.rows for part in parts]) if parts else empty_rows(file.kind),
        rejected=pl.concat([part.rejected for part in parts]) if parts else rejections.empty(),
        extra_columns=stream.extra_columns,
        sha256=stream.sha256,
    )
