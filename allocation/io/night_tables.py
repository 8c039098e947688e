"""The TEMP tables of a night's connection, named in one place: tonight's new lines
(`night_lines`, made by `allocation.io.staging`), the open lines a night may place
(`candidate_lines` over `candidate_room`), the decision's `placements` and the batches they name
(`placed_batches`, while recording); and recording the night
from them into `order_lines`, `allocations` and `batches` (`record_placements`).
"""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb

_BIGINT_MAX = 9_223_372_036_854_775_807
#: Lines recorded per statement (`record_placements`): one range's join and sort stay in memory.
RECORD_ROWS = 1_000_000
#: How many lines are open tonight: the waiting ones and tonight's (the TEMP table `night_lines`).
OPEN_LINE_COUNT = (
    "SELECT (SELECT count(*) FROM order_lines WHERE status = 'out_of_stock') "
    "+ (SELECT count(*) FROM night_lines)"
)
#: The open lines a night may place: tonight's, and the waiting ones no larger than the most
#: room any batch of their sku has when the decision starts (the TEMP table `candidate_room`,
#: sku and room, made after tonight's batches and manifest changes). Room only shrinks while a
#: night decides and a line left unplaced changes nothing, so a larger line could not be placed
#: tonight and leaving it out changes no line's answer (`domain.place`): a waiting line of a sku
#: that gained no room since it last failed is never read. Tonight's lines are not filtered:
#: there the join costs more than it saves (measured in docs/benchmarks.md, "The backlog").
#: The TEMP view `candidate_lines` of the night's connection.
CANDIDATE_LINES = (
    "SELECT o.orderid, o.sku, o.qty, o.arrival_seq FROM order_lines o "
    "JOIN candidate_room r ON o.sku = r.sku AND o.qty <= r.room "
    "WHERE o.status = 'out_of_stock' "
    "UNION ALL SELECT orderid, sku, qty, arrival_seq FROM night_lines"
)


