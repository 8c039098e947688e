"""The warehouse's schema version and the upgrades between versions (`migrate`).

Each version's tables are in `warehouse_tables`, the views in `warehouse_views`. Every table and
view carries `COMMENT ON` text (`warehouse_comments`), so analysts read the same documentation
in their own tools (`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()`) as in
`docs/analysts.md`. Upgrades run on open, in order, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import duckdb

from allocation.io import warehouse_repair, warehouse_tables
from allocation.io.reason_codes import code_sql
from allocation.io.warehouse_comments import COMMENTS
from allocation.io.warehouse_view_comments import MACRO_COMMENTS
from allocation.io.warehouse_views import ANALYST_VIEWS, STOCK_VIEWS

# Versions 6-9 are other changes' (merged in their own order); a version this code has no
# migration for changes nothing (`_nothing`).
SCHEMA_VERSION = 13

log = logging.getLogger(__name__)

# Version 10: identifiers in NFC (allocation/io/identifiers.py). Nights before it stored them as
# received, so `ÉTAGÈRE` in NFD (E + U+0301) from an earlier night would never meet tonight's NFC
# one. Normalised once here, every table alike; ASCII values (nearly all) are skipped by a length
# test. A value whose NFC form another row already holds (both spellings received) is left as it
# was and named in the log: merging two batches or two lines would change what was allocated.
_V10_REFERENCES = """
CREATE TEMP TABLE v10_references AS
SELECT old, new FROM (
    SELECT reference AS old, nfc_normalize(reference) AS new FROM batches
    WHERE strlen(reference) <> length(reference) AND reference <> nfc_normalize(reference)
) WHERE new NOT IN (SELECT reference FROM batches)
QUALIFY row_number() OVER (PARTITION BY new ORDER BY old) = 1;
"""
_V10_LINES = """
CREATE TEMP TABLE v10_lines AS
SELECT old_orderid, old_sku, new_orderid, new_sku FROM (
    SELECT DISTINCT orderid AS old_orderid, sku AS old_sku, nfc_normalize(orderid) AS new_orderid,
           nfc_normalize(sku) AS new_sku
    FROM order_lines
    WHERE (strlen(orderid) <> length(orderid) OR strlen(sku) <> length(sku))
      AND (orderid <> nfc_normalize(orderid) OR sku <> nfc_normalize(sku))
) m
WHERE NOT EXISTS (
    SELECT 1 FROM order_lines l WHERE l.orderid = m.new_orderid AND l.sku = m.new_sku
)
QUALIFY row_number() OVER (PARTITION BY new_orderid, new_sku ORDER BY old_orderid, old_sku) = 1;
"""
#: (table, reference column) renamed by `v10_references`.
_V10_REFERENCE_COLUMNS = (
    ("batches", "reference"),
    ("order_lines", "batchref"),
    ("allocations", "batchref"),
    ("reallocations", "from_batchref"),
    ("reallocations", "to_batchref"),
    ("batch_changes", "reference"),
    ("manifest_rows", "reference"),
)
#: Tables whose (orderid, sku) are renamed by `v10_lines`; sku columns of batches elsewhere.
_V10_LINE_TABLES = ("order_lines", "allocations", "reallocations")
_V10_SKU_TABLES = ("batches", "batch_changes", "manifest_rows")


def _comment(con: duckdb.DuckDBPyConnection) -> None:
    kinds = dict(
        con.sql("SELECT view_name, 'VIEW' FROM duckdb_views() WHERE NOT internal").fetchall()
    )
    for name, (text, columns) in COMMENTS.items():
        kind = kinds.get(name, "TABLE")
        # Identifiers come from the constant above, never from input; DuckDB cannot bind them.
        con.execute(f"COMMENT ON {kind} {name} IS {_quote(text)}")
        for column, column_text in columns.items():
            con.execute(f"COMMENT ON COLUMN {name}.{column} IS {_quote(column_text)}")
    for name, text in MACRO_COMMENTS.items():
        con.execute(f"COMMENT ON MACRO TABLE {name} IS {_quote(text)}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(warehouse_tables.V1_TABLES)


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(warehouse_tables.V2_TABLES)


def _views_only(con: duckdb.DuckDBPyConnection) -> None:
    """A version that changed only views (3, 12, 13): nothing to change in the tables; the views
    and comments are rebuilt after it."""


def _v4(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(warehouse_tables.V4_TABLES)


def _v7(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(warehouse_tables.V7_TABLES)


def _v11(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(warehouse_tables.V11_TABLES)
    # The views join allocations to lines by arrival_seq (an integer: fast at any history);
    # version 1 left it optional, so an old allocation may lack it.
    con.execute(
        "UPDATE allocations SET arrival_seq = l.arrival_seq FROM order_lines l "
        "WHERE allocations.arrival_seq IS NULL "
        "AND l.orderid = allocations.orderid AND l.sku = allocations.sku"
    )
    code, params = code_sql("reason")
    con.execute(f"UPDATE rejected_rows SET reason_code = {code}", params)  # noqa: S608
    con.execute(warehouse_tables.V11_BACKFILL_REALLOCATIONS)


def code_rejections(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Gives the rows `run_id` rejected their `reason_code` (one statement over the run's rows)."""
    code, params = code_sql("reason")
    con.execute(
        f"UPDATE rejected_rows SET reason_code = {code} "  # noqa: S608 (our constant text)
        "WHERE run_id = ? AND reason_code IS NULL",
        [*params, run_id],
    )


