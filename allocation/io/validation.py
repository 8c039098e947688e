"""Reader string frames -> typed valid rows + rejected rows with reasons (design.md).

How a frame is validated (vectorised, no Python loop over rows):

1. The input frame is checked against the reader contract (columns and dtypes); a mismatch is a
   programming error and raises ``FrameContractError``.
2. Text is stripped and cast in polars (never by pandera coercion: it loses the row index of the
   later checks once a cast fails). Each column gets
   a *pre-check* (``prechecks.py``) whose reason says what the cast, the emptiness or the
   presence rule found ("qty 'ten' is not a whole number", "sku is empty", "source_file is
   missing"); a failed value becomes null.
3. The typed candidate frame (every row, in input order) is validated with the pandera model
   (``lazy=True``, on a collected DataFrame). Each failing check's own words (its ``error=`` in
   ``allocation.io.schemas``, the failing value put in for ``{value}``) become the row's reason
   for that column, so value rules such as ``qty >= 1`` and their wording live in the model only.
   A null left by a failed pre-check fails the model's nullability too; the pre-check has said
   why, so that failure is not repeated (every non-nullable column has a pre-check: ``_Spec``
   checks it). A failure without a row index (wrong dtype, missing column) means this module
   built a wrong frame: ``FrameContractError``.
4. A row's reasons are joined with "; " in column order. Rows without a reason are ``valid``
   (typed, stripped), the others are ``rejected`` (``raw`` as received). Both keep the input
   order, and ``len(valid) + len(rejected) == len(rows)``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from allocation.io import rejections
from allocation.io.prechecks import Precheck, date, present, shown, text, whole_number
from allocation.io.rejections import REJECTION_SCHEMA
from allocation.io.rejections import from_records as rejection_frame
from allocation.io.schemas import (
    REQUIRED_COLUMNS,
    VALUE,
    BatchInput,
    Kind,
    OrderLineInput,
    raw_text,
)

__all__ = [
    "REJECTION_SCHEMA",
    "FrameContractError",
    "Validated",
    "leave_out_plain_raw",
    "rejection_frame",
    "validate_batches",
    "validate_orders",
]


_ROW: Final = "__row"
_FAILED: Final = "__failed"
_UNPLAIN: Final = "__unplain"
_RECEIVED: Final = "__received_"


class FrameContractError(ValueError):
    """A frame does not have the columns/dtypes its contract promises: a bug, not bad data."""


@dataclass(frozen=True)
class Validated:
    """The outcome of validating one reader frame."""

    valid: pl.DataFrame  # typed rows (design.md "Validated output") in the input order
    rejected: pl.DataFrame  # REJECTION_SCHEMA, one row per rejected input row, in input order


@dataclass(frozen=True)
class _Spec:
    kind: Kind
    model: type[pa.DataFrameModel]
    prechecks: dict[str, Callable[[str], Precheck]]  # per column; the others pass as received

    def __post_init__(self) -> None:
        # pandera words no null: a non-nullable column without a pre-check could reject a row
        # with no reason a person can read.
        columns = self.model.to_schema().columns
        unworded = [c for c, column in columns.items() if not column.nullable]
        unworded = [c for c in unworded if c not in self.prechecks]
        if unworded:
            raise TypeError(f"{self.model.__name__}: no pre-check words a null in {unworded}")

    @property
    def columns(self) -> list[str]:
        return list(self.model.to_schema().columns)


_ORDERS: Final = _Spec(
    "orders",
    OrderLineInput,
    {
        "source_file": present,
        "line": present,
        "orderid": text,
        "sku": text,
        "qty": whole_number,
    },
)
_BATCHES: Final = _Spec(
    "batches",
    BatchInput,
    {
        "source_file": present,
        "line": present,
        "reference": text,
        "sku": text,
        "qty": whole_number,
        "eta": date,
    },
)


def validate_orders(rows: pl.DataFrame) -> Validated:
    """Validate an orders string frame (``source_file, line, orderid, sku, qty, raw``)."""
    return _validate(rows, _ORDERS)


def validate_batches(rows: pl.DataFrame) -> Validated:
    """Validate a batches string frame (``source_file, line, reference, sku, qty, eta, raw``)."""
    return _validate(rows, _BATCHES)


def leave_out_plain_raw(valid: pl.DataFrame, kind: Kind) -> pl.DataFrame:
    """Valid rows with `raw` null where it is exactly `raw_text` of the typed row (the usual
    export: the required columns in order, values without stray spaces). `raw` is needed again
    only for the few rows a later step rejects, and `coalesce(raw, raw_text(kind))` gives it
    back byte for byte; kept for every row it held a copy of every line's text. Rows of a file the
    reader left `raw` out of arrive here null already (or worded, when typing changed them)."""
    if valid["raw"].null_count() == valid.height:
        return valid
    return valid.with_columns(
        pl.when(pl.col("raw") != raw_text(kind)).then(pl.col("raw")).alias("raw")
    )


# --------------------------------------------------------------------------------------------
# Implementation
# --------------------------------------------------------------------------------------------


def _validate(rows: pl.DataFrame, spec: _Spec) -> Validated:
    columns = spec.columns
    frame = _conform_input(rows, spec).with_row_index(_ROW)

    # Typed candidate values, pre-check reasons and whether a pre-check failed, per column.
    # The reasons are worded only for the rows that failed something (polars evaluates every
    # branch of a when/then for every row: wording them for all rows cost most of the time).
    checks = {column: precheck(column) for column, precheck in spec.prechecks.items()}
    typed = {column: check.value for column, check in checks.items()}
    why = {column: check.reason for column, check in checks.items()}

    # The typed values first, then the failures from their nulls: asking both of one select
    # evaluated every cast twice (docs/benchmarks.md has the figures).
    candidates = frame.select(
        pl.col(_ROW), *[typed.get(column, pl.col(column)).alias(column) for column in columns]
    )
    candidates = candidates.with_columns(
        frame.select(
            pl.any_horizontal(
                check.failed(pl.lit(candidates[column])) for column, check in checks.items()
            ).alias(_FAILED)
        ).to_series()
    )
    # A row whose raw the reader left out (null) and whose typed values read differently from
    # what was received (" 3", "+3", an empty eta) gets it worded now, from the received text.
    if candidates["raw"].null_count():
        unplain = _unplain(candidates, frame, spec.kind)
        if unplain.any():
            worded_raw = frame.filter(unplain).select(raw_text(spec.kind))
            candidates = candidates.with_columns(
                candidates["raw"].scatter(unplain.arg_true(), worded_raw.to_series())
            )
    bad = candidates.filter(pl.col(_FAILED))[_ROW]
    model_reasons = _model_reasons(candidates.select(columns), spec, prechecked=bad)
    if model_reasons is not None:
        bad = pl.concat([bad, model_reasons[_ROW]]).unique().sort()
    if not bad.len():
        return Validated(valid=candidates.select(columns), rejected=rejections.empty())

    # rechunk: polars 2.1 panics ("i < self.len()") wording a filtered multi-chunk frame.
    worded = (
        frame.filter(pl.col(_ROW).is_in(bad.implode()))
        .rechunk()
        .select(
            pl.col(_ROW),
            "source_file",
            "line",
            pl.coalesce("raw", raw_text(spec.kind)).alias("raw"),  # the reader may leave it out
            *[expr.alias(_why(column)) for column, expr in why.items()],
        )
    )
    if model_reasons is not None:
        worded = worded.join(model_reasons, on=_ROW, how="left", maintain_order="left")

    # Per column: the pre-check reason, else what the model found; then the row's reasons.
    # A model failure outside the model's columns (a frame-wide check) still counts, last.
    per_column = [_column_reason(worded, column) for column in columns]
    known = {_model_column(column) for column in columns}
    per_column += [
        pl.col(name)
        for name in worded.columns
        if name.startswith(_model_column("")) and name not in known
    ]
    worded = worded.with_columns(
        pl.concat_str(per_column, separator="; ", ignore_nulls=True).alias("reason")
    ).with_columns(pl.when(pl.col("reason") != "").then(pl.col("reason")).alias("reason"))

    is_rejected = pl.col("reason").is_not_null()
    rejected_rows = worded.filter(is_rejected)[_ROW]
    valid = candidates.filter(~pl.col(_ROW).is_in(rejected_rows.implode())).select(columns)
    # source_file, line and raw pass through untouched: the rejection shows the row as received.
    rejected = rejections.build(
        rows=worded.filter(is_rejected),
        kind=spec.kind,
        source_file=pl.col("source_file"),
        line=pl.col("line"),
        reason=pl.col("reason"),
        raw=pl.col("raw"),
    )
    return Validated(valid=valid, rejected=rejected)


def _unplain(candidates: pl.DataFrame, frame: pl.DataFrame, kind: Kind) -> pl.Series:
    """Rows without raw whose typed values, as text, are not what was received: compared on the
    typed columns already computed (typing them a second time doubled the cost)."""
    required = REQUIRED_COLUMNS[kind]
    received = frame.select(pl.col(column).alias(f"{_RECEIVED}{column}") for column in required)
    same = [
        pl.col(column).cast(pl.String).eq_missing(pl.col(f"{_RECEIVED}{column}"))
        for column in required
    ]
    both = pl.concat([candidates.select("raw", *required), received], how="horizontal")
    return both.select((pl.col("raw").is_null() & ~pl.all_horizontal(same)).alias(_UNPLAIN))[
        _UNPLAIN
    ]


def _conform_input(rows: pl.DataFrame, spec: _Spec) -> pl.DataFrame:
    """The reader-contract columns of ``rows``: all ``String`` but ``line`` (``Int64``).

    An all-null column of dtype ``Null`` is accepted and cast; other columns are ignored
    (``raw`` already holds every column of the file).
    """
    expected = {column: (pl.Int64 if column == "line" else pl.String) for column in spec.columns}
    missing = [column for column in expected if column not in rows.columns]
    wrong = {
        column: str(rows.schema[column])
        for column, dtype in expected.items()
        if column in rows.columns and rows.schema[column] not in (dtype, pl.Null)
    }
    if missing or wrong:
        raise FrameContractError(
            f"{spec.kind} frame breaks the reader contract "
            f"({', '.join(f'{c}: {d}' for c, d in expected.items())}): "
            f"missing columns {missing}, wrong dtypes {wrong}"
        )
    return rows.select(pl.col(column).cast(dtype) for column, dtype in expected.items())


def _why(column: str) -> str:
    return f"__why_{column}"


def _model_column(column: str) -> str:
    return f"__model_{column}"


def _column_reason(candidates: pl.DataFrame, column: str) -> pl.Expr:
    """The pre-check reason of ``column``, else the model's; a failed cast explains its null."""
    sources = [name for name in (_why(column), _model_column(column)) if name in candidates.columns]
    if not sources:
        return pl.lit(None, pl.String)
    return pl.coalesce(sources)


