"""Reader string frames -> typed valid rows + rejected rows with reasons (design.md).

How a frame is validated (vectorised, no Python loop over rows):

1. The input frame is checked against the reader contract (columns and dtypes); a mismatch is a
   programming error and raises ``FrameContractError``.
2. Text is stripped and cast in polars (never by pandera coercion: it loses the row index of the
   later checks once a cast fails). Each column gets
   a *pre-check* reason expression (``prechecks.py``) for what the cast or the emptiness rule found
   ("qty 'ten' is not a whole number", "sku is empty", ...); a failed value becomes null.
3. The typed candidate frame (every row, in input order) is validated with the pandera model
   (``lazy=True``, on a collected DataFrame). The row indexes of ``SchemaErrors.failure_cases``
   become reasons too, so value rules such as ``qty >= 1`` live in ``allocation.io.schemas`` only.
   A model failure on a column that already has a pre-check reason in that row is a consequence of
   it (the null left by a failed cast) and is not repeated. A failure without a row index (wrong
   dtype, missing column) means this module built a wrong frame: ``FrameContractError``.
4. A row's reasons are joined with "; " in column order. Rows without a reason are ``valid``
   (typed, stripped), the others are ``rejected`` (``raw`` as received). Both keep the input
   order, and ``len(valid) + len(rejected) == len(rows)``.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from allocation.io.prechecks import date, shown, text, whole_number
from allocation.io.schemas import (
    REJECTION_SCHEMA,
    REQUIRED_COLUMNS,
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
    text_columns: tuple[str, ...]  # stripped; empty -> "<col> is empty"
    has_eta: bool

    @property
    def columns(self) -> list[str]:
        return list(self.model.to_schema().columns)


_ORDERS: Final = _Spec("orders", OrderLineInput, ("orderid", "sku"), has_eta=False)
_BATCHES: Final = _Spec("batches", BatchInput, ("reference", "sku"), has_eta=True)


def validate_orders(rows: pl.DataFrame) -> Validated:
    """Validate an orders string frame (``source_file, line, orderid, sku, qty, raw``)."""
    return _validate(rows, _ORDERS)


def validate_batches(rows: pl.DataFrame) -> Validated:
    """Validate a batches string frame (``source_file, line, reference, sku, qty, eta, raw``)."""
    return _validate(rows, _BATCHES)


def rejection_frame(rows: Iterable[Mapping[str, Any]] | None = None) -> pl.DataFrame:
    """A rejection frame with exactly ``REJECTION_SCHEMA``: empty, or built from ``rows``.

    Missing keys become null (e.g. ``line`` for a whole-file rejection); an unknown key raises
    ``ValueError`` instead of being dropped.
    """
    records = [dict(row) for row in rows] if rows is not None else []
    unknown = sorted({key for record in records for key in record} - set(REJECTION_SCHEMA))
    if unknown:
        allowed = list(REJECTION_SCHEMA)
        raise ValueError(f"rejection rows have unknown keys {unknown}; allowed: {allowed}")
    return pl.DataFrame(records, schema=REJECTION_SCHEMA)


def leave_out_plain_raw(valid: pl.DataFrame, kind: Kind) -> pl.DataFrame:
    """Valid rows with `raw` null where it is exactly `raw_text` of the typed row (the usual
    export: the required columns in order, values without stray spaces). `raw` is needed again
    only for the few rows a later step rejects, and `coalesce(raw, raw_text(kind))` gives it
    back byte for byte; kept for every row it cost ~0.7 GB at 10M order lines. Rows of a file the
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
    typed: dict[str, pl.Expr] = {}
    why: dict[str, pl.Expr] = {}
    failed: list[pl.Expr] = []
    for column in spec.text_columns:
        typed[column], why[column] = text(column)
        failed.append(typed[column].is_null())
    typed["qty"], why["qty"] = whole_number("qty")
    failed.append(typed["qty"].is_null())
    if spec.has_eta:
        typed["eta"], why["eta"] = date("eta")
        eta = pl.col("eta").str.strip_chars()
        failed.append(eta.is_not_null() & (eta != "") & typed["eta"].is_null())

    candidates = frame.select(
        pl.col(_ROW),
        *[typed.get(column, pl.col(column)).alias(column) for column in columns],
        pl.any_horizontal(failed).alias(_FAILED),
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
    model_reasons = _model_reasons(candidates.select(columns), spec)
    bad = candidates.filter(pl.col(_FAILED))[_ROW]
    if model_reasons is not None:
        bad = pl.concat([bad, model_reasons[_ROW]]).unique().sort()
    if not bad.len():
        return Validated(
            valid=candidates.select(columns),
            rejected=pl.DataFrame(schema=REJECTION_SCHEMA),
        )

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
    rejected = worded.filter(is_rejected).select(
        pl.lit(spec.kind, pl.String).alias("kind"), "source_file", "line", "reason", "raw"
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


def _model_reasons(typed: pl.DataFrame, spec: _Spec) -> pl.DataFrame | None:
    """Row-level model failures as ``__row`` + one ``__model_<column>`` reason column each.

    ``None`` when the model accepts every row. Raises ``FrameContractError`` for a failure that
    has no row index (the frame itself is wrong).
    """
    try:
        spec.model.validate(typed, lazy=True)
    except SchemaErrors as errors:
        return _failure_reasons(errors, spec)
    return None


def _failure_reasons(errors: SchemaErrors, spec: _Spec) -> pl.DataFrame:
    """``_model_reasons`` for the failures in ``errors``."""
    failures: pl.DataFrame = errors.failure_cases

    schema_level = failures.filter(pl.col("index").is_null())
    if schema_level.height:
        details = schema_level.select("column", "check", "failure_case").rows()
        raise FrameContractError(
            f"typed {spec.kind} frame does not match {spec.model.__name__} "
            f"(a bug in allocation.io.validation, not bad data): {details}"
        ) from errors

    messages = (
        failures.select(
            pl.col("index").cast(pl.get_index_type()).alias(_ROW),
            pl.col("column"),
            _model_message(spec.model).alias("message"),
            pl.col("check_number").fill_null(-1).alias("order"),
        )
        .sort(_ROW, "column", "order")
        .group_by(_ROW, "column", maintain_order=True)
        .agg(pl.col("message").str.join("; "))
    )
    wide = messages.pivot(on="column", index=_ROW, values="message")
    return wide.rename({c: _model_column(c) for c in wide.columns if c != _ROW})


def _model_message(model: type[pa.DataFrameModel]) -> pl.Expr:
    """A reason per failure case, worded from the model's own checks (no hard-coded rules)."""
    value = shown(pl.col("failure_case").fill_null("null"))
    # Fallback for a check without wording: never null, so no failing row can pass as valid.
    message = pl.format(
        "{} {} fails {}", pl.col("column").fill_null("?"), value, pl.col("check").fill_null("?")
    )
    for name, column in model.to_schema().columns.items():
        message = (
            pl.when((pl.col("column") == name) & (pl.col("check") == "not_nullable"))
            .then(pl.lit(f"{name} is missing"))
            .otherwise(message)
        )
        for check in column.checks:
            identifier = check.error if check.error is not None else check.name
            text = _check_text(name, check.name, check.statistics)
            if text is None:
                continue
            matches = (pl.col("column") == name) & (pl.col("check") == identifier)
            worded = pl.format(text, value) if "{}" in text else pl.lit(text)
            message = pl.when(matches).then(worded).otherwise(message)
    return message


def _check_text(column: str, check: str | None, statistics: Mapping[str, Any]) -> str | None:
    """A ``pl.format`` template ("{}" = the failing value) for a built-in check, if known."""
    if check == "greater_than_or_equal_to":
        minimum = statistics["min_value"]
        if minimum == 0:
            return f"{column} {{}} must not be negative"
        return f"{column} {{}} must be at least {minimum}"
    if check == "str_contains" and statistics.get("pattern") == r"\S":
        return f"{column} is empty"
    return None
