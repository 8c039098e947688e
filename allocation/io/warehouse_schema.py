"""The warehouse's tables and views, their documentation, and upgrades between schema versions.

Every table and view carries `COMMENT ON` text (`warehouse_comments.py`), so analysts read the same documentation in their
own tools (`duckdb_tables()`, `duckdb_views()`, `duckdb_columns()`) as in `docs/analysts.md`.
Upgrades run on open, in order, inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import duckdb

from allocation.io import warehouse_repair
from allocation.io.reason_codes import code_sql
from allocation.io.warehouse_comments import COMMENTS, MACRO_COMMENTS
from allocation.io.warehouse_views import ANALYST_VIEWS

# Versions 6-9 are other changes' (merged in their own order); a version this code has no
# migration for changes nothing (`_nothing`).
SCHEMA_VERSION = 12

log = logging.getLogger(__name__)

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

# Version 6: the night's checks (`allocation.service.night_checks`): every result kept, a stopped night's
# too (committed = false, nothing else of it is); and per run the lines still waiting from earlier
# nights and the oldest wait, for the `nightly_trend` view.
_V6_TABLES = """
CREATE TABLE night_checks (
    business_date DATE NOT NULL, run_id VARCHAR NOT NULL, checked_at TIMESTAMP NOT NULL,
    check_name VARCHAR NOT NULL, level VARCHAR NOT NULL, figure DOUBLE, threshold DOUBLE NOT NULL,
    result VARCHAR NOT NULL, detail VARCHAR NOT NULL, committed BOOLEAN NOT NULL
);
ALTER TABLE runs ADD COLUMN lines_waiting BIGINT;
ALTER TABLE runs ADD COLUMN oldest_wait_days BIGINT;
"""

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

# Version 7: every order line keeps its key's hash (`line_key`, DuckDB's `hash(orderid, sku)`),
# so a night looks repeats up by that integer instead of hashing every earlier line again
# (`allocation.io.staging`). Filled for the lines already there, once.
_V7_TABLES = """
ALTER TABLE order_lines ADD COLUMN IF NOT EXISTS line_key UBIGINT;
UPDATE order_lines SET line_key = hash(orderid, sku);
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
), open_lines AS (
    SELECT l.orderid, l.sku, l.qty, l.first_seen, l.arrival_seq,
           coalesce(s.available, 0)::BIGINT AS available,
           greatest(l.qty - coalesce(s.best, 0), 0)::BIGINT AS shortfall,
           (SELECT min(b.eta) FROM batches b
             WHERE b.sku = l.sku AND b.eta IS NOT NULL AND b.available >= l.qty) AS next_eta
    FROM order_lines l LEFT JOIN sku_stock s USING (sku)
    WHERE l.status = 'out_of_stock'
)
SELECT orderid, sku, qty, first_seen,
       greatest(coalesce((SELECT d FROM last_night), first_seen) - first_seen, 0)::BIGINT
           AS days_waiting,
       available, shortfall, next_eta, arrival_seq,
       available AS sku_free_units,
       shortfall AS best_batch_shortfall,
       next_eta AS next_whole_line_eta
FROM open_lines;

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
       next_eta,
       least(coalesce(available, 0), BIGINT_MAX)::BIGINT AS free_units,
       least(greatest(coalesce(open_demand, 0) - coalesce(available, 0), 0), BIGINT_MAX)::BIGINT
           AS demand_over_free_units,
       next_eta AS next_free_eta
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
    for name, text in MACRO_COMMENTS.items():
        con.execute(f"COMMENT ON MACRO TABLE {name} IS {_quote(text)}")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _v1(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V1_TABLES)


def _v2(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V2_TABLES)


def _views_only(con: duckdb.DuckDBPyConnection) -> None:
    """A version that changed only views (3, 12): nothing to change in the tables; the views
    and comments are rebuilt after it."""


def _v4(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V4_TABLES)


def _v7(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V7_TABLES)


# Version 11: analysts' answers (issue "Analysts' questions answered directly"): a stable code
# beside every rejection's words, and on every reallocation the code and the manifest row of the
# change that released it. The views and the macro of `warehouse_views` come with it.
_V11_TABLES = """
ALTER TABLE rejected_rows ADD COLUMN IF NOT EXISTS reason_code VARCHAR;
ALTER TABLE reallocations ADD COLUMN IF NOT EXISTS reason_code VARCHAR;
ALTER TABLE reallocations ADD COLUMN IF NOT EXISTS change_source_file VARCHAR;
ALTER TABLE reallocations ADD COLUMN IF NOT EXISTS change_source_line BIGINT;
"""

# Reallocations stored before version 11 name their change only in words; the change itself is
# the run's one qty_down/cancelled row of that batch in `batch_changes` (when a run changed the
# batch twice, which row released which line is not known: file and line stay NULL).
_V11_BACKFILL_REALLOCATIONS = """
UPDATE reallocations SET
    reason_code = CASE WHEN reason LIKE '% cancelled' THEN 'cancelled' ELSE 'qty_down' END,
    change_source_file = c.source_file,
    change_source_line = c.source_line
FROM (
    SELECT reference, run_id, any_value(source_file) AS source_file,
           any_value(source_line) AS source_line
    FROM batch_changes WHERE change IN ('qty_down', 'cancelled')
    GROUP BY reference, run_id HAVING count(*) = 1
) c
WHERE reallocations.from_batchref = c.reference AND reallocations.run_id = c.run_id;
UPDATE reallocations
SET reason_code = CASE WHEN reason LIKE '% cancelled' THEN 'cancelled' ELSE 'qty_down' END
WHERE reason_code IS NULL;
"""


def _v11(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_V11_TABLES)
    # The views join allocations to lines by arrival_seq (an integer: fast at any history);
    # version 1 left it optional, so an old allocation may lack it.
    con.execute(
        "UPDATE allocations SET arrival_seq = l.arrival_seq FROM order_lines l "
        "WHERE allocations.arrival_seq IS NULL "
        "AND l.orderid = allocations.orderid AND l.sku = allocations.sku"
    )
    code, params = code_sql("reason")
    con.execute(f"UPDATE rejected_rows SET reason_code = {code}", params)  # noqa: S608
    con.execute(_V11_BACKFILL_REALLOCATIONS)


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
    con.execute(_V6_TABLES)


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
    3: _views_only,
    4: _v4,
    5: warehouse_repair.upgrade,
    6: _v6,
    7: _v7,
    10: _v10,
    11: _v11,
    # 12: `nightly_trend` becomes a slice of `nightly_kpis` (one definition of each nightly
    # figure; its column names and meanings kept), with `nightly_kpis.lines_waiting` and
    # `oldest_wait_days` beside the other KPIs.
    12: _views_only,
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
        con.execute(ANALYST_VIEWS)
        _comment(con)
    return found
