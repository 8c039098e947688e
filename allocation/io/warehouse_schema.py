"""The warehouse's tables and views, their documentation, and upgrades between schema versions.

Every table and view carries `COMMENT ON` text, so analysts read the same documentation in their
own tools (`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()`) as in `docs/analysts.md`.
Upgrades run on open, in order, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import duckdb

SCHEMA_VERSION = 4

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

COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "batches": (
        "Every batch of stock ever announced by a manifest, with its current allocation.",
        {
            "reference": "Batch reference (unique).",
            "sku": "Stock-keeping unit the batch holds.",
            "eta": "Expected arrival date; NULL means the stock is in the warehouse now.",
            "purchased": "Quantity bought (from the latest manifest row; 0 when cancelled).",
            "allocated": "Quantity given to order lines.",
            "available": "purchased - allocated: what is still free.",
            "first_seen": "Business date the batch was first received.",
            "source_file": "Inbox file the batch first came from.",
            "source_line": "1-based data row in that file.",
            "updated_on": "Business date of the latest manifest change, if any.",
        },
    ),
    "order_lines": (
        "Every order line ever received, with its current status.",
        {
            "orderid": "Order identifier; (orderid, sku) identifies a line.",
            "sku": "Stock-keeping unit ordered.",
            "qty": "Quantity ordered; a line is allocated whole or not at all.",
            "status": "allocated, or out_of_stock (still open, retried every night).",
            "batchref": "Batch the line is allocated to (NULL while out of stock).",
            "first_seen": "Business date the line arrived.",
            "allocated_on": "Business date of the current allocation (NULL while out of stock).",
            "arrival_seq": "Global arrival order (files by name, rows in order, night after night).",
            "source_file": "Inbox file the line came from.",
            "source_line": "1-based data row in that file.",
            "run_id": "Run that received the line.",
        },
    ),
    "allocations": (
        "History of every allocation made, one row per placement of a line in a batch.",
        {
            "orderid": "Order identifier.",
            "sku": "Stock-keeping unit.",
            "qty": "Quantity allocated.",
            "batchref": "Batch the line was given to.",
            "eta": "ETA of that batch when the allocation was made (NULL = in stock).",
            "business_date": "Night the allocation was made.",
            "run_id": "Run that made it.",
            "arrival_seq": "Arrival order of the line (reports list allocations in this order).",
            "released_on": "Night a manifest change took the line back from this batch, if ever.",
        },
    ),
    "out_of_stock": (
        "Open order lines (not allocated yet), with what the sku has and when stock could come.",
        {
            "orderid": "Order identifier.",
            "sku": "Stock-keeping unit.",
            "qty": "Quantity ordered.",
            "first_seen": "Business date the line arrived.",
            "days_waiting": "Days from first_seen to the latest committed night.",
            "available": "Free quantity of the sku over all its batches, in stock and coming.",
            "shortfall": "How much more the sku's best batch would need to take the line whole.",
            "next_eta": "Earliest ETA of a batch of the sku that could still take the line whole "
            "(NULL: no such batch is known).",
            "arrival_seq": "Arrival order; lines are tried in this order.",
        },
    ),
    "stock_position": (
        "Per sku: stock bought, given, free, the open demand and when stock comes next.",
        {
            "sku": "Stock-keeping unit.",
            "purchased": "Sum of purchased quantities over its batches.",
            "allocated": "Sum allocated over its batches.",
            "available": "Sum free over its batches, in stock and coming.",
            "open_demand": "Quantity of its open (out of stock) lines.",
            "open_lines": "Number of its open lines.",
            "shortfall": "open_demand - available, at least 0 (lines are not split, so lines "
            "can wait even at 0).",
            "next_eta": "Earliest ETA of a batch with free stock (NULL: none coming).",
        },
    ),
    "runs": (
        "One row per committed run: when, what it received, what it decided "
        "(the counts of its summary.json).",
        {
            "run_id": "Run identifier (the Prefect flow run id when run under Prefect).",
            "business_date": "Night the run was for.",
            "started_at": "UTC start.",
            "finished_at": "UTC commit time.",
            "status": "completed (a run that fails commits nothing and leaves no row).",
            "orders_received": "Order rows read (valid, duplicate and rejected).",
            "orders_accepted": "New order lines stored.",
            "orders_duplicate": "Order rows identical to a line already known (ignored).",
            "orders_rejected": "Order rows rejected (see rejected_rows).",
            "batches_received": "Manifest rows read (valid, duplicate and rejected).",
            "batches_accepted": "New batches stored, plus changes to known batches.",
            "batches_duplicate": "Manifest rows repeating what is known (ignored).",
            "batches_rejected": "Manifest rows rejected (see rejected_rows).",
            "allocated": "Lines allocated by the run (new lines and lines that waited).",
            "out_of_stock": "Lines left open (out of stock) after the run.",
            "files_received": "Inbox files found.",
            "files_rejected": "Inbox files rejected whole.",
            "files_skipped": "Inbox files skipped because a run of the same night committed them.",
            "input_files": "Inbox files read by the run.",
            "rejected_files": "Inbox files rejected whole.",
            "message": "Note about the run, if any.",
            "batches_updated": "Known batches a manifest changed.",
            "eta_changes": "Manifest changes of an ETA.",
            "qty_increases": "Manifest changes raising a quantity.",
            "qty_decreases": "Manifest changes lowering a quantity (not to 0).",
            "cancellations": "Manifest changes setting a quantity to 0.",
            "lines_released": "Allocated lines a manifest change took back.",
            "lines_replaced": "Released lines allocated again the same night.",
        },
    ),
    "rejected_rows": (
        "Rows and files that were not loaded, with the reason and the values as received.",
        {
            "run_id": "Run that rejected it.",
            "business_date": "Night that read it.",
            "kind": "orders or batches.",
            "source_file": "Inbox file (relative to the inbox).",
            "line": "1-based data row; NULL when the whole file was rejected.",
            "reason": "Why, in words a person can act on.",
            "raw": "The values as received (JSON).",
        },
    ),
    "ingested_files": (
        "Every inbox file a run read, with its checksum.",
        {
            "run_id": "Run that read it.",
            "business_date": "Night that read it.",
            "kind": "orders or batches.",
            "file_name": "Path relative to the inbox.",
            "size": "Bytes.",
            "sha256": "Checksum of the content.",
            "rows": "Data rows read (0 for a rejected file).",
            "status": "loaded or rejected.",
            "reason": "Why the whole file was rejected (NULL when loaded).",
        },
    ),
    "batch_changes": (
        "Manifest updates applied to known batches.",
        {
            "reference": "Batch reference.",
            "sku": "Its sku.",
            "change": "eta, qty_up, qty_down or cancelled.",
            "old_qty": "Purchased quantity before.",
            "new_qty": "Purchased quantity after.",
            "old_eta": "ETA before.",
            "new_eta": "ETA after.",
            "business_date": "Night the change was applied.",
            "run_id": "Run that applied it.",
            "source_file": "Manifest file of the change.",
            "source_line": "1-based data row in that file.",
        },
    ),
    "reallocations": (
        "Lines released by a manifest change, and where each went next.",
        {
            "orderid": "Order identifier.",
            "sku": "Stock-keeping unit.",
            "qty": "Quantity of the line.",
            "from_batchref": "Batch that gave the line back.",
            "to_batchref": "Batch it was re-placed in that night (NULL: out of stock).",
            "reason": "The manifest change that released it.",
            "business_date": "Night of the change.",
            "run_id": "Run that applied it.",
        },
    ),
    "manifest_rows": (
        "Every manifest row received (applied or not), so that a file read again is not applied "
        "again.",
        {
            "source_file": "Inbox file the row came from (relative to the inbox).",
            "line": "1-based data row in that file.",
            "reference": "Batch reference.",
            "sku": "Its sku.",
            "qty": "Purchased quantity the row said.",
            "eta": "ETA the row said (NULL = in stock).",
            "business_date": "Night that received it.",
            "run_id": "Run that received it.",
        },
    ),
    "schema_version": (
        "Warehouse schema versions applied, newest last.",
        {
            "version": "Schema version.",
            "applied_at": "UTC time the upgrade to it was committed.",
        },
    ),
}

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
)


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


MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {
    1: _v1,
    2: _v2,
    3: _v3,
    4: _v4,
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
        MIGRATIONS[version](con)
        con.execute(
            "INSERT INTO schema_version VALUES (?, ?)",
            [version, dt.datetime.now(dt.UTC).replace(tzinfo=None)],
        )
    if found < target and target == SCHEMA_VERSION:
        con.execute(_VIEWS)
        _comment(con)
    return found
