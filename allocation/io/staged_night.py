"""What the night's transaction reads of the load staging file (`allocation.io.staging`).

The transaction attaches the file read-only (`attached`, which hands back a `StagedNight`),
classifies tonight's orders partition by partition (`StagedNight.classify_orders`, which leaves
`night_lines` and `night_rejected`) and records the rejections by SQL, so no step holds the
whole night's rows in Python.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import duckdb
import polars as pl

from allocation.io.ingest import LINE_KEY, classify_orders
from allocation.io.staging import STAGE_ROWS

log = logging.getLogger("allocation")

#: The schema name the night's connection attaches the staging file under.
STAGED = "tonight"
#: The session variable holding tonight's first `arrival_seq` (`StagedNight.classify_orders`).
FIRST_ARRIVAL_SEQ = "night_first_arrival_seq"
#: Orders classified at a time: each partition of the key hash goes through polars on its own
#: (about 1M rows: a few hundred MB at most, whatever the size of the night).
PARTITION_ROWS = 1_000_000


class StagingError(RuntimeError):
    """The night's staging file is gone: the night must be loaded again."""


@contextlib.contextmanager
def attached(con: duckdb.DuckDBPyConnection, path: Path) -> Iterator[StagedNight]:
    """The staging file attached read-only as `tonight` in `con` (the night's transaction, which
    writes only the warehouse and TEMP tables), and what the night asks of it."""
    if not path.exists():
        raise StagingError(
            f"the night's staging file {path} is gone (removed by another run?): run the night "
            "again, it loads the inbox anew"
        )
    con.execute(f"ATTACH ? AS {STAGED} (READ_ONLY)", [str(path)])
    try:
        yield StagedNight(con)
    finally:
        with contextlib.suppress(duckdb.Error):  # a failed transaction refuses it: closing does
            con.execute(f"DETACH {STAGED}")


#: Lines whose kept key is compared with a fresh hash each night (`_check_line_keys`).
_KEYS_CHECKED = 64


