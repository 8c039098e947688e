"""The general CSV reader, over Python's csv module: quoted fields, blank lines, ragged rows.
Every odd row is rejected with its own reason and the rest of the file loads.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Final

import polars as pl

from allocation.io import rejections
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.frames import assemble, dumps
from allocation.io.readers.header import Header
from allocation.io.schemas import empty_rows

# Largest CSV field accepted, in characters. ``csv.field_size_limit`` is process-wide; 1 MiB is
# far above any real value here and still stops a runaway quote from eating a whole file.
CSV_FIELD_SIZE_LIMIT: Final = 1 << 20
# Rows turned into one polars frame at a time (bounds the Python objects alive at once).
BLOCK_ROWS: Final = 200_000


def csv_reader(lines: Iterator[str]) -> Iterator[list[str]]:
    """Python's csv reader over lines of text, with the field limit of this module."""
    if csv.field_size_limit() < CSV_FIELD_SIZE_LIMIT:
        csv.field_size_limit(CSV_FIELD_SIZE_LIMIT)
    return csv.reader(lines)


@dataclass
class Block:
    """Some consecutive data rows of a file: the good ones as a reader frame, the ragged ones
    as rejections (``line``: the 1-based data row)."""

    rows: pl.DataFrame
    bad_lines: list[int] = field(default_factory=list)
    bad_reasons: list[str] = field(default_factory=list)
    bad_raws: list[str | None] = field(default_factory=list)

    def rejected(self, file: InboxFile) -> pl.DataFrame:
        return rejections.build(
            kind=file.kind,
            source_file=file.source_file,
            line=list(self.bad_lines),
            reason=self.bad_reasons,
            raw=self.bad_raws,
        )


def general_blocks(
    file: InboxFile, header: Header, width: int, reader: Iterator[list[str]], line: int
) -> Iterator[tuple[Block, int]]:
    """The data rows of ``reader`` (blank lines skipped), ``BLOCK_ROWS`` at a time, numbered
    after ``line`` rows already read; each block with the data rows read so far. Raises
    ``csv.Error`` for a file the csv module cannot parse at all."""
    while block := list(islice(reader, BLOCK_ROWS)):
        rows = [row for row in block if row]  # csv yields [] for a blank line: skipped
        if not rows:
            continue
        found = Block(empty_rows(file.kind))
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
                    found.bad_lines.append(number)
                    found.bad_reasons.append(ragged_reason(row, width))
                    found.bad_raws.append(dumps({"fields": row}))  # raw is always an object
            lines = good_lines
        line += len(rows)
        if good:
            found.rows = _csv_frame(file, header, good, lines)
        yield found, line


def ragged_reason(row: list[str], width: int) -> str:
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
