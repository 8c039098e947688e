"""The one builder of rejection frames (``REJECTION_SCHEMA``: kind, source_file, line, reason, raw).

Every step that rejects something (file discovery, the readers, validation, ingestion) builds its
frame here, so the columns, their order and their dtypes cannot drift apart between steps: the
frames are concatenated into one ``rejected_rows`` table and one rejected report. ``line`` null
means the whole file; ``raw`` is the row as received (JSON text), null when there is no row.

Callers use the module (``rejections.build(...)``), not names imported from it: a test swaps
``build`` for a recording one and sees every producer go through it.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from allocation.io.schemas import REJECTION_SCHEMA

__all__ = ["REJECTION_SCHEMA", "build", "empty", "from_records"]

#: One value for every rejection (``None``: null).
Scalar = str | int | None
#: What ``build`` takes per column: an expression over ``rows``, one value per rejection, or one
#: value for every rejection.
Values = pl.Expr | pl.Series | Sequence[Scalar] | Scalar


def build(
    *,
    kind: Values,
    source_file: Values,
    line: Values,
    reason: Values,
    raw: Values,
    rows: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """A rejection frame with exactly ``REJECTION_SCHEMA``.

    With ``rows``, one rejection per row of ``rows`` and the expressions evaluated over it (a
    single value is repeated for every row). Without, one rejection per value of the sequences
    given, or a single rejection when every column is a single value (a file rejected whole).
    """
    given: dict[str, Values] = {
        "kind": kind,
        "source_file": source_file,
        "line": line,
        "reason": reason,
        "raw": raw,
    }
    columns = [
        _expression(given[name], dtype).alias(name) for name, dtype in REJECTION_SCHEMA.items()
    ]
    if rows is None:
        return pl.select(columns)
    # with_columns, not select: a single value must repeat for each of rows' rows, none included.
    return rows.with_columns(columns).select(list(REJECTION_SCHEMA))


def empty() -> pl.DataFrame:
    """A rejection frame with no rows."""
    return build(kind=[], source_file=[], line=[], reason=[], raw=[])


def from_records(records: Iterable[Mapping[str, Any]] | None = None) -> pl.DataFrame:
    """A rejection frame from dicts keyed by its columns: empty without ``records``.

    Missing keys become null (e.g. ``line`` for a whole-file rejection); an unknown key raises
    ``ValueError`` instead of being dropped.
    """
    rows = [dict(record) for record in records] if records is not None else []
    unknown = sorted({key for row in rows for key in row} - set(REJECTION_SCHEMA))
    if unknown:
        raise ValueError(
            f"rejection rows have unknown keys {unknown}; allowed: {list(REJECTION_SCHEMA)}"
        )
    values = {name: [row.get(name) for row in rows] for name in REJECTION_SCHEMA}
    return build(
        kind=values["kind"],
        source_file=values["source_file"],
        line=values["line"],
        reason=values["reason"],
        raw=values["raw"],
    )


def _expression(values: Values, dtype: pl.DataType) -> pl.Expr:
    if isinstance(values, pl.Expr):
        return values.cast(dtype)
    if isinstance(values, pl.Series):
        return pl.lit(values.cast(dtype))
    if values is None or isinstance(values, (str, int)):
        return pl.lit(values, dtype)
    return pl.lit(pl.Series(values=list(values), dtype=dtype))