def _nothing(con: duckdb.DuckDBPyConnection) -> None:
    """A version number kept for a change made elsewhere: nothing to do here."""


def _v6(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(warehouse_tables.V6_TABLES)


def _v10(con: duckdb.DuckDBPyConnection) -> None:
    """Identifiers stored before the door normalised them, in NFC (see _V10_REFERENCES)."""
    con.execute(_V10_REFERENCES)
    for table, column in _V10_REFERENCE_COLUMNS:
        con.execute(
            f"UPDATE {table} SET {column} = m.new FROM v10_references m "  # noqa: S608
            f"WHERE {table}.{column} = m.old"
        )
    con.execute(_V10_LINES)
    for table in _V10_LINE_TABLES:
        con.execute(
            f"UPDATE {table} SET orderid = m.new_orderid, sku = m.new_sku "  # noqa: S608
            f"FROM v10_lines m WHERE {table}.orderid = m.old_orderid AND {table}.sku = m.old_sku"
        )
    for table in _V10_SKU_TABLES:
        con.execute(
            f"UPDATE {table} SET sku = nfc_normalize(sku) "  # noqa: S608
            "WHERE strlen(sku) <> length(sku) AND sku <> nfc_normalize(sku)"
        )
    con.execute("DROP TABLE v10_references")
    con.execute("DROP TABLE v10_lines")
    # A renamed line keeps the key of its new spelling (version 7's line_key finds repeats).
    con.execute(
        "UPDATE order_lines SET line_key = hash(orderid, sku) "
        "WHERE line_key IS DISTINCT FROM hash(orderid, sku)"
    )
    left = con.sql(
        "SELECT 'batch ' || reference FROM batches WHERE strlen(reference) <> length(reference) "
        "AND reference <> nfc_normalize(reference) "
        "UNION ALL SELECT DISTINCT 'order ' || orderid || ' sku ' || sku FROM order_lines "
        "WHERE (strlen(orderid) <> length(orderid) OR strlen(sku) <> length(sku)) "
        "AND (orderid <> nfc_normalize(orderid) OR sku <> nfc_normalize(sku)) ORDER BY 1"
    ).fetchall()
    if left:
        log.warning(
            "Identifiers left as received because the warehouse already holds their NFC "
            "spelling too (two spellings of one identifier, from before they were normalised): "
            "%s",
            "; ".join(str(row[0]) for row in left),
        )


MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {
    1: _v1,
    2: _v2,
    # 3: no table change; every analyst column documented, the views revised. Views and
    # comments are derived objects, rebuilt after every upgrade, so changing either one is a new
    # version (a warehouse at the previous version would otherwise keep the old text).
    3: _views_only,
    4: _v4,
    # 5: the manifest-row ledger filled from the history a version 2 or 3 warehouse holds (the
    # version-4 upgrade left it empty, and a re-sent manifest's old rows were applied again),
    # and batches whose eta no night can hold repaired or quarantined (the table
    # `quarantined_batches`). Later versions are other changes; a version missing from this
    # table changes nothing (versions are numbered ahead, so merges do not collide).
    5: warehouse_repair.upgrade,
    6: _v6,
    7: _v7,
    10: _v10,
    11: _v11,
    # 12: `nightly_trend` becomes a slice of `nightly_kpis` (one definition of each nightly
    # figure; its column names and meanings kept), with `nightly_kpis.lines_waiting` and
    # `oldest_wait_days` beside the other KPIs.
    12: _views_only,
    # 13: `nightly_kpis`' fill rates rounded to 4 places with halves away from zero, worked out
    # in whole numbers: round() of the DOUBLE quotient sent a half up or down as its binary
    # fraction fell (1/32 up, 3/160 down).
    13: _views_only,
}


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.sql(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    version = con.sql("SELECT max(version) FROM schema_version").fetchall()[0][0]
    return int(version or 0)


def migrate(con: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION) -> int:
    """Brings the warehouse to `target`, applying each missing version in order; returns the
    version found. Views and comments are rebuilt when anything changed."""
    found = current_version(con)
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"warehouse schema version {found} is newer than this code ({SCHEMA_VERSION}): "
            "upgrade the allocation package before running this night"
        )
    for version in range(found + 1, target + 1):
        MIGRATIONS.get(version, _nothing)(con)
        con.execute(
            "INSERT INTO schema_version VALUES (?, ?)",
            [version, dt.datetime.now(dt.UTC).replace(tzinfo=None)],
        )
    if found < target and target == SCHEMA_VERSION:
        con.execute(STOCK_VIEWS)
        con.execute(ANALYST_VIEWS)
        _comment(con)
    return found
