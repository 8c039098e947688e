"""The fast path for the usual CSV export: no quote characters, no blank lines, every row as wide
as the header. One pass over the bytes decides; polars' multi-threaded parser then reads it.

It promises exactly what ``csv_general.read_general_csv`` gives for the same file
(tests/integration/test_csv_paths.py compares the two); any file it is not sure of goes there.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from allocation.io import rejections
from allocation.io.readers.csv_general import CSV_FIELD_SIZE_LIMIT
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.encoding import READ_BLOCK
from allocation.io.readers.frames import FileRead, assemble
from allocation.io.readers.header import map_header
from allocation.io.schemas import empty_rows


@dataclass(frozen=True)
class _PlainShape:
    """What one pass over a CSV file's bytes found (see ``read_plain_csv``)."""

    plain: bool  # no quote character, no blank line, no carriage return outside "\r\n"
    header: bytes  # the first line, without its line ending
    separators: int  # commas in the whole file
    lines: int  # lines in the whole file, the header included


def _plain_shape(path: Path) -> _PlainShape:
    separators = newlines = returns = crlf = 0
    plain = False
    header = b""
    previous = b"\n"  # the byte before the block: a file starting with a line break is blank
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            if size == 0:
                if block.startswith(codecs.BOM_UTF8):
                    block = block[len(codecs.BOM_UTF8) :]
                header, found, _ = block.partition(b"\n")
                plain = bool(found) or len(block) < READ_BLOCK  # a header longer than a block
            size += len(block)
            joined = previous + block
            if not plain or b'"' in block or b"\n\n" in joined or b"\n\r\n" in joined:
                plain = False
                break
            separators += block.count(b",")
            newlines += block.count(b"\n")
            if b"\r" in block:
                returns += block.count(b"\r")
                crlf += joined.count(b"\r\n")
            elif previous == b"\r":
                crlf += joined.startswith(b"\r\n")
            previous = block[-1:]
    if returns != crlf:  # a lone carriage return ends a row for the csv module
        plain = False
    ends_open = previous not in (b"\n", b"")
    return _PlainShape(
        plain=plain and bool(header.strip(b"\r")),
        header=header.removesuffix(b"\r"),
        separators=separators,
        lines=newlines + (1 if ends_open else 0),
    )


def read_plain_csv(file: InboxFile) -> FileRead | None:
    """The fast path for the usual export: no quote characters, no blank lines, every row with
    as many fields as the header. Read by polars' multi-threaded parser; the result is exactly
    what the csv module path gives. ``None`` when the file is not that simple (the csv module
    then reads it and explains every odd row)."""
    shape = _plain_shape(file.path)
    if not shape.plain:
        return None
    names = next(csv.reader([shape.header.decode("utf-8")]))
    header = map_header(file.kind, names)
    if isinstance(header, str):
        return None  # the csv path words the rejection
    width = len(names)
    rows = shape.lines - 1
    if shape.separators != (width - 1) * shape.lines:
        return None  # a ragged row somewhere
    try:
        values = pl.read_csv(
            file.path,
            has_header=False,
            skip_rows=1,
            separator=",",
            quote_char=None,
            schema={f"column_{i}": pl.String for i in range(width)},
            empty_string_is_null=False,
            truncate_ragged_lines=False,
            raise_if_empty=False,
            glob=False,
        )
    except (pl.exceptions.PolarsError, OSError):
        return None
    if values.height != rows:
        return None
    if rows and values.select(pl.max_horizontal(pl.all().str.len_bytes().max())).item() > (
        CSV_FIELD_SIZE_LIMIT
    ):
        return None  # the csv module refuses such a field: let it word the rejection
    if rows == 0:
        return FileRead(file, empty_rows(file.kind), rejections.empty(), header.extra)
    values.columns = list(header.keys)
    lines = pl.int_range(1, rows + 1, dtype=pl.Int64, eager=True)
    return FileRead(
        file=file,
        rows=assemble(file, header, values, lines),
        rejected=rejections.empty(),
        extra_columns=header.extra,
    )
