"""Unit tests of allocation.io.schemas: each model accepts a well-formed frame, rejects a bad one."""

import datetime as dt
from typing import Any

import pandera.polars as pa
import polars as pl
import pytest
from pandera.errors import SchemaErrors

from allocation.io.schemas import (
    AllocationReport,
    BatchInput,
    OrderLineInput,
    OutOfStockReport,
    ReallocationReport,
    RejectedReport,
)

DAY = dt.date(2026, 11, 26)

# One well-formed frame per model: two rows, the second using every nullable column's null.
GOOD: dict[type[pa.DataFrameModel], pl.DataFrame] = {
    OrderLineInput: pl.DataFrame(
        {
            "source_file": ["orders/a.csv", "orders/a.csv"],
            "line": [1, 2],
            "orderid": ["o1", "o2"],
            "sku": ["LAMP", "椅子"],
            "qty": [1, 40],
            "raw": ["{}", "{}"],
        }
    ),
    BatchInput: pl.DataFrame(
        {
            "source_file": ["batches/a.csv", "batches/a.csv"],
            "line": [1, 2],
            "reference": ["b1", "b2"],
            "sku": ["LAMP", "LAMP"],
            "qty": [0, 100],
            "eta": [DAY, None],
            "raw": ["{}", "{}"],
        }
    ),
    AllocationReport: pl.DataFrame(
        {
            "orderid": ["o1", "o2"],
            "sku": ["LAMP", "LAMP"],
            "qty": [1, 5],
            "batchref": ["b1", "b2"],
            "eta": [DAY, None],
            "business_date": [DAY, DAY],
            "run_id": ["run-1", "run-1"],
        }
    ),
    OutOfStockReport: pl.DataFrame(
        {
            "orderid": ["o1", "o2"],
            "sku": ["LAMP", "LAMP"],
            "qty": [5, 1],
            "first_seen": [DAY, DAY],
            "days_waiting": [0, 3],
            "available": [0, 0],
            "shortfall": [5, 1],
            "next_eta": [DAY, None],
        }
    ),
    RejectedReport: pl.DataFrame(
        {
            "kind": ["orders", "batches"],
            "source_file": ["orders/a.csv", "batches/a.csv"],
            "line": [3, None],
            "reason": ["sku is empty", "file is not UTF-8"],
            "raw": ['{"sku": ""}', None],
        },
        schema_overrides={"line": pl.Int64, "raw": pl.String},
    ),
    ReallocationReport: pl.DataFrame(
        {
            "orderid": ["o1", "o2"],
            "sku": ["LAMP", "LAMP"],
            "qty": [2, 1],
            "from_batchref": ["b1", "b1"],
            "to_batchref": ["b2", None],
            "reason": ["batch b1 shrank", "batch b1 cancelled"],
            "business_date": [DAY, DAY],
        },
        schema_overrides={"to_batchref": pl.String},
    ),
}

FIELDS: dict[type[pa.DataFrameModel], list[str]] = {
    OrderLineInput: ["source_file", "line", "orderid", "sku", "qty", "raw"],
    BatchInput: ["source_file", "line", "reference", "sku", "qty", "eta", "raw"],
    AllocationReport: ["orderid", "sku", "qty", "batchref", "eta", "business_date", "run_id"],
    OutOfStockReport: [
        "orderid",
        "sku",
        "qty",
        "first_seen",
        "days_waiting",
        "available",
        "shortfall",
        "next_eta",
    ],
    RejectedReport: ["kind", "source_file", "line", "reason", "raw"],
    ReallocationReport: [
        "orderid",
        "sku",
        "qty",
        "from_batchref",
        "to_batchref",
        "reason",
        "business_date",
    ],
}

MODELS = list(GOOD)


