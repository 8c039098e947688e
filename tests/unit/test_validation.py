"""Unit tests of allocation.io.validation: string frames in, typed and rejected rows out (no I/O)."""

import datetime as dt
import json
from typing import Any

import pandera.polars as pa
import polars as pl
import pytest
from pandera.errors import SchemaErrors
from pandera.typing.polars import Series

from allocation.io import identifiers, validation
from allocation.io.schemas import BatchInput, OrderLineInput, RejectedReport
from allocation.io.validation import (
    REJECTION_SCHEMA,
    FrameContractError,
    Validated,
    rejection_frame,
    validate_batches,
    validate_orders,
)

ORDER_COLUMNS = ["source_file", "line", "orderid", "sku", "qty", "raw"]
BATCH_COLUMNS = ["source_file", "line", "reference", "sku", "qty", "eta", "raw"]
STRING_ROWS = {
    "orders": pl.Schema({c: pl.Int64 if c == "line" else pl.String for c in ORDER_COLUMNS}),
    "batches": pl.Schema({c: pl.Int64 if c == "line" else pl.String for c in BATCH_COLUMNS}),
}
VALID_ORDERS = pl.Schema(
    {
        "source_file": pl.String,
        "line": pl.Int64,
        "orderid": pl.String,
        "sku": pl.String,
        "qty": pl.Int64,
        "raw": pl.String,
    }
)
VALID_BATCHES = pl.Schema(
    {
        "source_file": pl.String,
        "line": pl.Int64,
        "reference": pl.String,
        "sku": pl.String,
        "qty": pl.Int64,
        "eta": pl.Date,
        "raw": pl.String,
    }
)
EXPECTED_REJECTION_SCHEMA = pl.Schema(
    {
        "kind": pl.String,
        "source_file": pl.String,
        "line": pl.Int64,
        "reason": pl.String,
        "raw": pl.String,
    }
)


def _raw(values: dict[str, Any]) -> str:
    return json.dumps(values, ensure_ascii=False)


def orders(*rows: dict[str, Any]) -> pl.DataFrame:
    """An orders reader frame; each row gives orderid/sku/qty (defaults valid), line = position."""
    records = []
    for number, row in enumerate(rows, start=1):
        values = {"orderid": f"o{number}", "sku": "SKU-1", "qty": "1", **row}
        records.append(
            {
                "source_file": "orders/2026-11-26.csv",
                "line": number,
                **values,
                "raw": _raw(values),
            }
        )
    return pl.DataFrame(records, schema=STRING_ROWS["orders"])


def batches(*rows: dict[str, Any]) -> pl.DataFrame:
    """A batches reader frame; each row gives reference/sku/qty/eta (defaults valid)."""
    records = []
    for number, row in enumerate(rows, start=1):
        values = {"reference": f"b{number}", "sku": "SKU-1", "qty": "10", "eta": None, **row}
        records.append(
            {
                "source_file": "batches/2026-11-26.csv",
                "line": number,
                **values,
                "raw": _raw(values),
            }
        )
    return pl.DataFrame(records, schema=STRING_ROWS["batches"])


def reasons(result: Validated) -> list[str]:
    return list(result.rejected["reason"])


def only_reason(result: Validated) -> str:
    assert result.valid.height == 0, result.valid
    assert result.rejected.height == 1, result.rejected
    reason: str = result.rejected["reason"][0]
    return reason


def assert_counts_add_up(rows: pl.DataFrame, result: Validated) -> None:
    assert result.valid.height + result.rejected.height == rows.height


# ---------------------------------------------------------------------------------------------
# Valid rows
# ---------------------------------------------------------------------------------------------


