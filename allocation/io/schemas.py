"""Every pandera ``DataFrameModel`` of the pipeline (polars backend), inputs and outputs, and the
reader contract (``Kind``, ``REQUIRED_COLUMNS``, ``rows_schema``, ``raw_text``) that the inbox
readers hand on and validation and ingestion read.

Inputs (``OrderLineInput``, ``BatchInput``) describe the *typed* frames that
``allocation.io.validation`` hands on (design.md "Validated output"): the reader's string frames
are cast in polars first and only then validated here, so no model coerces (pandera's coercion of
strings reports every failed value, then fails the later checks at column level with no row
index, so no reason could name the row).

Outputs (``AllocationReport``, ``OutOfStockReport``, ``RejectedReport``, ``ReallocationReport``)
describe the report frames; validate them before writing.

Conventions shared by all models (``_Model.Config``):

- the set of columns is strict and ordered: the order of the fields is the column order;
- ``coerce=False``: dtypes must already be right;
- a column is non-nullable unless its field says ``nullable=True``;
- identifiers and free text that must say something use ``_NON_EMPTY`` (at least one
  non-whitespace character; a null passes that check and is caught by nullability instead).

Every check of an input model carries its own words (``error=``): they are the reason a rejected
row shows, with ``{value}`` standing for the failing value (``qty 0 must be at least 1``).
pandera's nullability has no words of its own; ``allocation.io.prechecks`` words every null of a
non-nullable input column before the model runs ("sku is empty", "source_file is missing").

Validate collected ``pl.DataFrame`` objects, never ``pl.LazyFrame``: on a LazyFrame pandera checks
only the schema by default and value checks pass silently (tests/unit/test_schemas.py shows it).
"""

from typing import Any, Final, Literal

import pandera.polars as pa
import polars as pl
from pandera.api.polars.model_config import BaseConfig
from pandera.typing.polars import Series

__all__ = [
    "REJECTION_KINDS",
    "REJECTION_SCHEMA",
    "REQUIRED_COLUMNS",
    "VALUE",
    "AllocationReport",
    "BatchInput",
    "Kind",
    "OrderLineInput",
    "OutOfStockReport",
    "ReallocationReport",
    "RejectedReport",
    "empty_rows",
    "raw_text",
    "rows_schema",
]

# --------------------------------------------------------------------------------------------
# The reader contract (design.md "Reader output"): what every inbox reader hands on
# --------------------------------------------------------------------------------------------

Kind = Literal["orders", "batches"]

#: The columns a file of each kind must give, in the reader frame's order.
REQUIRED_COLUMNS: Final[dict[Kind, tuple[str, ...]]] = {
    "orders": ("orderid", "sku", "qty"),
    "batches": ("reference", "sku", "qty", "eta"),
}


def raw_text(kind: Kind) -> pl.Expr:
    """``raw`` for a row that has exactly the required columns of ``kind``, in order: the JSON
    object of their values as text, worded as the reader words ``raw`` (``"qty": "3"``,
    ``"eta": "2026-12-01"``). Over a reader frame, the row as received; over typed rows, the row
    as it would have been received without stray spaces or signs."""
    return pl.struct(pl.col(c).cast(pl.String) for c in REQUIRED_COLUMNS[kind]).struct.json_encode()


def rows_schema(kind: Kind) -> pl.Schema:
    """Column contract of a reader frame of ``kind``: every value a string as received."""
    return pl.Schema(
        {
            "source_file": pl.String,
            "line": pl.Int64,
            **dict.fromkeys(REQUIRED_COLUMNS[kind], pl.String),
            "raw": pl.String,
        }
    )


def empty_rows(kind: Kind) -> pl.DataFrame:
    """A reader frame of ``kind`` with no rows."""
    return pl.DataFrame(schema=rows_schema(kind))


#: The rejection frame every step produces (design.md "Rejections"): the reader's, validation's
#: and ingestion's rejects, and the `rejected_rows` table without its run columns. ``line`` null
#: means the whole file. ``RejectedReport`` checks the same columns' values.
REJECTION_SCHEMA: Final = pl.Schema(
    {
        "kind": pl.String,
        "source_file": pl.String,
        "line": pl.Int64,
        "reason": pl.String,
        "raw": pl.String,
    }
)

#: Allowed values of ``RejectedReport.kind``: ``file`` is an inbox entry in neither kind folder.
REJECTION_KINDS: tuple[str, ...] = ("orders", "batches", "file")

