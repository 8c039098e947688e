"""A CSV file read in slices: memory bounded by the slice, not the file.

The file's text comes in chunks cut at a line break (``source.text_chunks``). While the chunks are
plain (no quote, blank line or ragged row: the usual export) polars parses each one
(``csv_plain``); from the first chunk that is not, the csv module reads the rest of the file as
one stream (``csv_general``), so a quoted field may run across chunks. Both give the same rows
and line numbers. A last line without a line break is not trusted: it may have been cut while the
file was being written (``source.CUT_LAST_LINE``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Final

import polars as pl

from allocation.io import rejections
from allocation.io.garbage_collector import gc_paused
from allocation.io.readers.csv_general import Block, csv_reader, general_blocks
from allocation.io.readers.csv_plain import plain_header, plain_values
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.frames import FileSlice, assemble, cut_last_row
from allocation.io.readers.header import Header, map_header
from allocation.io.readers.source import (
    CUT_LAST_LINE,
    FileProblem,
    FileSource,
    TextChunk,
    text_chunks,
)

EMPTY: Final = "empty file: no header row"


@dataclass
class _Lines:
    """Where the line stream is: lines handed to the csv module, and whether it has handed on
    the file's last line."""

    taken: int = 0
    at_end: bool = False
    terminated: bool = True


def read_csv_slices(
    file: InboxFile, source: FileSource, *, fast: bool = True
) -> Generator[FileSlice, None, tuple[str, ...]]:
    """A CSV file's rows, a chunk at a time; returns its unused columns. ``fast=False``: the
    csv module reads every chunk (the tests compare both ways)."""
    chunks = text_chunks(source, EMPTY)
    chunk = next(chunks)
    newline = chunk.text.find("\n")
    names = plain_header(chunk.text if newline < 0 else chunk.text[:newline]) if fast else None
    if names is None:  # quoted or blank header: the csv module reads the whole file
        return (yield from _general(file, chunk.text, chunk, chunks, None, 0, 0))
    header = map_header(file.kind, names)
    if isinstance(header, str):
        raise FileProblem(header)
    width = len(names)
    data = b"" if newline < 0 else chunk.data[chunk.data.find(b"\n") + 1 :]
    text_start = len(chunk.text) if newline < 0 else newline + 1
    line = 0
    while True:
        values = plain_values(data, width)
        if values is None:
            return (
                yield from _general(
                    file, chunk.text[text_start:], chunk, chunks, (header, width), line, line + 1
                )
            )
        if values.height:
            values.columns = list(header.keys)
            lines = pl.int_range(line + 1, line + 1 + values.height, dtype=pl.Int64, eager=True)
            line += values.height
            rows = assemble(file, header, values, lines)
            if chunk.last and not chunk.terminated:
                yield cut_last_row(file, rows, CUT_LAST_LINE)
            else:
                yield FileSlice(rows, rejections.empty())
        if chunk.last:
            return header.extra
        chunk = next(chunks)
        data, text_start = chunk.data, 0


def _general(
    file: InboxFile,
    text: str,
    chunk: TextChunk,
    chunks: Iterator[TextChunk],
    known: tuple[Header, int] | None,
    line: int,
    lines_before: int,
) -> Generator[FileSlice, None, tuple[str, ...]]:
    """The rest of the file through the csv module, from ``text`` (the rest of ``chunk``) on.
    ``known``: the header already read, and its width; ``line``: data rows already read;
    ``lines_before``: file lines before ``text``."""
    where = _Lines()
    reader = csv_reader(_lines(text, chunk, chunks, where))
    with gc_paused():
        try:
            if known is None:
                names = next((row for row in reader if row), None)
                if names is None:
                    raise FileProblem(EMPTY)
                found = map_header(file.kind, names)
                if isinstance(found, str):
                    raise FileProblem(found)
                known = (found, len(names))
            header, width = known
            for block, read in general_blocks(file, header, width, reader, line):
                if where.at_end and not where.terminated:
                    yield _cut(file, block, read)
                    where.terminated = True  # applied once
                else:
                    yield FileSlice(block.rows, block.rejected(file))
        except csv.Error as exc:
            raise FileProblem(
                f"cannot parse CSV: {exc} (file line {lines_before + where.taken})"
            ) from exc
    return header.extra


def _cut(file: InboxFile, block: Block, last: int) -> FileSlice:
    """``block`` holding the file's last row (``last``), whose line has no line break."""
    if last in block.bad_lines:
        at = block.bad_lines.index(last)
        block.bad_reasons[at] = f"{CUT_LAST_LINE}; {block.bad_reasons[at]}"
        return FileSlice(block.rows, block.rejected(file))
    cut = cut_last_row(file, block.rows, CUT_LAST_LINE)
    return FileSlice(cut.rows, pl.concat([block.rejected(file), cut.rejected]).sort("line"))


def _lines(
    text: str, chunk: TextChunk, chunks: Iterator[TextChunk], where: _Lines
) -> Iterator[str]:
    """The file's lines from ``text`` (the rest of ``chunk``) on, the line breaks kept (split as
    a text file opened with ``newline=""`` splits them: what the csv module expects); sets
    ``where.at_end`` just before handing on the file's last line."""
    while not chunk.last:
        for line in io.StringIO(text, newline=""):
            where.taken += 1
            yield line
        chunk = next(chunks)
        text = chunk.text
    where.terminated = chunk.terminated
    previous: str | None = None
    for line in io.StringIO(text, newline=""):
        if previous is not None:
            where.taken += 1
            yield previous
        previous = line
    where.at_end = True
    if previous is not None:
        where.taken += 1
        yield previous