def row_failures(model: type[pa.DataFrameModel], frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    """``(column, check, index)`` of every failure; fails the test if the frame passes."""
    with pytest.raises(SchemaErrors) as caught:
        model.validate(frame, lazy=True)
    failures: pl.DataFrame = caught.value.failure_cases
    return failures.select("column", "check", "index").rows()


def with_value(frame: pl.DataFrame, column: str, row: int, value: Any) -> pl.DataFrame:
    """``frame`` with ``frame[row, column]`` replaced, dtype kept."""
    series = frame[column].to_list()
    series[row] = value
    return frame.with_columns(pl.Series(column, series, dtype=frame.schema[column]))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_each_model_has_exactly_the_agreed_columns_in_order(
    model: type[pa.DataFrameModel],
) -> None:
    assert list(model.to_schema().columns) == FIELDS[model]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_each_model_accepts_a_well_formed_frame(model: type[pa.DataFrameModel]) -> None:
    validated = model.validate(GOOD[model], lazy=True)

    assert validated.equals(GOOD[model])


@pytest.mark.parametrize(
    ("model", "column", "value", "check"),
    [
        # An input model's check carries the reason a rejected row shows ({value}: the value).
        (OrderLineInput, "qty", 0, "qty {value} must be at least 1"),
        (OrderLineInput, "orderid", "", "orderid is empty"),
        (OrderLineInput, "sku", "   ", "sku is empty"),
        (BatchInput, "qty", -1, "qty {value} must not be negative"),
        (BatchInput, "reference", "", "reference is empty"),
        (BatchInput, "sku", "", "sku is empty"),
        (AllocationReport, "qty", 0, "greater_than_or_equal_to(1)"),
        (AllocationReport, "batchref", " ", "str_contains('\\S')"),
        (AllocationReport, "run_id", "", "str_contains('\\S')"),
        (OutOfStockReport, "qty", 0, "greater_than_or_equal_to(1)"),
        (OutOfStockReport, "shortfall", 0, "greater_than_or_equal_to(1)"),
        (OutOfStockReport, "days_waiting", -1, "greater_than_or_equal_to(0)"),
        (OutOfStockReport, "available", -1, "greater_than_or_equal_to(0)"),
        (RejectedReport, "kind", "files", "isin(('orders', 'batches', 'file'))"),
        (RejectedReport, "line", 0, "greater_than_or_equal_to(1)"),
        (RejectedReport, "reason", "", "str_contains('\\S')"),
        (ReallocationReport, "qty", 0, "greater_than_or_equal_to(1)"),
        (ReallocationReport, "from_batchref", "", "str_contains('\\S')"),
        (ReallocationReport, "to_batchref", "", "str_contains('\\S')"),
        (ReallocationReport, "reason", " ", "str_contains('\\S')"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_a_bad_value_is_rejected_at_its_row(
    model: type[pa.DataFrameModel], column: str, value: Any, check: str
) -> None:
    bad = with_value(GOOD[model], column, 1, value)

    assert row_failures(model, bad) == [(column, check, 1)]


@pytest.mark.parametrize(
    ("model", "column"),
    [
        (OrderLineInput, "source_file"),
        (OrderLineInput, "qty"),
        (BatchInput, "sku"),
        (AllocationReport, "business_date"),
        (OutOfStockReport, "first_seen"),
        (RejectedReport, "reason"),
        (ReallocationReport, "from_batchref"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_a_null_in_a_required_column_is_rejected(
    model: type[pa.DataFrameModel], column: str
) -> None:
    bad = with_value(GOOD[model], column, 0, None)

    assert row_failures(model, bad) == [(column, "not_nullable", 0)]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_an_extra_column_is_rejected(model: type[pa.DataFrameModel]) -> None:
    bad = GOOD[model].with_columns(pl.lit("x").alias("extra"))

    failures = row_failures(model, bad)

    assert failures == [(model.__name__, "column_in_schema", None)]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_a_missing_column_is_rejected(model: type[pa.DataFrameModel]) -> None:
    last = FIELDS[model][-1]

    failures = row_failures(model, GOOD[model].drop(last))

    assert failures == [(model.__name__, "column_in_dataframe", None)]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_columns_out_of_order_are_rejected(model: type[pa.DataFrameModel]) -> None:
    swapped = GOOD[model].select(list(reversed(FIELDS[model])))

    failures = row_failures(model, swapped)

    assert {check for _, check, _ in failures} == {"column_ordered"}


def test_a_wrong_dtype_is_rejected_not_coerced() -> None:
    as_text = GOOD[AllocationReport].with_columns(pl.col("qty").cast(pl.String))
    as_int32 = GOOD[AllocationReport].with_columns(pl.col("qty").cast(pl.Int32))

    assert ("qty", "dtype('Int64')", None) in row_failures(AllocationReport, as_text)
    assert ("qty", "dtype('Int64')", None) in row_failures(AllocationReport, as_int32)


def test_a_lazy_frame_is_only_schema_checked_so_validate_collected_frames() -> None:
    # The pandera pitfall the pipeline must avoid: on a LazyFrame only the schema is checked by
    # default, so the value check is skipped; the collected frame catches it.
    bad = with_value(GOOD[AllocationReport], "qty", 0, 0)

    AllocationReport.validate(bad.lazy(), lazy=True).collect()
    assert row_failures(AllocationReport, bad) == [("qty", "greater_than_or_equal_to(1)", 0)]