def _check_line_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Makes sure every line's `line_key` is DuckDB's `hash(orderid, sku)` as this DuckDB
    computes it. A line stored without one (by hand, or by a tool that does not know the column)
    gets it; and if a few lines' keys differ from a fresh hash, DuckDB's hash function changed
    with an upgrade, so every key is computed again, once (a night would otherwise miss its
    repeats). Costs a scan of the integer column, not a hash of every line."""
    con.execute("UPDATE order_lines SET line_key = hash(orderid, sku) WHERE line_key IS NULL")
    changed = con.sql(
        "SELECT count(*) FROM (SELECT orderid, sku, line_key FROM order_lines LIMIT $n) "
        "WHERE line_key <> hash(orderid, sku)",
        params={"n": _KEYS_CHECKED},
    ).fetchall()[0][0]
    if changed:
        log.warning(
            "The kept hashes of the order lines' keys differ from this DuckDB's hash function "
            "(an upgrade changed it): computing them again, once"
        )
        con.execute("UPDATE order_lines SET line_key = hash(orderid, sku)")


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    if frame.height:
        con.from_arrow(frame.to_arrow()).insert_into(table)


class StagedNight:
    """The run's staging file attached to the night's transaction (`attached`): tonight's
    manifest rows, the orders' classification (which leaves the TEMP table or view `night_lines`
    and the TEMP table `night_rejected` in the transaction) and the rejections, recorded by SQL."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def batches(self) -> pl.DataFrame:
        """Tonight's valid manifest rows in arrival order (they scale with batches, not lines)."""
        frame: pl.DataFrame = self._con.sql(
            f"SELECT source_file, line, reference, sku, qty, eta, raw FROM {STAGED}.batches "  # noqa: S608
            "ORDER BY seq"
        ).pl()
        return frame

    def classify_orders(self, first_arrival_seq: int, partition_rows: int = PARTITION_ROWS) -> int:
        """Sorts tonight's staged orders into new, duplicate and conflicting, with the answers of
        `classify_orders` over the whole night, in bounded memory.

        A row whose key hash no other row tonight and no earlier line shares is new for sure (two
        keys with different hashes differ): DuckDB finds the others, the *suspects* (usually none or
        few), and only they go through `classify_orders`, one partition of the hash at a time (about
        `partition_rows` rows each). Every row of one key is in the same partition, so each
        partition's answer is exact, and together they are the whole night's.

        Leaves in the transaction: `night_lines` (arrival_seq, orderid, sku, qty, source_file, line, key_hash:
        tonight's new lines, `arrival_seq` dense from `first_arrival_seq` in arrival order, each
        with its key's hash, the `line_key` it is recorded with; a TEMP view over the
        staging file when every row is new, else a TEMP table; its row order is not promised) and
        the TEMP table `night_rejected` (seq, kind, source_file, line, reason, raw: the conflicts, `seq` their
        arrival). Returns how many rows were duplicates."""
        # Earlier nights' lines that may share a key with tonight's (by hash: a shared hash only
        # brings a line `classify_orders` then finds is another key), found by the hash each line
        # keeps (`line_key`): no earlier line is hashed again.
        _check_line_keys(self._con)
        self._con.execute(
            "CREATE TEMP TABLE night_known AS SELECT l.line_key AS key_hash, "  # noqa: S608
            "l.orderid, l.sku, l.qty AS known_qty, l.first_seen AS known_date, "
            "l.source_file AS known_file, l.source_line AS known_line FROM order_lines l "
            f"WHERE l.line_key IN (SELECT key_hash FROM {STAGED}.orders)"
        )
        self._con.execute(
            "CREATE TEMP TABLE night_suspects AS "  # noqa: S608
            f"SELECT key_hash FROM {STAGED}.orders GROUP BY key_hash HAVING count(*) > 1 "
            "UNION SELECT key_hash FROM night_known"
        )
        self._con.execute(
            "CREATE TEMP TABLE night_dropped (seq BIGINT)"
        )  # duplicates and conflicts
        self._con.execute(
            "CREATE TEMP TABLE night_rejected (seq BIGINT, kind VARCHAR, source_file VARCHAR, "
            "line BIGINT, reason VARCHAR, raw VARCHAR)"
        )
        suspects = int(
            self._con.sql(
                f"SELECT count(*) FROM {STAGED}.orders SEMI JOIN night_suspects USING (key_hash)"  # noqa: S608
            ).fetchall()[0][0]
        )
        parts = max(1, math.ceil(suspects / max(1, partition_rows)))
        duplicates = 0
        for part in range(parts if suspects else 0):
            tonight: pl.DataFrame = self._con.sql(
                "SELECT seq, source_file, line, orderid, sku, qty, raw "  # noqa: S608
                f"FROM {STAGED}.orders SEMI JOIN night_suspects USING (key_hash) "
                "WHERE key_hash % $parts = $part ORDER BY seq",
                params={"parts": parts, "part": part},
            ).pl()
            known: pl.DataFrame = self._con.sql(
                "SELECT orderid, sku, known_qty, known_date, known_file, known_line "
                "FROM night_known WHERE key_hash % $parts = $part",
                params={"parts": parts, "part": part},
            ).pl()
            found = classify_orders(
                tonight, known.unique(LINE_KEY, maintain_order=True), carry=("seq",)
            )
            duplicates += found.duplicates
            dropped = tonight.select("seq").filter(~pl.col("seq").is_in(found.new["seq"].implode()))
            _insert(self._con, "night_dropped", dropped)
            _insert(
                self._con,
                "night_rejected",
                found.rejected.select("seq", "kind", "source_file", "line", "reason", "raw"),
            )
            del tonight, known, found, dropped
        none_dropped = not self._con.sql("SELECT count(*) FROM night_dropped").fetchall()[0][0]
        # A session variable, not a table joined in: DuckDB folds it into a constant, so a filter on
        # `arrival_seq` becomes one on the staged `seq` and reads only the row groups it needs. Joined
        # from a table, every range `record_placements` reads scanned the whole staged night (30M
        # lines: 30 ranges x 30M rows).
        self._con.execute(
            f"SET VARIABLE {FIRST_ARRIVAL_SEQ} = $first::BIGINT", {"first": first_arrival_seq}
        )
        if none_dropped:
            # The usual night: every staged row is new and `seq` (dense from 0 in arrival order)
            # numbers it. A view, not a copy: time and DuckDB memory saved (docs/benchmarks.md).
            self._con.execute(
                "CREATE TEMP VIEW night_lines AS SELECT "  # noqa: S608
                f"(getvariable('{FIRST_ARRIVAL_SEQ}') + o.seq)::BIGINT AS arrival_seq, "
                f"o.orderid, o.sku, o.qty, o.source_file, o.line, o.key_hash FROM {STAGED}.orders o"
            )
        else:
            # Stored in arrival order (the window's), so a range of arrival_seq reads its own
            # row groups here too.
            self._con.execute(
                "CREATE TEMP TABLE night_lines AS SELECT "  # noqa: S608
                f"(getvariable('{FIRST_ARRIVAL_SEQ}') - 1 + row_number() OVER (ORDER BY o.seq))::BIGINT "
                "AS arrival_seq, o.orderid, o.sku, o.qty, o.source_file, o.line, o.key_hash "
                f"FROM {STAGED}.orders o ANTI JOIN night_dropped d USING (seq) ORDER BY arrival_seq"
            )
        for table in ("night_known", "night_suspects", "night_dropped"):
            self._con.execute(f"DROP TABLE {table}")
        return duplicates

    def add_load_rejections(self, run_id: str, day: dt.date) -> None:
        """Records the load's rejections (files and rows the readers and validation refused), in the
        order they were found."""
        self._con.execute(
            "INSERT INTO rejected_rows (run_id, business_date, kind, source_file, line, reason, raw) "  # noqa: S608
            f"SELECT ?, ?, kind, source_file, line, reason, raw FROM {STAGED}.rejected "
            "ORDER BY seq",
            [run_id, day],
        )

    def add_order_rejections(self, run_id: str, day: dt.date) -> None:
        """Records the conflicting order lines `classify_orders` found, in arrival order."""
        self._con.execute(
            "INSERT INTO rejected_rows (run_id, business_date, kind, source_file, line, reason, raw) "
            "SELECT ?, ?, kind, source_file, line, reason, raw FROM night_rejected ORDER BY seq",
            [run_id, day],
        )

    def rejected_row_counts(self) -> dict[str, int]:
        """Rejected rows (not whole files) per kind, of the load and of the orders' classification."""
        rows = self._con.sql(
            "SELECT kind, count(*)::BIGINT FROM ("  # noqa: S608
            f"SELECT kind, line FROM {STAGED}.rejected UNION ALL SELECT kind, line FROM night_rejected"
            ") WHERE line IS NOT NULL GROUP BY kind"
        ).fetchall()
        return {str(kind): int(count) for kind, count in rows}

    def rejection_chunks(self, rows_at_once: int = STAGE_ROWS) -> Iterator[pl.DataFrame]:
        """The rejected rows of the load and of the classification (source_file, line, reason), a
        chunk at a time: for the log, which counts them without holding them all."""
        reader = self._con.sql(
            f"SELECT source_file, line, reason FROM {STAGED}.rejected WHERE line IS NOT NULL "  # noqa: S608
            "UNION ALL SELECT source_file, line, reason FROM night_rejected"
        ).to_arrow_reader(rows_at_once)
        for batch in reader:
            yield cast(pl.DataFrame, pl.from_arrow(batch))
