"""The repository: batches and order lines in and out of the DuckDB working state.

Frames go in by name (registered views) and come back as polars; every value is bound, nothing
is pasted into SQL text. The domain never sees DuckDB: it gets `Batch` and `OrderLine` objects
built here. The night's TEMP tables, and recording the placements from them, are
`allocation.io.night_tables`'.
"""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import polars as pl

from allocation.domain import Batch, OrderLine
from allocation.io import night_tables
from allocation.io.warehouse_schema import code_rejections

_names = itertools.count()
INSERT_ROWS = 1_000_000  # rows of a frame handed to DuckDB per INSERT


class DuckDBRepository:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # -- frames in -------------------------------------------------------------------------
    def _view(self, frame: pl.DataFrame) -> str:
        name = f"frame_{next(_names)}"
        # As Arrow string views (polars' own export): converting to plain strings as well was
        # slower for no faster insert.
        self.con.register(name, frame.to_arrow())
        return name

    def _run(self, sql: str, frame: pl.DataFrame, params: list[object] | None = None) -> None:
        """Runs `sql` with `{frame}` standing for the registered frame (a generated name), once
        per slice of the frame: each row must stand on its own (inserts, updates by key).
        Handing DuckDB a whole big frame at once held a converted copy of all of it."""
        for part in frame.iter_slices(INSERT_ROWS):
            name = self._view(part)
            try:
                self.con.execute(sql.format(frame=name), params or [])
            finally:
                self.con.unregister(name)

    def _query(self, sql: str, frame: pl.DataFrame) -> pl.DataFrame:
        """`sql` over `{frame}`, slice by slice like `_run`: the results are concatenated. Each
        slice is a relation from Arrow queried under a generated name: querying a registered
        frame kept more memory, and was slower."""
        results: list[pl.DataFrame] = []
        for part in frame.iter_slices(INSERT_ROWS) if frame.height else [frame]:
            name = f"frame_{next(_names)}"
            found = self.con.from_arrow(part.to_arrow()).query(name, sql.format(frame=name))
            if found is None:  # only a statement that is not a query returns no relation
                raise TypeError(f"not a query: {sql}")
            results.append(found.pl())
        return pl.concat(results, how="vertical") if len(results) > 1 else results[0]

    # -- what the warehouse already knows --------------------------------------------------
    def known_lines(self, keys: pl.DataFrame) -> pl.DataFrame:
        """Earlier nights' lines with the same (orderid, sku) as `keys` (each once)."""
        found = self._query(
            "SELECT l.orderid, l.sku, l.qty AS known_qty, l.first_seen AS known_date, "
            "l.source_file AS known_file, l.source_line AS known_line "
            # A semi join returns each warehouse row once however often the key repeats
            # tonight: no DISTINCT over tonight's keys (it was most of the cost).
            "FROM order_lines l SEMI JOIN {frame} k USING (orderid, sku)",
            keys.select("orderid", "sku"),
        )
        # A key repeated in two slices of `keys` is found twice.
        return found.unique(["orderid", "sku"], maintain_order=True)

    def known_batches(self, references: pl.DataFrame) -> pl.DataFrame:
        return self._query(
            "SELECT b.reference, b.sku AS known_sku, b.purchased AS known_qty, b.eta AS known_eta, "
            "b.first_seen AS known_date, b.source_file AS known_file, "
            "b.source_line AS known_line "
            "FROM batches b SEMI JOIN {frame} r USING (reference)",
            references.select("reference"),
        )

    def received_manifest_rows(self, rows: pl.DataFrame) -> pl.DataFrame:
        """How often each manifest row (file name and values) of the files in `rows` was
        received before: source_file, reference, sku, qty, eta, times."""
        return self._query(
            "SELECT m.source_file, m.reference, m.sku, m.qty, m.eta, count(*)::BIGINT AS times "
            "FROM manifest_rows m SEMI JOIN {frame} f USING (source_file) "
            "GROUP BY ALL",
            rows.select("source_file").unique(),
        )

    def loaded_before(self, files: pl.DataFrame) -> list[str]:
        """Names of the files (file_name, sha256) whose exact bytes a run already loaded."""
        found = self._query(
            "SELECT DISTINCT i.file_name FROM ingested_files i SEMI JOIN {frame} f "
            "ON i.file_name = f.file_name AND i.sha256 = f.sha256 WHERE i.status = 'loaded'",
            files.select("file_name", "sha256"),
        )
        return [str(name) for name in found["file_name"]]

    def next_arrival_seq(self) -> int:
        rows = self.con.sql("SELECT coalesce(max(arrival_seq), 0) FROM order_lines").fetchall()
        return int(rows[0][0]) + 1

    # -- batches -----------------------------------------------------------------------------
    def add_batches(self, batches: pl.DataFrame, business_date: dt.date) -> None:
        """Inserts new batches: reference, sku, qty, eta, source_file, line."""
        self._run(
            "INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen, "
            "source_file, source_line) SELECT reference, sku, eta, qty, 0, ?, source_file, line "
            "FROM {frame}",
            batches,
            [business_date],
        )

    def batches_with_lines(self, references: list[str]) -> dict[str, Batch]:
        """Batches restored with the lines they hold, in arrival order: needed to give lines
        back when a manifest shrinks a batch."""
        refs = pl.DataFrame({"reference": references}, schema={"reference": pl.String})
        rows = self._query(
            "SELECT b.reference, b.sku, b.purchased, b.eta FROM batches b "
            "SEMI JOIN {frame} r USING (reference)",
            refs,
        )
        batches = {
            r["reference"]: Batch(r["reference"], r["sku"], r["purchased"], r["eta"])
            for r in rows.iter_rows(named=True)
        }
        held = self._query(
            "SELECT l.batchref, l.orderid, l.sku, l.qty FROM order_lines l "
            "JOIN {frame} r ON l.batchref = r.reference WHERE l.status = 'allocated' "
            "ORDER BY l.arrival_seq",
            refs,
        )
        for batchref, orderid, sku, qty in held.iter_rows():
            batches[batchref].allocate(OrderLine(orderid, sku, qty))
        return batches

    def save_batch_changes(
        self,
        batches: list[Batch],
        changes: pl.DataFrame,
        released: pl.DataFrame,
        business_date: dt.date,
    ) -> None:
        """Writes back changed batches, their change log, and the lines they released."""
        state = pl.DataFrame(
            {
                "reference": [b.reference for b in batches],
                "eta": [b.eta for b in batches],
                "purchased": [b.purchased_quantity for b in batches],
                "allocated": [b.allocated_quantity for b in batches],
            },
            schema={
                "reference": pl.String,
                "eta": pl.Date,
                "purchased": pl.Int64,
                "allocated": pl.Int64,
            },
        )
        self._run(
            "UPDATE batches SET eta = s.eta, purchased = s.purchased, allocated = s.allocated, "
            "updated_on = ? FROM {frame} s WHERE batches.reference = s.reference",
            state,
            [business_date],
        )
        self._run("INSERT INTO batch_changes BY NAME SELECT * FROM {frame}", changes)
        if released.height:
            self._run(
                "UPDATE order_lines SET status = 'out_of_stock', batchref = NULL, "
                "allocated_on = NULL FROM {frame} r "
                "WHERE order_lines.orderid = r.orderid AND order_lines.sku = r.sku",
                released,
            )
            self._run(
                "UPDATE allocations SET released_on = ? FROM {frame} r "
                "WHERE allocations.orderid = r.orderid AND allocations.sku = r.sku "
                "AND allocations.batchref = r.from_batchref AND allocations.released_on IS NULL",
                released,
                [business_date],
            )

    # -- recording the night's placements ---------------------------------------------------
    def record_placements(self, business_date: dt.date, run_id: str) -> None:
        """Records the night's placements (`night_tables.record_placements`)."""
        night_tables.record_placements(self.con, business_date, run_id)

    def destinations(self, released: pl.DataFrame) -> pl.DataFrame:
        """`released` (lines a manifest change gave back tonight) with `to_batchref`, the batch
        each went to tonight (null: out of stock), in the order given. Read before
        `record_placements` marks them allocated."""
        numbered = released.with_row_index("__released")
        found = self._query(
            "SELECT r.__released, b.reference AS to_batchref FROM {frame} r "
            "JOIN order_lines l ON l.orderid = r.orderid AND l.sku = r.sku "
            "AND l.status = 'out_of_stock' "
            "JOIN placements p ON p.arrival_seq = l.arrival_seq "
            "JOIN batches b ON b.rowid = p.batch",
            numbered.select("__released", "orderid", "sku"),
        )
        return numbered.join(found, on="__released", how="left", maintain_order="left").drop(
            "__released"
        )

    # -- bookkeeping -------------------------------------------------------------------------
    def add_rows(self, table: str, frame: pl.DataFrame) -> None:
        """Appends a frame to a bookkeeping table by column name (table names are constants)."""
        if frame.height:
            self._run(f"INSERT INTO {table} BY NAME SELECT * FROM {{frame}}", frame)  # noqa: S608

    def code_rejections(self, run_id: str) -> None:
        """Gives run `run_id`'s rejected rows their reason codes (`warehouse_schema`)."""
        code_rejections(self.con, run_id)

    def record_reallocations(self, moved: pl.DataFrame) -> None:
        """Keeps where each line a manifest change released went tonight (`reallocations`)."""
        self.add_rows("reallocations", moved)