def test_valid_order_rows_pass_through_typed_in_input_order() -> None:
    rows = orders(
        {"orderid": "o-b", "sku": "LAMP", "qty": "3"},
        {"orderid": "o-a", "sku": "CHAIR", "qty": "12"},
    )

    result = validate_orders(rows)

    assert result.rejected.height == 0
    assert result.valid.schema == VALID_ORDERS
    assert result.valid.to_dicts() == [
        {
            "source_file": "orders/2026-11-26.csv",
            "line": 1,
            "orderid": "o-b",
            "sku": "LAMP",
            "qty": 3,
            "raw": rows["raw"][0],
        },
        {
            "source_file": "orders/2026-11-26.csv",
            "line": 2,
            "orderid": "o-a",
            "sku": "CHAIR",
            "qty": 12,
            "raw": rows["raw"][1],
        },
    ]
    OrderLineInput.validate(result.valid, lazy=True)


def test_valid_batch_rows_pass_through_typed_with_eta_as_date() -> None:
    rows = batches(
        {"reference": "b1", "qty": "0", "eta": None},
        {"reference": "b2", "qty": "20", "eta": "2026-12-01"},
        {"reference": "b3", "qty": "5", "eta": "2028-02-29"},
    )

    result = validate_batches(rows)

    assert result.rejected.height == 0
    assert result.valid.schema == VALID_BATCHES
    assert result.valid.select("reference", "qty", "eta").rows() == [
        ("b1", 0, None),
        ("b2", 20, dt.date(2026, 12, 1)),
        ("b3", 5, dt.date(2028, 2, 29)),
    ]
    BatchInput.validate(result.valid, lazy=True)


def test_surrounding_whitespace_is_stripped_from_every_checked_value() -> None:
    order_rows = orders({"orderid": "  o1 ", "sku": "\tSKU-1\n", "qty": " 7 "})
    batch_rows = batches({"reference": " b1 ", "sku": " SKU-1", "qty": " 4", "eta": " 2026-12-01 "})

    valid_order = validate_orders(order_rows).valid
    valid_batch = validate_batches(batch_rows).valid

    assert valid_order.select("orderid", "sku", "qty").row(0) == ("o1", "SKU-1", 7)
    assert valid_batch.select("reference", "sku", "qty", "eta").row(0) == (
        "b1",
        "SKU-1",
        4,
        dt.date(2026, 12, 1),
    )


def test_raw_is_kept_exactly_as_given_for_valid_and_rejected_rows() -> None:
    rows = orders({"orderid": " o1 "}, {"sku": " "})

    result = validate_orders(rows)

    assert result.valid["raw"].to_list() == [rows["raw"][0]]
    assert result.rejected["raw"].to_list() == [rows["raw"][1]]
    assert json.loads(result.rejected["raw"][0])["sku"] == " "


def test_a_non_ascii_sku_is_kept_unchanged() -> None:
    result = validate_orders(orders({"sku": "CHAISE-LONGUE-É-ß-椅子-🪑"}))

    assert result.valid["sku"].to_list() == ["CHAISE-LONGUE-É-ß-椅子-🪑"]


def test_a_sql_looking_sku_is_kept_as_data() -> None:
    sku = "x'); DROP TABLE batches; --"

    order = validate_orders(orders({"sku": sku}))
    batch = validate_batches(batches({"sku": sku}))

    assert order.valid["sku"].to_list() == [sku]
    assert batch.valid["sku"].to_list() == [sku]


def test_a_signed_qty_and_leading_zeros_are_whole_numbers() -> None:
    result = validate_orders(orders({"qty": "+5"}, {"qty": "007"}))

    assert result.valid["qty"].to_list() == [5, 7]


def test_the_largest_64_bit_qty_is_accepted() -> None:
    result = validate_orders(orders({"qty": "9223372036854775807"}))

    assert result.valid["qty"].to_list() == [9223372036854775807]


def test_a_batch_qty_of_zero_is_accepted() -> None:
    result = validate_batches(batches({"qty": "0"}))

    assert result.valid["qty"].to_list() == [0]


# ---------------------------------------------------------------------------------------------
# Rejected rows: one rule at a time
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", [None, "", "   ", "\t\n"])
@pytest.mark.parametrize("column", ["orderid", "sku"])
def test_an_empty_order_identifier_is_rejected(column: str, blank: str | None) -> None:
    result = validate_orders(orders({column: blank}))

    assert only_reason(result) == f"{column} is empty"