#: Regex for "has at least one non-whitespace character" (``str_contains`` searches, unanchored).
_NON_EMPTY = r"\S"

#: Stands for the failing value in an input check's ``error`` (see the module docstring).
VALUE: Final = "{value}"


# ``Field`` passes a dict to the check as its keyword arguments (pandera documents it; its
# annotation of ``str_contains`` says ``str`` only, hence ``Any``).
def _said(column: str) -> Any:
    """``str_contains`` options: ``column`` must say something, else "<column> is empty"."""
    return {"pattern": _NON_EMPTY, "error": f"{column} is empty"}


def _at_least(minimum: int, error: str) -> Any:
    """``ge`` options: at least ``minimum``, else ``error`` (``VALUE``: the failing value)."""
    return {"min_value": minimum, "error": error}


class _Model(pa.DataFrameModel):
    """Shared configuration of every model in this module."""

    class Config(BaseConfig):
        strict = True  # no missing and no extra columns
        ordered = True  # columns in the order of the fields
        coerce = False  # cast in polars before validating, never here


# --------------------------------------------------------------------------------------------
# Inputs: typed rows after validation (design.md "Validated output")
# --------------------------------------------------------------------------------------------


class OrderLineInput(_Model):
    """A validated order line: one row of an orders file, typed, text stripped."""

    source_file: Series[pl.String]
    line: Series[pl.Int64]
    orderid: Series[pl.String] = pa.Field(str_contains=_said("orderid"))
    sku: Series[pl.String] = pa.Field(str_contains=_said("sku"))
    qty: Series[pl.Int64] = pa.Field(ge=_at_least(1, f"qty {VALUE} must be at least 1"))
    # Null: the row was exactly its columns as text (`raw_text` above words it).
    raw: Series[pl.String] = pa.Field(nullable=True)


class BatchInput(_Model):
    """A validated batch: one row of a batches file, typed, stripped; null ``eta``: in stock."""

    source_file: Series[pl.String]
    line: Series[pl.Int64]
    reference: Series[pl.String] = pa.Field(str_contains=_said("reference"))
    sku: Series[pl.String] = pa.Field(str_contains=_said("sku"))
    qty: Series[pl.Int64] = pa.Field(ge=_at_least(0, f"qty {VALUE} must not be negative"))
    eta: Series[pl.Date] = pa.Field(nullable=True)
    raw: Series[pl.String] = pa.Field(nullable=True)  # null: see OrderLineInput.raw


# --------------------------------------------------------------------------------------------
# Outputs: reports written by the pipeline
# --------------------------------------------------------------------------------------------


class AllocationReport(_Model):
    """One allocation of an order line to a batch, made in run ``run_id``."""

    orderid: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    sku: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    qty: Series[pl.Int64] = pa.Field(ge=1)
    batchref: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    eta: Series[pl.Date] = pa.Field(nullable=True)
    business_date: Series[pl.Date]
    run_id: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)


class OutOfStockReport(_Model):
    """An order line still waiting for stock. Null ``next_eta``: no incoming batch known."""

    orderid: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    sku: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    qty: Series[pl.Int64] = pa.Field(ge=1)
    first_seen: Series[pl.Date]
    days_waiting: Series[pl.Int64] = pa.Field(ge=0)
    available: Series[pl.Int64] = pa.Field(ge=0)
    shortfall: Series[pl.Int64] = pa.Field(ge=1)
    next_eta: Series[pl.Date] = pa.Field(nullable=True)


class RejectedReport(_Model):
    """A rejected row (or, with a null ``line``, a whole rejected file) and why.

    Same columns as the frames ``allocation.io.rejections.build`` makes. ``raw`` is the row as received
    (JSON text), null when there is no row to show.
    """

    kind: Series[pl.String] = pa.Field(isin=REJECTION_KINDS)
    source_file: Series[pl.String]
    line: Series[pl.Int64] = pa.Field(ge=1, nullable=True)
    reason: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    raw: Series[pl.String] = pa.Field(nullable=True)


class ReallocationReport(_Model):
    """An allocation moved off batch ``from_batchref``; null ``to_batchref``: back to waiting."""

    orderid: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    sku: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    qty: Series[pl.Int64] = pa.Field(ge=1)
    from_batchref: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    to_batchref: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY, nullable=True)
    reason: Series[pl.String] = pa.Field(str_contains=_NON_EMPTY)
    business_date: Series[pl.Date]
