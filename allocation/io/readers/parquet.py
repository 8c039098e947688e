"""The Parquet reader: every column turned into text as a supplier would have written it, a
slice of rows at a time (pyarrow's batches over the file's row groups), the file read a buffer
at a time, so memory is bounded by the slice, not the file nor its row groups.

A Parquet file is read by position (its footer, at the end, says where each column is), not in
one pass: the file is hashed first, then read through the same open file, and the file's
identity before and after says whether it changed meanwhile (``source.FileSource``).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import time
from typing import Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from allocation.io import rejections
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.frames import FileSlice, assemble, one_line
from allocation.io.readers.header import map_header
from allocation.io.readers.source import FileProblem, FileSource

#: Rows turned into text at a time.
SLICE_ROWS: Final = 500_000
#: Bytes read from the file at a time (a page larger than this is read whole). pyarrow's default
#: pre-buffering reads a row group's columns in ranges of up to tens of MB (53 MiB at once for a
#: 30M-line file written as one row group), held beside the slices: reading the orders of that
#: file took 472 MiB that way, 389 MiB a buffer at a time, in the same time (docs/benchmarks.md).
READ_BUFFER_BYTES: Final = 1 << 20
_MAGIC: Final = b"PAR1"

CUT_PARQUET: Final = (
    "cannot read Parquet: not a complete Parquet file: it starts as one but does not end with "
    "the Parquet footer mark, so it may have been cut while it was being written; send the "
    "file again complete"
)


def read_parquet_slices(
    file: InboxFile, source: FileSource
) -> Generator[FileSlice, None, tuple[str, ...]]:
    head = tail = b""
    for block in source.blocks():
        head = head or block[: len(_MAGIC)]
        tail = (tail + block)[-len(_MAGIC) :]
    if head == _MAGIC and tail != _MAGIC:
        raise FileProblem(CUT_PARQUET)
    try:
        parquet = pq.ParquetFile(
            source.file_object, pre_buffer=False, buffer_size=READ_BUFFER_BYTES
        )
        names = parquet.schema_arrow.names
    except (Exception, pl.exceptions.PanicException) as exc:
        raise FileProblem(f"cannot read Parquet: {one_line(exc)}") from exc
    header = map_header(file.kind, names)
    if isinstance(header, str):
        raise FileProblem(header)
    used = {i for i in header.sources if i is not None}
    line = 0
    as_dates: dict[int, bool] = {}  # datetime columns: all midnights (a date column)?
    as_hex: dict[int, bool] = {}  # binary columns: some value not UTF-8?
    # A column is turned into text the same way in every slice: decided over the whole file,
    # reading only the columns to decide (timestamps, binary).
    schema = parquet.schema_arrow
    decide = [
        i
        for i, kind in enumerate(schema.types)
        if pa.types.is_timestamp(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    ]
    if decide:
        for batch in _batches(parquet, [names[i] for i in decide]):
            for i, column in zip(decide, batch.iter_columns(), strict=True):
                if isinstance(column.dtype, pl.Datetime):
                    midnights = bool((column.drop_nulls().dt.time() == time(0)).all())
                    as_dates[i] = as_dates.get(i, True) and midnights
                elif column.dtype == pl.Binary and not as_hex.get(i, False):
                    try:
                        column.cast(pl.String)
                    except pl.exceptions.PolarsError:
                        as_hex[i] = True  # some value is not UTF-8
    for batch in _batches(parquet):
        texts: list[pl.Series] = []
        for i, (key, column) in enumerate(zip(header.keys, batch.iter_columns(), strict=True)):
            try:
                texts.append(
                    _as_text(
                        column,
                        used=i in used,
                        dates=as_dates.get(i, False),
                        hex_=as_hex.get(i, False),
                    ).alias(key)
                )
            except (Exception, pl.exceptions.PanicException) as exc:
                raise FileProblem(
                    f"cannot read Parquet: column {column.name!r} of type {column.dtype} "
                    f"cannot be turned into text: {one_line(exc)}"
                ) from exc
        lines = pl.int_range(line + 1, line + 1 + batch.height, dtype=pl.Int64, eager=True)
        line += batch.height
        yield FileSlice(
            assemble(file, header, pl.DataFrame(texts, height=batch.height), lines),
            rejections.empty(),
        )
    return header.extra


def _batches(
    parquet: pq.ParquetFile, columns: list[str] | None = None
) -> Generator[pl.DataFrame, None, None]:
    try:
        for batch in parquet.iter_batches(batch_size=SLICE_ROWS, columns=columns, use_threads=True):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame
    except (Exception, pl.exceptions.PanicException) as exc:
        raise FileProblem(f"cannot read Parquet: {one_line(exc)}") from exc


def _as_text(column: pl.Series, *, used: bool, dates: bool, hex_: bool) -> pl.Series:
    """A Parquet column as strings: ints as decimal text, dates as YYYY-MM-DD, nested as JSON.
    ``dates``: a datetime column of midnights only (pandas has no date type: its dates arrive
    as midnight timestamps); ``hex_``: a binary column with bytes that are not UTF-8.

    Raises when a column the pipeline uses cannot be turned into text faithfully.
    """
    dtype = column.dtype
    if dtype == pl.String:
        return column
    if isinstance(dtype, pl.List | pl.Array | pl.Struct):
        if used:  # a list or a struct is no sku, qty or date
            raise ValueError("it holds lists or structs, not values: write it as text or numbers")
        frame = column.to_frame("v")
        as_json = pl.struct("v").struct.json_encode().str.slice(5).str.head(-1)
        return frame.select(pl.when(pl.col("v").is_not_null()).then(as_json)).to_series()
    if isinstance(dtype, pl.Datetime):
        if dates:
            return column.dt.strftime("%Y-%m-%d")
        return column.cast(pl.String)
    if dtype == pl.Binary:
        # Often strings written without the UTF-8 annotation. Bytes that are not UTF-8 are
        # never loaded as text (an unused column is kept in ``raw`` as hex).
        if not hex_:
            return column.cast(pl.String)
        if used:
            return column.cast(pl.String)  # raises, naming the column
        return column.bin.encode("hex")
    return column.cast(pl.String)