@pytest.mark.parametrize("blank", [None, "", "   "])
@pytest.mark.parametrize("column", ["reference", "sku"])
def test_an_empty_batch_identifier_is_rejected(column: str, blank: str | None) -> None:
    result = validate_batches(batches({column: blank}))

    assert only_reason(result) == f"{column} is empty"


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_a_missing_or_blank_qty_is_rejected_as_empty(blank: str | None) -> None:
    assert only_reason(validate_orders(orders({"qty": blank}))) == "qty is empty"
    assert only_reason(validate_batches(batches({"qty": blank}))) == "qty is empty"


@pytest.mark.parametrize(
    ("qty", "shown"),
    [
        ("ten", "ten"),
        ("1.5", "1.5"),
        (" 1.5 ", "1.5"),
        ("1e3", "1e3"),
        ("0x10", "0x10"),
        ("1 000", "1 000"),
        ("1,000", "1,000"),
        ("--1", "--1"),
        ("+", "+"),
        ("٣", "٣"),  # an Arabic-Indic digit: Unicode \d, not base-10 ASCII
    ],
)
def test_a_qty_that_is_not_a_whole_number_is_rejected(qty: str, shown: str) -> None:
    assert only_reason(validate_orders(orders({"qty": qty}))) == (
        f"qty '{shown}' is not a whole number"
    )
    assert only_reason(validate_batches(batches({"qty": qty}))) == (
        f"qty '{shown}' is not a whole number"
    )


@pytest.mark.parametrize(
    "qty", ["99999999999999999999", "9223372036854775808", "-9223372036854775809"]
)
def test_a_qty_that_does_not_fit_64_bits_is_out_of_range(qty: str) -> None:
    assert only_reason(validate_orders(orders({"qty": qty}))) == f"qty '{qty}' is out of range"


@pytest.mark.parametrize(("qty", "shown"), [("0", "0"), ("-0", "0"), ("-3", "-3")])
def test_an_order_qty_below_one_is_rejected(qty: str, shown: str) -> None:
    assert only_reason(validate_orders(orders({"qty": qty}))) == f"qty {shown} must be at least 1"


def test_a_negative_batch_qty_is_rejected() -> None:
    assert only_reason(validate_batches(batches({"qty": "-3"}))) == "qty -3 must not be negative"


@pytest.mark.parametrize("eta", [None, "", "   "])
def test_a_missing_or_blank_eta_means_in_stock(eta: str | None) -> None:
    result = validate_batches(batches({"eta": eta}))

    assert result.rejected.height == 0
    assert result.valid["eta"].to_list() == [None]


@pytest.mark.parametrize(
    "eta",
    [
        "2026-13-45",
        "tomorrow",
        "2026-02-30",  # right form, no such day
        "2027-02-29",  # not a leap year
        "2026-1-5",  # polars would parse it; the form is wrong
        "26-01-05",
        "2026/01/05",
        "05-01-2026",
        "2026-01-05T00:00",
        "2026-01-05 extra",
    ],
)
def test_an_eta_that_is_not_a_real_yyyy_mm_dd_date_is_rejected(eta: str) -> None:
    assert only_reason(validate_batches(batches({"eta": eta}))) == (
        f"eta '{eta}' is not a date (expected YYYY-MM-DD)"
    )


@pytest.mark.parametrize(
    "eta",
    ["0000-01-01", "0001-01-01", "1899-12-31", "3000-01-01", "9999-12-31", "-0221-09-04",
     "+10183-09-21", "12026-01-01"],
)  # fmt: skip
def test_an_eta_outside_the_accepted_dates_is_rejected_with_the_range(eta: str) -> None:
    """Issue 23 item 3: a year-0 eta passed the door and stopped every later night."""
    assert only_reason(validate_batches(batches({"eta": eta}))) == (
        f"eta '{eta}' is outside the accepted dates 1900-01-01 to 2999-12-31: a typo?"
    )