def create_candidate_lines(con: duckdb.DuckDBPyConnection) -> None:
    """Makes the TEMP view `candidate_lines` (`CANDIDATE_LINES`) over a snapshot of each sku's
    most room, `candidate_room`: recording updates the batches while the view is still read.
    Call once tonight's batches and manifest changes are in, before the decision."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE candidate_room AS "
        "SELECT sku, max(purchased - allocated) AS room "
        "FROM batches GROUP BY sku HAVING max(purchased - allocated) > 0"
    )
    con.execute(f"CREATE OR REPLACE TEMP VIEW candidate_lines AS {CANDIDATE_LINES}")


def record_placements(con: duckdb.DuckDBPyConnection, business_date: dt.date, run_id: str) -> None:
    """Records the night from the TEMP tables `night_lines` (tonight's new lines),
    `candidate_lines` (`CANDIDATE_LINES`) and `placements` (arrival_seq, batch rowid, qty of
    every line placed tonight, the waiting lines' included; left in arrival order), all in
    DuckDB: tonight's lines into `order_lines` with their status, the waiting lines that got
    stock marked allocated, an `allocations` row per placement, and the batches' totals. Rows go
    in arrival order, as they always have (the reports read `allocations` in slices of
    `arrival_seq`)."""
    # Range by range of arrival_seq, about RECORD_ROWS lines each, in order: each range's join
    # and sort fit in DuckDB's memory, where one statement over the whole night spilled both
    # to disk and grew faster than the night. Each range must read only its own
    # rows, or the step grows with the square of the night: `night_lines` is stored (or
    # staged) in arrival order, and the placements, which come in the allocator's order of
    # skus, are put in arrival order once here.
    con.execute(
        "CREATE TEMP TABLE placements_in_order AS "
        "SELECT arrival_seq, batch, qty FROM placements ORDER BY arrival_seq"
    )
    con.execute("DROP TABLE placements")
    con.execute("ALTER TABLE placements_in_order RENAME TO placements")
    # The batches tonight's placements name, read out of `batches` once: every statement below
    # joins these few instead of hashing every batch the warehouse ever received (1.9M after
    # 78 nights of 1M lines), which each range's statement did, and which ran an aged
    # warehouse's night out of memory (docs/scaling.md, "An aged warehouse's night out of
    # DuckDB's memory").
    con.execute(
        "CREATE OR REPLACE TEMP TABLE placed_batches AS "
        "SELECT rowid AS batch, reference, eta FROM batches "
        "WHERE rowid IN (SELECT DISTINCT batch FROM placements)"
    )
    for low, high in _ranges(con, "placements", "arrival_seq"):
        con.execute(
            "INSERT INTO allocations (orderid, sku, qty, batchref, eta, business_date, "
            "run_id, arrival_seq) "
            "SELECT l.orderid, l.sku, l.qty, b.reference, b.eta, $day, $run, l.arrival_seq "
            "FROM candidate_lines l JOIN placements p USING (arrival_seq) "
            "JOIN placed_batches b USING (batch) "
            "WHERE l.arrival_seq >= $low AND l.arrival_seq < $high "
            "AND p.arrival_seq >= $low AND p.arrival_seq < $high ORDER BY l.arrival_seq",
            {"day": business_date, "run": run_id, "low": low, "high": high},
        )
    # The waiting lines (every one older than tonight's) that got stock. Before tonight's
    # lines go in, so that the join only meets the waiting ones. Found first, then updated
    # by rowid in rowid order: rows scattered over the history and updated in the order a
    # join hands them out (by batch) cost DuckDB forty times as much (docs/scaling.md,
    # "The eighteenfold slowdown of recording, found").
    con.execute(
        "CREATE OR REPLACE TEMP TABLE waiting_placed AS "
        "SELECT o.rowid AS line_row, b.reference FROM order_lines o "
        "JOIN placements p ON o.arrival_seq = p.arrival_seq "
        "JOIN placed_batches b USING (batch) "
        "WHERE o.status = 'out_of_stock' "
        "AND p.arrival_seq < (SELECT coalesce(min(arrival_seq), $last) FROM night_lines) "
        "ORDER BY line_row",
        {"last": _BIGINT_MAX},
    )
    con.execute(
        "UPDATE order_lines SET status = 'allocated', batchref = w.reference, "
        "allocated_on = $day FROM waiting_placed w WHERE order_lines.rowid = w.line_row",
        {"day": business_date},
    )
    con.execute("DROP TABLE waiting_placed")
    for low, high in _ranges(con, "night_lines", "arrival_seq"):
        con.execute(
            "INSERT INTO order_lines (orderid, sku, qty, status, batchref, first_seen, "
            "allocated_on, arrival_seq, source_file, source_line, run_id, line_key) "
            "SELECT n.orderid, n.sku, n.qty, "
            "CASE WHEN b.reference IS NULL THEN 'out_of_stock' ELSE 'allocated' END, "
            "b.reference, $day, CASE WHEN b.reference IS NULL THEN NULL ELSE $day END, "
            "n.arrival_seq, n.source_file, n.line, $run, n.key_hash "
            "FROM (SELECT * FROM night_lines "
            "      WHERE arrival_seq >= $low AND arrival_seq < $high) n "
            "LEFT JOIN (SELECT * FROM placements "
            "           WHERE arrival_seq >= $low AND arrival_seq < $high) p USING (arrival_seq) "
            "LEFT JOIN placed_batches b USING (batch) ORDER BY n.arrival_seq",
            {"day": business_date, "run": run_id, "low": low, "high": high},
        )
    con.execute("DROP TABLE placed_batches")
    con.execute(
        "UPDATE batches SET allocated = allocated + t.qty FROM ("
        "SELECT batch, sum(qty)::BIGINT AS qty FROM placements GROUP BY batch) t "
        "WHERE batches.rowid = t.batch"
    )


def _ranges(con: duckdb.DuckDBPyConnection, table: str, column: str) -> list[tuple[int, int]]:
    """Consecutive ranges [low, high) of `column`, covering every value there could be, each
    holding about RECORD_ROWS of `table`'s rows (cut at DuckDB's approximate quantiles, read
    in one pass in bounded memory; a skewed cut only makes a range bigger, never loses a
    row). `table` and `column` are constants of this module, never input."""
    rows, cuts = con.sql(
        f"SELECT count(*), approx_quantile({column}, $fractions::FLOAT[]) FROM {table}",  # noqa: S608
        params={"fractions": [step / 64 for step in range(1, 64)]},
    ).fetchall()[0]
    parts = max(1, min(64, -(-int(rows) // RECORD_ROWS)))
    wanted = [cuts[round(64 * step / parts) - 1] for step in range(1, parts)] if cuts else []
    bounds = sorted({int(cut) for cut in wanted if cut is not None})
    edges = [-_BIGINT_MAX - 1, *bounds, _BIGINT_MAX]
    return [(low, high) for low, high in itertools.pairwise(edges) if low < high]
