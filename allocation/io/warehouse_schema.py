"""The warehouse's tables and views, their documentation, and upgrades between schema versions.

Every table and view carries `COMMENT ON` text (`warehouse_comments.py`), so analysts read the same documentation in their
own tools (`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()`) as in `docs/analysts.md`.
Upgrades run on open, in order, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import duckdb

from allocation.io import warehouse_repair
from allocation.io.warehouse_comments import COMMENTS

SCHEMA_VERSION = 5

_V1_TABLES = """
CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY, business_date DATE NOT NULL,
    started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, status VARCHAR NOT NULL,
    orders_received BIGINT, orders_accepted BIGINT, orders_duplicate BIGINT, orders_rejected BIGINT,
    batches_received BIGINT, batches_accepted BIGINT, batches_duplicate BIGINT,
    batches_rejected BIGINT, allocated BIGINT, out_of_stock BIGINT,
    files_received BIGINT, files_rejected BIGINT, files_skipped BIGINT,
    input_files VARCHAR[], rejected_files VARCHAR[], message VARCHAR
);
CREATE TABLE ingested_files (
    run_id VARCHAR NOT NULL, business_date DATE NOT NULL, kind VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL, size BIGINT NOT NULL, sha256 VARCHAR NOT NULL,
    "rows" BIGINT NOT NULL, status VARCHAR NOT NULL, reason VARCHAR
);
CREATE TABLE batches (
    reference VARCHAR PRIMARY KEY, sku VARCHAR NOT NULL, eta DATE,
    purchased BIGINT NOT NULL, allocated BIGINT NOT NULL DEFAULT 0,
    available BIGINT GENERATED ALWAYS AS (purchased - allocated) VIRTUAL,
    first_seen DATE NOT NULL, source_file VARCHAR, source_line BIGINT
);
CREATE TABLE order_lines (
    orderid VARCHAR NOT NULL, sku VARCHAR NOT NULL, qty BIGINT NOT NULL,
    status VARCHAR NOT NULL, batchref VARCHAR, first_seen DATE NOT NULL, allocated_on DATE,
    arrival_seq BIGINT NOT NULL, source_file VARCHAR, source_line BIGINT, run_id VARCHAR
);
CREATE TABLE allocations (
    orderid VARCHAR NOT NULL, sku VARCHAR NOT NULL, qty BIGINT NOT NULL,
    batchref VARCHAR NOT NULL, eta DATE, business_date DATE NOT NULL, run_id VARCHAR NOT NULL,
    arrival_seq BIGINT
);
CREATE TABLE rejected_rows (
    run_id VARCHAR NOT NULL, business_date DATE NOT NULL, kind VARCHAR NOT NULL,
    source_file VARCHAR NOT NULL, line BIGINT, reason VARCHAR NOT NULL, raw VARCHAR
);
"""

# Version 2: manifest updates (batches change eta and quantity, lines are released and re-placed).
_V2_TABLES = """
ALTER TABLE batches ADD COLUMN updated_on DATE;
ALTER TABLE allocations ADD COLUMN released_on DATE;
ALTER TABLE runs ADD COLUMN batches_updated BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN eta_changes BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN qty_increases BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN qty_decreases BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancellations BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN lines_released BIGINT DEFAULT 0;
ALTER TABLE runs ADD COLUMN lines_replaced BIGINT DEFAULT 0;
CREATE TABLE batch_changes (
    reference VARCHAR NOT NULL, sku VARCHAR NOT NULL, change VARCHAR NOT NULL,
    old_qty BIGINT, new_qty BIGINT, old_eta DATE, new_eta DATE,
    business_date DATE NOT NULL, run_id VARCHAR NOT NULL, source_file VARCHAR, source_line BIGINT
);
CREATE TABLE reallocations (
    orderid VARCHAR NOT NULL, sku VARCHAR NOT NULL, qty BIGINT NOT NULL,
    from_batchref VARCHAR NOT NULL, to_batchref VARCHAR, reason VARCHAR NOT NULL,
    business_date DATE NOT NULL, run_id VARCHAR NOT NULL
);
"""

# Version 3: no table change; every analyst column documented, the views revised. Views and
# comments are derived objects, rebuilt after every upgrade, so changing either one is a new
# version (a warehouse at the previous version would otherwise keep the old text).

# Version 4: every manifest row received is remembered, so that reading a file again does not
# replay it (README, inbox contract). Warehouses upgraded from version 3 have no such rows: their
# files are recognised by name and checksum in `ingested_files` instead.
_V4_TABLES = """
CREATE TABLE manifest_rows (
    source_file VARCHAR NOT NULL, line BIGINT NOT NULL, reference VARCHAR NOT NULL,
    sku VARCHAR NOT NULL, qty BIGINT NOT NULL, eta DATE,
    business_date DATE NOT NULL, run_id VARCHAR NOT NULL
);
"""

# Version 5 (`warehouse_repair`): the manifest-row ledger filled from the history a version 2
# or 3 warehouse holds (the version-4 upgrade left it empty, and a re-sent manifest's old rows
# were applied again), and batches whose eta no night can hold repaired or quarantined (the
# table `quarantined_batches`). Later versions are other changes; a version missing from
# MIGRATIONS below changes nothing (versions are numbered ahead, so merges do not collide).

# Views are rebuilt after every upgrade. "Today" for an analyst is the latest committed night.
# Sums over a sku are HUGEINT in DuckDB; every quantity fits BIGINT but their sum may not, so sums
# are capped at the largest BIGINT (casting them would fail the night's reports, and every later
# night's) and differences are taken before capping.
_BIGINT_MAX = "9223372036854775807"
_VIEWS = """
CREATE OR REPLACE VIEW out_of_stock AS
WITH last_night AS (
    SELECT max(business_date) AS d FROM runs WHERE status = 'completed'
), sku_stock AS (
    SELECT sku, least(sum(available), BIGINT_MAX)::BIGINT AS available,
           max(available)::BIGINT AS best
    FROM batches GROUP BY sku
)
SELECT l.orderid, l.sku, l.qty, l.first_seen,
       greatest(coalesce((SELECT d FROM last_night), l.first_seen) - l.first_seen, 0)::BIGINT
           AS days_waiting,
       coalesce(s.available, 0)::BIGINT AS available,
       greatest(l.qty - coalesce(s.best, 0), 0)::BIGINT AS shortfall,
       (SELECT min(b.eta) FROM batches b
         WHERE b.sku = l.sku AND b.eta IS NOT NULL AND b.available >= l.qty) AS next_eta,
       l.arrival_seq