@pytest.mark.parametrize("eta", ["1900-01-01", "2999-12-31", "2026-11-25"])
def test_an_eta_at_either_end_of_the_accepted_dates_is_accepted(eta: str) -> None:
    result = validate_batches(batches({"eta": eta}))
    assert result.rejected.height == 0
    assert result.valid["eta"].to_list() == [dt.date.fromisoformat(eta)]


def test_a_long_bad_value_is_cut_short_in_the_reason() -> None:
    qty = "x" * 1000

    reason = only_reason(validate_orders(orders({"qty": qty})))

    assert reason == f"qty '{'x' * 40}…' is not a whole number"


def test_every_problem_of_a_row_is_named_in_one_reason_in_column_order() -> None:
    order = validate_orders(orders({"orderid": " ", "sku": "", "qty": "ten"}))
    batch = validate_batches(batches({"reference": None, "sku": "S", "qty": "-3", "eta": "soon"}))
    model_and_cast = validate_orders(orders({"orderid": None, "qty": "0"}))

    assert only_reason(order) == "orderid is empty; sku is empty; qty 'ten' is not a whole number"
    assert only_reason(batch) == (
        "reference is empty; qty -3 must not be negative; "
        "eta 'soon' is not a date (expected YYYY-MM-DD)"
    )
    assert only_reason(model_and_cast) == "orderid is empty; qty 0 must be at least 1"


def test_a_reader_row_without_source_file_is_rejected_not_dropped() -> None:
    rows = orders({}).with_columns(pl.lit(None, pl.String).alias("source_file"))

    result = validate_orders(rows)

    assert only_reason(result) == "source_file is missing"


def test_raw_the_reader_left_out_is_worded_where_a_row_needs_it() -> None:
    # The reader leaves raw out (null) of a file that is exactly orderid,sku,qty.
    rows = orders({"qty": "2"}, {"qty": " 3"}, {"qty": "x"}).with_columns(
        pl.lit(None, pl.String).alias("raw")
    )

    result = validate_orders(rows)

    # Received as exactly its typed values: stays out (raw_text gives it back).
    # Received otherwise (a space before the 3): worded from what was received.
    assert result.valid["raw"].to_list() == [None, '{"orderid":"o2","sku":"SKU-1","qty":" 3"}']
    assert result.rejected["raw"].to_list() == ['{"orderid":"o3","sku":"SKU-1","qty":"x"}']


# ---------------------------------------------------------------------------------------------
# The rejection frame and the bookkeeping
# ---------------------------------------------------------------------------------------------


def test_rejected_rows_keep_kind_source_file_line_and_raw_in_input_order() -> None:
    rows = batches({"qty": "x"}, {}, {"sku": ""}, {"eta": "never"})

    result = validate_batches(rows)

    assert result.rejected.schema == EXPECTED_REJECTION_SCHEMA
    assert result.rejected.to_dicts() == [
        {
            "kind": "batches",
            "source_file": "batches/2026-11-26.csv",
            "line": 1,
            "reason": "qty 'x' is not a whole number",
            "raw": rows["raw"][0],
        },
        {
            "kind": "batches",
            "source_file": "batches/2026-11-26.csv",
            "line": 3,
            "reason": "sku is empty",
            "raw": rows["raw"][2],
        },
        {
            "kind": "batches",
            "source_file": "batches/2026-11-26.csv",
            "line": 4,
            "reason": "eta 'never' is not a date (expected YYYY-MM-DD)",
            "raw": rows["raw"][3],
        },
    ]
    assert result.valid["line"].to_list() == [2]
    RejectedReport.validate(result.rejected, lazy=True)


