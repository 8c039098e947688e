"""The inbox readers: find the files of an inbox folder and read them into string frames.

The inbox holds two folders, ``batches/`` and ``orders/``; the files directly inside them are
tonight's input, read in name order (the arrival order). Every file becomes a ``FileRead``:

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
that); only the structure is.
"""

from __future__ import annotations

from allocation.io.readers.csv_general import CSV_FIELD_SIZE_LIMIT, read_general_csv
from allocation.io.readers.csv_plain import read_plain_csv
from allocation.io.readers.discovery import (
    KINDS,
    SUPPORTED_SUFFIXES,
    InboxError,
    InboxFile,
    InboxListing,
    NotRead,
    find_inbox_files,
    list_inbox,
    shown_name,
)
from allocation.io.readers.encoding import text_problem
from allocation.io.readers.frames import FileRead, reject_file
from allocation.io.readers.jsonl import read_jsonl
from allocation.io.readers.parquet import read_parquet

__all__ = [
    "CSV_FIELD_SIZE_LIMIT",
    "KINDS",
    "SUPPORTED_SUFFIXES",
    "FileRead",
    "InboxError",
    "InboxFile",
    "InboxListing",
    "NotRead",
    "find_inbox_files",
    "list_inbox",
    "read_csv",
    "read_inbox_file",
    "shown_name",
]


def read_inbox_file(file: InboxFile) -> FileRead:
    """Read one inbox file into a reader frame plus its rejections; never raises on bad input."""
    suffix = file.path.suffix.lower()
    try:
        if suffix == ".csv":
            return read_csv(file)
        if suffix == ".jsonl":
            return read_jsonl(file)
        if suffix == ".parquet":
            return read_parquet(file)
    except OSError as exc:
        return reject_file(file, f"cannot read file: {exc}")
    except UnicodeDecodeError as exc:  # the file changed after it was checked
        return reject_file(
            file,
            f"not valid UTF-8 (the file changed while it was read: {exc.reason}): "
            "re-export the file as UTF-8",
        )
    return reject_file(
        file, f"unsupported file type '{file.path.suffix}': expected .csv, .parquet or .jsonl"
    )


def read_csv(file: InboxFile) -> FileRead:
    """A CSV file: rejected whole unless it is UTF-8 text; then the fast path when the file is
    plain (``csv_plain``), else the csv module (``csv_general``). Both give the same result."""
    problem = text_problem(file.path, "empty file: no header row")
    if problem is not None:
        return reject_file(file, problem)
    fast = read_plain_csv(file)
    if fast is not None:
        return fast
    return read_general_csv(file)
