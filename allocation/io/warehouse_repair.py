"""Schema version 5: what older releases left in a warehouse that would give a wrong answer or
stop every night, put right once, on upgrade (`warehouse_schema.migrate`).

1. The manifest-row ledger (`manifest_rows`, version 4) starts empty when a warehouse of version
   2 or 3 is upgraded, so the first night after the upgrade took a re-sent manifest's old rows
   as news and set batches back to old values. It is filled here from the history the warehouse
   already holds: each batch's first row (`batches`: file and line; its values then are the
   first change's old values, or today's when it never changed) and each manifest update
   (`batch_changes`: file, line, new values). A row the ledger already holds (the version-4
   code recorded it, or recorded it again reading the file again) is not added twice. What the
   history does not hold cannot be recovered: a row that repeated a batch's values when it came
   (a duplicate) left no trace before version 4 (README, "Upgrading").
2. A batch whose eta is outside the dates the door accepts (`prechecks.EARLIEST_DATE` to
   `LATEST_DATE`; older releases let `0000-01-01` in, and every night with an order for its sku
   then crashed) is repaired: an eta a manifest update set goes back to the eta before it; a
   batch that came with it and holds no allocation moves to `quarantined_batches`. Each with a
   WARNING log line.
"""

from __future__ import annotations

import datetime as dt
import logging

import duckdb

from allocation.io.prechecks import EARLIEST_DATE, LATEST_DATE

log = logging.getLogger(__name__)

V5_TABLES = """
CREATE TABLE quarantined_batches (
    reference VARCHAR NOT NULL, sku VARCHAR NOT NULL, eta DATE, purchased BIGINT NOT NULL,
    allocated BIGINT NOT NULL, first_seen DATE NOT NULL, source_file VARCHAR, source_line BIGINT,
    quarantined_at TIMESTAMP NOT NULL, reason VARCHAR NOT NULL
);
"""

# Every manifest row the history shows a file delivered, once per (file, line, values): a
# batch's first row and each row that updated it. A change of eta and qty on one row is two
# `batch_changes` rows with the same file, line and values. The run of a batch's first row is
# the run that loaded its file that night.
_HISTORY = """
WITH first_change AS (
    SELECT reference, old_qty, old_eta FROM (
        SELECT reference, old_qty, old_eta,
               row_number() OVER (PARTITION BY reference ORDER BY business_date, rowid) AS n
        FROM batch_changes
    ) WHERE n = 1
), firsts AS (
    SELECT b.source_file, b.source_line AS line, b.reference, b.sku,
           CASE WHEN f.reference IS NULL THEN b.purchased ELSE f.old_qty END AS qty,
           CASE WHEN f.reference IS NULL THEN b.eta ELSE f.old_eta END AS eta,
           b.first_seen AS business_date,
           coalesce(
               (SELECT min(i.run_id) FROM ingested_files i WHERE i.file_name = b.source_file
                  AND i.business_date = b.first_seen AND i.status = 'loaded'),
               (SELECT min(r.run_id) FROM runs r WHERE r.business_date = b.first_seen),
               'before-schema-4'
           ) AS run_id
    FROM batches b LEFT JOIN first_change f USING (reference)
    WHERE b.source_file IS NOT NULL AND b.source_line IS NOT NULL
), updates AS (
    SELECT source_file, source_line AS line, reference, sku, new_qty AS qty, new_eta AS eta,
           business_date, run_id
    FROM batch_changes
    WHERE source_file IS NOT NULL AND source_line IS NOT NULL AND new_qty IS NOT NULL
), history AS (
    SELECT source_file, line, reference, sku, qty, eta,
           min(business_date) AS business_date, arg_min(run_id, business_date) AS run_id
    FROM (SELECT * FROM firsts UNION ALL SELECT * FROM updates)
    GROUP BY source_file, line, reference, sku, qty, eta
), numbered AS (
    SELECT *, row_number() OVER (
        PARTITION BY source_file, reference, sku, qty, eta ORDER BY business_date, line
    ) AS n
    FROM history
)
INSERT INTO manifest_rows (source_file, line, reference, sku, qty, eta, business_date, run_id)
SELECT h.source_file, h.line, h.reference, h.sku, h.qty, h.eta, h.business_date, h.run_id
FROM numbered h
WHERE h.n > (
    SELECT count(*) FROM manifest_rows m
    WHERE m.source_file = h.source_file AND m.reference = h.reference AND m.sku = h.sku
      AND m.qty = h.qty AND m.eta IS NOT DISTINCT FROM h.eta
)
ORDER BY h.business_date, h.source_file, h.line
"""