def _model_reasons(
    typed: pl.DataFrame, spec: _Spec, prechecked: pl.Series | None = None
) -> pl.DataFrame | None:
    """Row-level model failures as ``__row`` + one ``__model_<column>`` reason column each.

    ``None`` when no check with words of its own failed. ``prechecked``: the rows a pre-check
    rejected (and worded). Raises ``FrameContractError`` for a failure that has no row index (the
    frame itself is wrong) and for a null that no pre-check explained.
    """
    try:
        spec.model.validate(typed, lazy=True)
    except SchemaErrors as errors:
        explained = prechecked if prechecked is not None else pl.Series(dtype=pl.get_index_type())
        return _failure_reasons(errors, spec, explained)
    return None


def _failure_reasons(
    errors: SchemaErrors, spec: _Spec, prechecked: pl.Series
) -> pl.DataFrame | None:
    """``_model_reasons`` for the failures in ``errors``."""
    failures: pl.DataFrame = errors.failure_cases.with_columns(
        pl.col("index").cast(pl.get_index_type())
    )

    schema_level = failures.filter(pl.col("index").is_null())
    if schema_level.height:
        details = schema_level.select("column", "check", "failure_case").rows()
        raise FrameContractError(
            f"typed {spec.kind} frame does not match {spec.model.__name__} "
            f"(a bug in allocation.io.validation, not bad data): {details}"
        ) from errors

    # pandera's nullability has no words; the pre-check of that column has said why (_Spec).
    nulls = pl.col("check") == "not_nullable"
    unexplained = failures.filter(nulls & ~pl.col("index").is_in(prechecked.implode()))
    if unexplained.height:
        raise FrameContractError(
            f"{spec.kind}: nulls no pre-check explained in columns "
            f"{unexplained['column'].unique(maintain_order=True).to_list()} "
            "(a bug in allocation.io.validation, not bad data)"
        ) from errors
    worded = failures.filter(~nulls).select(
        pl.col("index").alias(_ROW),
        pl.col("column"),
        # The check's own words, with the failing value where its error says {value}.
        pl.col("check")
        .str.replace(VALUE, shown(pl.col("failure_case").fill_null("null")), literal=True)
        .alias("message"),
        pl.col("check_number").fill_null(-1).alias("order"),
    )
    if not worded.height:
        return None
    messages = (
        worded.sort(_ROW, "column", "order")
        .group_by(_ROW, "column", maintain_order=True)
        .agg(pl.col("message").str.join("; "))
    )
    wide = messages.pivot(on="column", index=_ROW, values="message")
    return wide.rename({c: _model_column(c) for c in wide.columns if c != _ROW})
