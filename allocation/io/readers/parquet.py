"""The Parquet reader: every column turned into text as a supplier would have written it."""

from __future__ import annotations

from datetime import time

import polars as pl

from allocation.io import rejections
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.frames import FileRead, assemble, one_line, reject_file
from allocation.io.readers.header import map_header


def read_parquet(file: InboxFile) -> FileRead:
    try:
        table = pl.read_parquet(file.path)
    except (Exception, pl.exceptions.PanicException) as exc:
        return reject_file(file, f"cannot read Parquet: {one_line(exc)}")
    header = map_header(file.kind, table.columns)
    if isinstance(header, str):
        return reject_file(file, header)
    texts: list[pl.Series] = []
    for i, (key, column) in enumerate(zip(header.keys, table.iter_columns(), strict=True)):
        try:
            texts.append(_as_text(column, used=i in header.sources).alias(key))
        except (Exception, pl.exceptions.PanicException) as exc:
            return reject_file(
                file,
                f"cannot read Parquet: column {column.name!r} of type {column.dtype} "
                f"cannot be turned into text: {one_line(exc)}",
            )
    lines = pl.int_range(1, table.height + 1, dtype=pl.Int64, eager=True)
    return FileRead(
        file=file,
        rows=assemble(file, header, pl.DataFrame(texts, height=table.height), lines),
        rejected=rejections.empty(),
        extra_columns=header.extra,
    )


def _as_text(column: pl.Series, *, used: bool) -> pl.Series:
    """A Parquet column as strings: ints as decimal text, dates as YYYY-MM-DD, nested as JSON.

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
        # pandas has no date type: its dates arrive as midnight timestamps. A column of
        # midnights is a date column.
        if (column.drop_nulls().dt.time() == time(0)).all():
            return column.dt.strftime("%Y-%m-%d")
        return column.cast(pl.String)
    if dtype == pl.Binary:
        # Often strings written without the UTF-8 annotation. Bytes that are not UTF-8 are
        # never loaded as text (an unused column is kept in ``raw`` as hex).
        try:
            return column.cast(pl.String)
        except pl.exceptions.PolarsError:
            if used:
                raise
            return column.bin.encode("hex")
    return column.cast(pl.String)