FROM order_lines l LEFT JOIN sku_stock s USING (sku)
WHERE l.status = 'out_of_stock';

CREATE OR REPLACE VIEW stock_position AS
WITH stock AS (
    SELECT sku, sum(purchased) AS purchased, sum(allocated) AS allocated,
           sum(available) AS available,
           min(eta) FILTER (WHERE eta IS NOT NULL AND available > 0) AS next_eta
    FROM batches GROUP BY sku
), demand AS (
    SELECT sku, sum(qty) AS open_demand, count(*)::BIGINT AS open_lines
    FROM order_lines WHERE status = 'out_of_stock' GROUP BY sku
)
SELECT sku,
       least(coalesce(purchased, 0), BIGINT_MAX)::BIGINT AS purchased,
       least(coalesce(allocated, 0), BIGINT_MAX)::BIGINT AS allocated,
       least(coalesce(available, 0), BIGINT_MAX)::BIGINT AS available,
       least(coalesce(open_demand, 0), BIGINT_MAX)::BIGINT AS open_demand,
       coalesce(open_lines, 0)::BIGINT AS open_lines,
       least(greatest(coalesce(open_demand, 0) - coalesce(available, 0), 0), BIGINT_MAX)::BIGINT
           AS shortfall,
       next_eta
FROM stock FULL OUTER JOIN demand USING (sku);
""".replace("BIGINT_MAX", _BIGINT_MAX)


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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V1_TABLES)


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V2_TABLES)


def _v3(con: duckdb.DuckDBPyConnection) -> None:
    """Nothing to change in the tables: the views and comments are rebuilt after it."""


def _v4(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V4_TABLES)


def _nothing(con: duckdb.DuckDBPyConnection) -> None:
    """A version number kept for a change made elsewhere: nothing to do here."""


MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,
    5: warehouse_repair.upgrade,
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
        con.execute(_VIEWS)
        _comment(con)
    return found
