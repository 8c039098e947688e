"""The documentation every warehouse table and view carries (`COMMENT ON`), and the objects
analysts are promised by name. Analysts read it in their own tools (`duckdb_tables()`,
`duckdb_views()`, `duckdb_columns()`); it says what `docs/analysts.md` says.
"""

from __future__ import annotations

from allocation.io.warehouse_table_comments import TABLE_COMMENTS
from allocation.io.warehouse_view_comments import VIEW_COMMENTS

#: Per table or view: its comment, and a comment per column. Applied on every upgrade.
COMMENTS: dict[str, tuple[str, dict[str, str]]] = {**TABLE_COMMENTS, **VIEW_COMMENTS}

#: Keys that hold in every warehouse (checked by the tests; not declared as constraints, whose
#: indexes ignore DuckDB's memory limit on tables this large): table -> its keys.
KEYS: dict[str, tuple[str, ...]] = {
    "batches": ("reference",),
    "order_lines": ("orderid, sku", "arrival_seq"),
    "allocations": ("orderid, sku, run_id",),
    "runs": ("run_id",),
}

#: Joins BI tools use: (table, columns) -> (table, columns) they name.
JOINS: tuple[tuple[str, str, str, str], ...] = (
    ("order_lines", "batchref", "batches", "reference"),
    ("allocations", "batchref", "batches", "reference"),
    ("allocations", "orderid, sku", "order_lines", "orderid, sku"),
    ("allocations", "run_id", "runs", "run_id"),
    ("reallocations", "from_batchref", "batches", "reference"),
    ("reallocations", "to_batchref", "batches", "reference"),
    ("reallocations", "orderid, sku", "order_lines", "orderid, sku"),
    ("batch_changes", "reference", "batches", "reference"),
    ("rejected_rows", "run_id", "runs", "run_id"),
    ("ingested_files", "run_id", "runs", "run_id"),
)

# What analysts are promised by name (docs/analysts.md); the other tables are documented too.
ANALYST_OBJECTS = (
    "batches",
    "order_lines",
    "allocations",
    "out_of_stock",
    "stock_position",
    "runs",
    "rejected_rows",
    "ingested_files",
    "nightly_kpis",
    "line_waits",
    "orders",
    "skus",
    "night_checks",
    "nightly_trend",
)