def test_nothing_is_dropped_and_counts_add_up_in_a_mixed_frame() -> None:
    rows = orders(
        {},
        {"qty": "0"},
        {"sku": None},
        {"qty": "2"},
        {"orderid": "", "qty": "1.5"},
        {"qty": "99999999999999999999"},
        {"sku": "Ω"},
    )

    result = validate_orders(rows)

    assert_counts_add_up(rows, result)
    assert result.valid["line"].to_list() == [1, 4, 7]
    assert result.rejected["line"].to_list() == [2, 3, 5, 6]
    assert reasons(result) == [
        "qty 0 must be at least 1",
        "sku is empty",
        "orderid is empty; qty '1.5' is not a whole number",
        "qty '99999999999999999999' is out of range",
    ]
    assert result.rejected["kind"].unique().to_list() == ["orders"]


def test_many_rows_are_split_without_a_row_lost_or_misattributed() -> None:
    n = 5000
    qty = [("0" if i % 3 == 0 else str(i)) for i in range(1, n + 1)]
    rows = orders(*({"qty": q} for q in qty))

    result = validate_orders(rows)

    assert_counts_add_up(rows, result)
    assert result.rejected["line"].to_list() == list(range(3, n + 1, 3))
    assert set(reasons(result)) == {"qty 0 must be at least 1"}
    assert result.valid["qty"].to_list() == [i for i in range(1, n + 1) if i % 3]


def test_an_all_valid_frame_gives_an_empty_rejection_frame_with_the_exact_schema() -> None:
    result = validate_batches(batches({}, {"eta": "2026-12-24"}))

    assert result.valid.height == 2
    assert result.valid.schema == VALID_BATCHES
    assert result.rejected.height == 0
    assert result.rejected.schema == EXPECTED_REJECTION_SCHEMA


def test_an_empty_orders_frame_gives_two_empty_frames_with_exact_schemas() -> None:
    result = validate_orders(pl.DataFrame(schema=STRING_ROWS["orders"]))

    assert (result.valid.height, result.rejected.height) == (0, 0)
    assert result.valid.schema == VALID_ORDERS
    assert result.rejected.schema == EXPECTED_REJECTION_SCHEMA


def test_an_empty_batches_frame_gives_two_empty_frames_with_exact_schemas() -> None:
    result = validate_batches(pl.DataFrame(schema=STRING_ROWS["batches"]))

    assert (result.valid.height, result.rejected.height) == (0, 0)
    assert result.valid.schema == VALID_BATCHES
    assert result.rejected.schema == EXPECTED_REJECTION_SCHEMA


def test_an_extra_reader_column_is_ignored_and_kept_only_in_raw() -> None:
    # As the reader gives it: the extra column beside the required ones, and in each row's raw.
    rows = orders({"comment": "rush"}, {"qty": "0", "comment": "late"})
    rows = rows.with_columns(comment=pl.Series(["rush", "late"]))

    result = validate_orders(rows)

    assert result.valid.columns == ORDER_COLUMNS
    assert "comment" not in result.rejected.columns
    assert json.loads(result.valid["raw"][0])["comment"] == "rush"
    assert json.loads(result.rejected["raw"][0])["comment"] == "late"


def test_rejection_frame_is_empty_with_the_exact_schema_by_default() -> None:
    frame = rejection_frame()

    assert frame.height == 0
    assert frame.schema == EXPECTED_REJECTION_SCHEMA
    assert REJECTION_SCHEMA == EXPECTED_REJECTION_SCHEMA


def test_rejection_frame_builds_rows_and_leaves_missing_keys_null() -> None:
    frame = rejection_frame(
        [
            {"kind": "orders", "source_file": "orders/a.csv", "reason": "not UTF-8"},
            {
                "kind": "batches",
                "source_file": "batches/b.csv",
                "line": 3,
                "reason": "sku is empty",
                "raw": '{"sku": ""}',
            },
        ]
    )

    assert frame.schema == EXPECTED_REJECTION_SCHEMA
    assert frame.rows() == [
        ("orders", "orders/a.csv", None, "not UTF-8", None),
        ("batches", "batches/b.csv", 3, "sku is empty", '{"sku": ""}'),
    ]
    RejectedReport.validate(frame, lazy=True)


