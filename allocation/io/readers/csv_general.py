"""The general CSV reader, over Python's csv module: quoted fields, blank lines, ragged rows.
Every odd row is rejected with its own reason and the rest of the file loads.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Final

import polars as pl

from allocation.io import rejections
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.frames import (
    FileRead,
    assemble,
    dumps,
    gc_paused,
    reject_file,
)
from allocation.io.readers.header import Header, map_header
from allocation.io.schemas import empty_rows

# Largest CSV field accepted, in characters. ``csv.field_size_limit`` is process-wide; 1 MiB is
# far above any real value here and still stops a runaway quote from eating a whole file.
CSV_FIELD_SIZE_LIMIT: Final = 1 << 20
# Rows turned into one polars frame at a time (bounds the Python objects alive at once).
CHUNK_ROWS: Final = 200_000


def read_general_csv(file: InboxFile) -> FileRead:
    """Reads a CSV file that is UTF-8 text (``encoding.text_problem`` said so) with the csv
    module; a file it cannot parse at all is rejected whole."""
    if csv.field_size_limit() < CSV_FIELD_SIZE_LIMIT:
        csv.field_size_limit(CSV_FIELD_SIZE_LIMIT)
    with file.path.open(encoding="utf-8-sig", newline="") as handle, gc_paused():
        reader = csv.reader(handle)
        try:
            return _parse_csv(file, reader)
        except csv.Error as exc:
            return reject_file(file, f"cannot parse CSV: {exc} (file line {reader.line_num})")


def _parse_csv(file: InboxFile, reader: Iterator[list[str]]) -> FileRead:
    names = next((row for row in reader if row), None)
    if names is None:
        return reject_file(file, "empty file: no header row")
    header = map_header(file.kind, names)
    if isinstance(header, str):
        return reject_file(file, header)
    width = len(names)
    frames: list[pl.DataFrame] = []
    bad_lines: list[int | None] = []
    bad_reasons: list[str] = []
    bad_raws: list[str | None] = []
    line = 0  # data rows seen so far
    while block := list(islice(reader, CHUNK_ROWS)):
        rows = [row for row in block if row]  # csv yields [] for a blank line: skipped
        if not rows:
            continue
        if set(map(len, rows)) == {width}:  # the usual case: no ragged row in this chunk
            good = rows
            lines: Sequence[int] = range(line + 1, line + 1 + len(rows))
        else:
            good = []
            good_lines: list[int] = []
            for number, row in enumerate(rows, line + 1):
                if len(row) == width:
                    good.append(row)
                    good_lines.append(number)
                else:
                    bad_lines.append(number)
                    bad_reasons.append(_ragged_reason(row, width))
                    bad_raws.append(dumps({"fields": row}))  # raw is always an object
            lines = good_lines
        line += len(rows)
        if good:
            frames.append(_csv_frame(file, header, good, lines))
    rows_frame = pl.concat(frames) if frames else empty_rows(file.kind)
    return FileRead(
        file=file,
        rows=rows_frame,
        rejected=rejections.build(
            kind=file.kind,
            source_file=file.source_file,
            line=bad_lines,
            reason=bad_reasons,
            raw=bad_raws,
        ),
        extra_columns=header.extra,
    )


def _ragged_reason(row: list[str], width: int) -> str:
    """Why a row with the wrong number of fields is rejected. A field holding line breaks means
    a quote opened and was closed lines later (or never): say so, since the next rows of the
    file were swallowed into this one."""
    found = f"row has {len(row)} field{'' if len(row) == 1 else 's'}, header has {width}"
    breaks = sum(field.count("\n") for field in row[:-1]) + row[-1].rstrip("\r\n").count("\n")
    if not breaks:
        return found
    opened = next(i for i, field in enumerate(row, 1) if "\n" in field)
    return (
        f"{found}: the quote opening field {opened} is not closed on its line, so the "
        f"next {breaks} line(s) of the file were read into this row; close the quote (or "
        'double a quote inside a value: "") and send the file again'
    )


def _csv_frame(
    file: InboxFile, header: Header, rows: list[list[str]], lines: Sequence[int]
) -> pl.DataFrame:
    values = pl.DataFrame(
        [
            pl.Series(key, [row[i] for row in rows], dtype=pl.String)
            for i, key in enumerate(header.keys)
        ]
    )
    return assemble(file, header, values, pl.Series("line", lines, dtype=pl.Int64))
