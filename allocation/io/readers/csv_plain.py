"""The fast path for the usual CSV export: no quote characters, no blank lines, every row as wide
as the header. A look at a chunk's bytes decides; polars' multi-threaded parser then reads it.

It promises exactly what the csv module path (``csv_general``) gives for the same rows
(tests/integration/test_csv_paths.py compares the two); any chunk it is not sure of goes there,
and so does the rest of the file after it (``csv_stream``).
"""

from __future__ import annotations

import polars as pl

from allocation.io.readers.csv_general import CSV_FIELD_SIZE_LIMIT


def plain_header(line: str) -> list[str] | None:
    """The column names of a header line (without its line break) that needs no csv module:
    no quote, no carriage return but the one of a CRLF, not blank. None otherwise."""
    line = line.removesuffix("\r")
    if '"' in line or "\r" in line or not line.strip("\r"):
        return None
    return line.split(",")


def plain_values(data: bytes, width: int) -> pl.DataFrame | None:
    """The rows of ``data`` (whole lines of a CSV file after its header, the last one maybe
    without a line break) as string columns ``column_0..``, when the chunk is plain: no quote
    character, no blank line, no carriage return outside ``\\r\\n``, every row with ``width``
    fields, no field over the csv module's limit. None when it is not (the csv module then
    reads it and explains every odd row)."""
    if not data:
        return pl.DataFrame({f"column_{i}": [] for i in range(width)}, schema=_schema(width))
    if b'"' in data or data.startswith(b"\n") or b"\n\n" in data:
        return None
    # Most exports have no carriage return at all: then the three looks for one are skipped
    # (each a pass over the chunk: 44 ms of 80 for a 27 MB file of 1M lines).
    if b"\r" in data and (
        data.startswith(b"\r\n") or b"\n\r\n" in data or data.count(b"\r") != data.count(b"\r\n")
    ):
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if data.count(b",") != (width - 1) * lines:
        return None  # a ragged row somewhere
    try:
        values = pl.read_csv(
            data,
            has_header=False,
            separator=",",
            quote_char=None,
            schema=_schema(width),
            empty_string_is_null=False,
            truncate_ragged_lines=False,
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:
        return None
    if values.height != lines:
        return None
    if values.select(pl.max_horizontal(pl.all().str.len_bytes().max())).item() > (
        CSV_FIELD_SIZE_LIMIT
    ):
        return None  # the csv module refuses such a field: let it word the rejection
    return values


def _schema(width: int) -> dict[str, type[pl.String]]:
    return {f"column_{i}": pl.String for i in range(width)}