def test_rejection_frame_refuses_an_unknown_key_instead_of_dropping_it() -> None:
    with pytest.raises(ValueError, match="unknown keys \\['lineno'\\]"):
        rejection_frame([{"kind": "orders", "source_file": "f", "lineno": 1, "reason": "r"}])


# ---------------------------------------------------------------------------------------------
# Contracts: programming errors raise, the model holds the value rules
# ---------------------------------------------------------------------------------------------


def test_a_frame_missing_a_reader_column_raises_a_contract_error() -> None:
    with pytest.raises(FrameContractError, match=r"missing columns \['qty'\]"):
        validate_orders(orders({}).drop("qty"))


def test_a_frame_with_a_wrong_reader_dtype_raises_a_contract_error() -> None:
    rows = batches({}).with_columns(pl.col("line").cast(pl.String))

    with pytest.raises(FrameContractError, match="wrong dtypes \\{'line': 'String'\\}"):
        validate_batches(rows)


def test_a_schema_level_model_failure_raises_instead_of_being_swallowed() -> None:
    typed = pl.DataFrame(
        {
            "source_file": ["f"],
            "line": [1],
            "orderid": ["o1"],
            "sku": ["s"],
            "qty": ["1"],  # String where the model wants Int64: no row index in the failure
            "raw": ["{}"],
        }
    )

    with pytest.raises(FrameContractError, match="does not match OrderLineInput"):
        validation._model_reasons(typed, validation._ORDERS)


@pytest.mark.parametrize(
    ("model", "qty", "passes"),
    [
        (OrderLineInput, 0, False),
        (OrderLineInput, 1, True),
        (BatchInput, -1, False),
        (BatchInput, 0, True),
    ],
)
def test_the_input_models_themselves_hold_the_qty_rule(
    model: type[pa.DataFrameModel], qty: int, passes: bool
) -> None:
    typed = {
        "source_file": ["f"],
        "line": [1],
        "orderid" if model is OrderLineInput else "reference": ["id"],
        "sku": ["s"],
        "qty": [qty],
        **({"eta": [None]} if model is BatchInput else {}),
        "raw": ["{}"],
    }
    frame = pl.DataFrame(typed, schema_overrides={"eta": pl.Date} if model is BatchInput else None)

    if passes:
        model.validate(frame, lazy=True)
        return
    with pytest.raises(SchemaErrors) as caught:
        model.validate(frame, lazy=True)
    failures = caught.value.failure_cases.select("column", "index").rows()
    assert failures == [("qty", 0)]


# ---------------------------------------------------------------------------------------------
# The model's checks speak for themselves: their own words are the reason a rejected row shows
# ---------------------------------------------------------------------------------------------

INPUT_CHECKS = [
    (model, name, check)
    for model in (OrderLineInput, BatchInput)
    for name, column in model.to_schema().columns.items()
    for check in column.checks
]


@pytest.mark.parametrize(
    ("model", "column", "check"),
    INPUT_CHECKS,
    ids=[f"{model.__name__}.{column}.{check.name}" for model, column, check in INPUT_CHECKS],
)
def test_every_input_check_carries_its_own_words(
    model: type[pa.DataFrameModel], column: str, check: pa.Check
) -> None:
    # pandera's default error is the check's name and arguments: "greater_than_or_equal_to(1)".
    assert check.error is not None
    assert not str(check.error).startswith(str(check.name)), check.error
    assert str(check.error).startswith(f"{column} "), check.error


@pytest.mark.parametrize(
    ("validate", "row", "reason"),
    [
        (validate_orders, {"qty": "0"}, "qty 0 must be at least 1"),
        (validate_orders, {"qty": "-7"}, "qty -7 must be at least 1"),
        (validate_batches, {"qty": "-1"}, "qty -1 must not be negative"),
    ],
    ids=["order-qty-zero", "order-qty-negative", "batch-qty-negative"],
)
def test_a_failing_model_check_shows_its_own_words_with_the_value(
    validate: Any, row: dict[str, Any], reason: str
) -> None:
    rows = orders(row) if validate is validate_orders else batches(row)

    result = validate(rows)

    assert only_reason(result) == reason
    assert result.rejected.select("line", "raw").row(0) == (1, rows["raw"][0])


