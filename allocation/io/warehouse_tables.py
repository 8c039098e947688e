"""The warehouse's tables as each schema version creates or changes them (the DDL).

`warehouse_schema` applies them in order, one version at a time, inside the caller's
transaction; the views are `warehouse_views`, the documentation `warehouse_comments`.
"""

from __future__ import annotations

# Version 1: the ledger (runs, files read), stock, order lines, allocations and rejections.
V1_TABLES = """
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
V2_TABLES = """
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

# Version 4: every manifest row received is remembered, so that reading a file again does not
# replay it (README, inbox contract). Warehouses upgraded from version 3 have no such rows: their
# files are recognised by name and checksum in `ingested_files` instead.
V4_TABLES = """
CREATE TABLE manifest_rows (
    source_file VARCHAR NOT NULL, line BIGINT NOT NULL, reference VARCHAR NOT NULL,
    sku VARCHAR NOT NULL, qty BIGINT NOT NULL, eta DATE,
    business_date DATE NOT NULL, run_id VARCHAR NOT NULL
);
"""

# Version 6: the night's checks (`allocation.service.night_checks`): every result kept, a
# stopped night's too (committed = false, nothing else of it is); and per run the lines still
# waiting from earlier nights and the oldest wait, for the `nightly_trend` view.
V6_TABLES = """
CREATE TABLE night_checks (
    business_date DATE NOT NULL, run_id VARCHAR NOT NULL, checked_at TIMESTAMP NOT NULL,
    check_name VARCHAR NOT NULL, level VARCHAR NOT NULL, figure DOUBLE, threshold DOUBLE NOT NULL,
    result VARCHAR NOT NULL, detail VARCHAR NOT NULL, committed BOOLEAN NOT NULL
);
ALTER TABLE runs ADD COLUMN lines_waiting BIGINT;
ALTER TABLE runs ADD COLUMN oldest_wait_days BIGINT;
"""

# Version 7: every order line keeps its key's hash (`line_key`, DuckDB's `hash(orderid, sku)`),
# so a night looks repeats up by that integer instead of hashing every earlier line again
# (`allocation.io.staged_night`). Filled for the lines already there, once.
V7_TABLES = """
ALTER TABLE order_lines ADD COLUMN IF NOT EXISTS line_key UBIGINT;
UPDATE order_lines SET line_key = hash(orderid, sku);
"""

# Version 11: analysts' answers (issue "Analysts' questions answered directly"): a stable code
# beside every rejection's words, and on every reallocation the code and the manifest row of the
# change that released it. The views and the macro of `warehouse_views` come with it.
V11_TABLES = """
ALTER TABLE rejected_rows ADD COLUMN IF NOT EXISTS reason_code VARCHAR;
ALTER TABLE reallocations ADD COLUMN IF NOT EXISTS reason_code VARCHAR;
ALTER TABLE reallocations ADD COLUMN IF NOT EXISTS change_source_file VARCHAR;
ALTER TABLE reallocations ADD COLUMN IF NOT EXISTS change_source_line BIGINT;
"""

# Reallocations stored before version 11 name their change only in words; the change itself is
# the run's one qty_down/cancelled row of that batch in `batch_changes` (when a run changed the
# batch twice, which row released which line is not known: file and line stay NULL).
V11_BACKFILL_REALLOCATIONS = """
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
