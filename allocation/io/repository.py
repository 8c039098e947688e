"""The repository: batches and order lines in and out of the DuckDB working state.

Frames go in by name (registered views) and come back as polars; every value is bound, nothing
is pasted into SQL text. The domain never sees DuckDB: it gets `Batch` and `OrderLine` objects
built here.
"""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import polars as pl

from allocation.domain import Batch, OrderLine

_names = itertools.count()
SLICE_ROWS = 1_000_000  # rows handed to DuckDB at a time
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


class DuckDBRepository:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # -- frames in -------------------------------------------------------------------------
    def _view(self, frame: pl.DataFrame) -> str:
        name = f"frame_{next(_names)}"
        # As Arrow string views (polars' own export): converting to plain strings as well was
        # slower (1M order lines: 0.26 s against 0.11 s) for no faster insert.
        self.con.register(name, frame.to_arrow())
        return name

    def _run(self, sql: str, frame: pl.DataFrame, params: list[object] | None = None) -> None:
        """Runs `sql` with `{frame}` standing for the registered frame (a generated name), once
        per slice of the frame: each row must stand on its own (inserts, updates by key).
        Handing DuckDB a whole 10M-row frame at once held a converted copy of it (~1 GB)."""
        for part in frame.iter_slices(SLICE_ROWS):
            name = self._view(part)
            try:
                self.con.execute(sql.format(frame=name), params or [])
            finally:
                self.con.unregister(name)

    def _append(
        self, table: str, frame: pl.DataFrame, *columns: pl.Expr, where: pl.Expr | None = None
    ) -> None:
        """Appends the rows of `frame` that match `where` to `table`, slice by slice: each
        slice's `columns` (named like the table's columns; the others are left null). As a
        relation from Arrow rather than an INSERT over a registered frame or a table: for 10M
        order lines that held ~1 GB less in DuckDB (measured, same CPU time)."""
        names = [
            str(name)
            for (name,) in self.con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                "AND schema_name = current_schema() ORDER BY column_index",
                [table],
            ).fetchall()
        ]
        for part in frame.iter_slices(SLICE_ROWS):
            values = (part if where is None else part.filter(where)).select(*columns)
            ordered = values.select(
                pl.col(name) if name in values.columns else pl.lit(None).alias(name)
                for name in names
            )
            self.con.from_arrow(ordered.to_arrow()).insert_into(table)

    def _query(self, sql: str, frame: pl.DataFrame) -> pl.DataFrame:
        """`sql` over `{frame}`, slice by slice like `_run`: the results are concatenated. Each
        slice is a relation from Arrow queried under a generated name: querying a registered
        frame kept ~0.3 GB more for 10M keys (measured), and was slower."""
        results: list[pl.DataFrame] = []
        for part in frame.iter_slices(SLICE_ROWS) if frame.height else [frame]:
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
            # tonight: no DISTINCT over tonight's keys (it was most of the cost: 1.3 s -> 0.3 s
            # for 10M keys).
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

    def has_run(self, run_id: str) -> bool:
        rows = self.con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()
        return bool(rows[0][0])

    def ingested_files(self, business_date: dt.date) -> set[tuple[str, str]]:
        rows = self.con.sql(
            "SELECT file_name, sha256 FROM ingested_files WHERE business_date = ?",
            params=[business_date],
        ).fetchall()
        return {(str(name), str(sha)) for name, sha in rows}

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
        """Records the night from the TEMP tables `night_lines` (tonight's new lines),
        `candidate_lines` (`CANDIDATE_LINES`) and `placements` (arrival_seq, batch rowid, qty of
        every line placed tonight, the waiting lines' included; left in arrival order), all in
        DuckDB: tonight's lines into `order_lines` with their status, the waiting lines that got
        stock marked allocated, an `allocations` row per placement, and the batches' totals. Rows go in arrival order, as they always have (the reports
        read `allocations` in slices of `arrival_seq`)."""
        # Range by range of arrival_seq, about RECORD_ROWS lines each, in order: each range's join
        # and sort fit in DuckDB's memory, where one statement over the whole night spilled both
        # to disk (30M lines: 116 s, against 14 s for 10M). Each range must read only its own
        # rows, or the step grows with the square of the night: `night_lines` is stored (or
        # staged) in arrival order, and the placements, which come in the allocator's order of
        # skus, are put in arrival order once here.
        self.con.execute(
            "CREATE TEMP TABLE placements_in_order AS "
            "SELECT arrival_seq, batch, qty FROM placements ORDER BY arrival_seq"
        )
        self.con.execute("DROP TABLE placements")
        self.con.execute("ALTER TABLE placements_in_order RENAME TO placements")
        for low, high in self._ranges("placements", "arrival_seq"):
            self.con.execute(
                "INSERT INTO allocations (orderid, sku, qty, batchref, eta, business_date, "
                "run_id, arrival_seq) "
                "SELECT l.orderid, l.sku, l.qty, b.reference, b.eta, $day, $run, l.arrival_seq "
                "FROM candidate_lines l JOIN placements p USING (arrival_seq) "
                "JOIN batches b ON b.rowid = p.batch "
                "WHERE l.arrival_seq >= $low AND l.arrival_seq < $high "
                "AND p.arrival_seq >= $low AND p.arrival_seq < $high ORDER BY l.arrival_seq",
                {"day": business_date, "run": run_id, "low": low, "high": high},
            )
        # The waiting lines (every one older than tonight's) that got stock. Before tonight's
        # lines go in, so that the join only meets the waiting ones. Found first, then updated
        # by rowid in rowid order: rows scattered over the history and updated in the order a
        # join hands them out (by batch) cost DuckDB forty times as much (docs/scaling.md,
        # "The eighteenfold slowdown of recording, found").
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE waiting_placed AS "
            "SELECT o.rowid AS line_row, b.reference FROM order_lines o "
            "JOIN placements p ON o.arrival_seq = p.arrival_seq "
            "JOIN batches b ON b.rowid = p.batch "
            "WHERE o.status = 'out_of_stock' "
            "AND p.arrival_seq < (SELECT coalesce(min(arrival_seq), $last) FROM night_lines) "
            "ORDER BY line_row",
            {"last": _BIGINT_MAX},
        )
        self.con.execute(
            "UPDATE order_lines SET status = 'allocated', batchref = w.reference, "
            "allocated_on = $day FROM waiting_placed w WHERE order_lines.rowid = w.line_row",
            {"day": business_date},
        )
        self.con.execute("DROP TABLE waiting_placed")
        for low, high in self._ranges("night_lines", "arrival_seq"):
            self.con.execute(
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
                "LEFT JOIN batches b ON b.rowid = p.batch ORDER BY n.arrival_seq",
                {"day": business_date, "run": run_id, "low": low, "high": high},
            )
        self.con.execute(
            "UPDATE batches SET allocated = allocated + t.qty FROM ("
            "SELECT batch, sum(qty)::BIGINT AS qty FROM placements GROUP BY batch) t "
            "WHERE batches.rowid = t.batch"
        )

    def _ranges(self, table: str, column: str) -> list[tuple[int, int]]:
        """Consecutive ranges [low, high) of `column`, covering every value there could be, each
        holding about RECORD_ROWS of `table`'s rows (cut at DuckDB's approximate quantiles, read
        in one pass in bounded memory; a skewed cut only makes a range bigger, never loses a
        row). `table` and `column` are constants of this module, never input."""
        rows, cuts = self.con.sql(
            f"SELECT count(*), approx_quantile({column}, $fractions::FLOAT[]) FROM {table}",  # noqa: S608
            params={"fractions": [step / 64 for step in range(1, 64)]},
        ).fetchall()[0]
        parts = max(1, min(64, -(-int(rows) // RECORD_ROWS)))
        wanted = [cuts[round(64 * step / parts) - 1] for step in range(1, parts)] if cuts else []
        bounds = sorted({int(cut) for cut in wanted if cut is not None})
        edges = [-_BIGINT_MAX - 1, *bounds, _BIGINT_MAX]
        return [(low, high) for low, high in itertools.pairwise(edges) if low < high]

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