@pytest.mark.parametrize(
    ("spec", "column", "reason"),
    [
        (validation._ORDERS, "orderid", "orderid is empty"),
        (validation._ORDERS, "sku", "sku is empty"),
        (validation._BATCHES, "reference", "reference is empty"),
        (validation._BATCHES, "sku", "sku is empty"),
    ],
)
def test_an_identifier_check_of_the_model_says_the_column_is_empty(
    spec: Any, column: str, reason: str
) -> None:
    # The pre-check finds an empty identifier first; the model's own check says the same words
    # should a typed frame ever bring one (a blank the pre-check let through).
    rows = orders({}) if spec is validation._ORDERS else batches({})
    typed = validation._validate(rows, spec).valid.with_columns(pl.lit(" ").alias(column))

    found = validation._model_reasons(typed, spec)

    assert found is not None
    assert found.rows(named=True) == [{"__row": 0, f"__model_{column}": reason}]


def test_the_reason_is_whatever_the_check_says_not_a_wording_kept_elsewhere() -> None:
    class BulkOrderLine(OrderLineInput):
        qty: Series[pl.Int64] = pa.Field(
            ge={"min_value": 5, "error": "qty {value} is below the bulk minimum of 5"}
        )

    spec = validation._Spec("orders", BulkOrderLine, validation._ORDERS.prechecks)

    result = validation._validate(orders({"qty": "3"}, {"qty": "5"}), spec)

    assert reasons(result) == ["qty 3 is below the bulk minimum of 5"]
    assert result.valid["qty"].to_list() == [5]


def test_a_batch_row_without_source_file_is_rejected_as_missing() -> None:
    rows = batches({}).with_columns(pl.lit(None, pl.String).alias("source_file"))

    assert only_reason(validate_batches(rows)) == "source_file is missing"


def test_a_null_line_is_rejected_as_missing() -> None:
    rows = orders({}, {}).with_columns(
        pl.when(pl.col("line") == 2).then(pl.col("line")).alias("line")
    )

    result = validate_orders(rows)

    assert reasons(result) == ["line is missing"]
    assert result.valid["line"].to_list() == [2]


def test_a_required_column_without_a_precheck_is_refused_when_validation_is_set_up() -> None:
    prechecks = dict(validation._ORDERS.prechecks)
    del prechecks["line"]

    with pytest.raises(TypeError, match=r"no pre-check words a null in \['line'\]"):
        validation._Spec("orders", OrderLineInput, prechecks)


def test_a_null_no_precheck_explained_raises_instead_of_passing_or_reading_not_nullable() -> None:
    typed = validate_orders(orders({})).valid.with_columns(pl.lit(None, pl.String).alias("sku"))

    with pytest.raises(
        FrameContractError, match=r"nulls no pre-check explained in columns \['sku'\]"
    ):
        validation._model_reasons(typed, validation._ORDERS)


# ---------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------


def test_each_identifier_column_is_put_in_its_one_form_once_per_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pre-checks' casts are the bulk of validating a big file: a second evaluation of each
    (to find where it failed) once cost as much as the first."""
    calls: list[str] = []
    nfc = identifiers.nfc

    def counted(values: pl.Series) -> pl.Series:
        calls.append(values.name)
        return nfc(values)

    monkeypatch.setattr(identifiers, "nfc", counted)
    rows = orders({"sku": "ÉTAGÈRE"}, {"sku": "RETRO-CLOCK"})

    result = validate_orders(rows)

    assert result.valid["sku"].to_list() == ["ÉTAGÈRE", "RETRO-CLOCK"]
    assert sorted(calls) == ["orderid", "sku"]