def remember_received_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Fills `manifest_rows` from the history (see the module's text); returns the rows added."""
    before = _count(con, "manifest_rows")
    con.execute(_HISTORY)
    added = _count(con, "manifest_rows") - before
    if added:
        log.info(
            "Upgrade: %d manifest row(s) of earlier nights remembered as received, from the "
            "batches and batch_changes history (a re-sent manifest will not apply them again)",
            added,
        )
    return added


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    # `table` is a constant of this module, never input.
    return int(con.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0])  # noqa: S608


_OUTSIDE = "eta IS NOT NULL AND (eta < $earliest OR eta > $latest)"


def repair_impossible_etas(con: duckdb.DuckDBPyConnection) -> None:
    """Repairs every batch whose eta the door would reject today (see the module's text)."""
    bounds = {"earliest": EARLIEST_DATE, "latest": LATEST_DATE}
    bad = con.execute(
        f"SELECT reference, eta::VARCHAR, allocated FROM batches WHERE {_OUTSIDE} "  # noqa: S608
        "ORDER BY reference",
        bounds,
    ).fetchall()
    accepted = f"the accepted dates {EARLIEST_DATE} to {LATEST_DATE}"
    for reference, eta, allocated in bad:
        why = f"eta {eta} is outside {accepted}"
        earlier = con.execute(
            "SELECT old_eta, old_eta::VARCHAR, source_file, source_line, business_date "
            "FROM batch_changes c WHERE reference = $ref AND change = 'eta' "
            "AND new_eta = (SELECT eta FROM batches WHERE reference = $ref) "
            "AND (old_eta IS NULL OR old_eta BETWEEN $earliest AND $latest) "
            "ORDER BY business_date DESC, rowid DESC LIMIT 1",
            {"ref": reference, **bounds},
        ).fetchall()
        if earlier:
            old_eta, shown, source_file, line, day = earlier[0]
            restored = shown or "none: in stock"
            _quarantine_row(
                con,
                reference,
                f"{why}; set by {source_file} line {line} on {day}, the batch got back the eta "
                f"it had before ({restored})",
            )
            con.execute(
                "UPDATE batches SET eta = $eta WHERE reference = $ref",
                {"eta": old_eta, "ref": reference},
            )
            log.warning(
                "Batch %s: %s (set by %s line %s on %s); it got back its earlier eta (%s), "
                "recorded in quarantined_batches",
                reference,
                why,
                source_file,
                line,
                day,
                restored,
            )
        elif allocated == 0:
            _quarantine_row(con, reference, why)
            con.execute("DELETE FROM batches WHERE reference = ?", [reference])
            log.warning(
                "Batch %s: %s; moved to quarantined_batches, out of the allocation (a corrected "
                "manifest row for it creates it again)",
                reference,
                why,
            )
        else:
            log.warning(
                "Batch %s: %s, but it holds %d allocated; left as it is: correct its eta with a "
                "manifest update",
                reference,
                why,
                allocated,
            )


def _quarantine_row(con: duckdb.DuckDBPyConnection, reference: str, reason: str) -> None:
    con.execute(
        "INSERT INTO quarantined_batches SELECT reference, sku, eta, purchased, allocated, "
        "first_seen, source_file, source_line, ?, ? FROM batches WHERE reference = ?",
        [dt.datetime.now(dt.UTC).replace(tzinfo=None), reason, reference],
    )


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Schema version 5."""
    con.execute(V5_TABLES)
    remember_received_rows(con)
    repair_impossible_etas(con)
