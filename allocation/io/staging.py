"""The night's load staging file: tonight's valid rows and rejections, one DuckDB file per run.

The load step reads and validates one inbox file at a time and appends what it found to this
file, so only one file's rows are ever in Python; the night's transaction then reads it by SQL
(`allocation.io.staged_night`).

The file is the run's own (`STATE_DIR/load/RUN_ID.duckdb`, opened with the night's DuckDB memory
limit): it outlives a retry of the allocate step, is removed once the night has committed or
rolled back, and a leftover of a killed run is removed by the next run's load (under the run
lock, so no other night is using it). Not to be confused with the Dask runner's shard exchange
folder (`RunParameters.staging`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import duckdb
import polars as pl

from allocation.io.disk import is_disk_full
from allocation.io.unit_of_work import WarehouseError, connect
from allocation.settings.duckdb_limits import DuckDBLimits

#: Rows handed to DuckDB at a time while loading (a file may hold millions).
STAGE_ROWS = 500_000

_TABLES = """
CREATE TABLE orders (
    seq BIGINT, source_file VARCHAR, line BIGINT, orderid VARCHAR, sku VARCHAR, qty BIGINT,
    raw VARCHAR, key_hash UBIGINT
);
CREATE TABLE batches (
    seq BIGINT, source_file VARCHAR, line BIGINT, reference VARCHAR, sku VARCHAR, qty BIGINT,
    eta DATE, raw VARCHAR
);
CREATE TABLE rejected (
    seq BIGINT, kind VARCHAR, source_file VARCHAR, line BIGINT, reason VARCHAR, raw VARCHAR
);
"""

# `seq` is the arrival order within each table: file order, then line order. `key_hash` puts
# every row of one (orderid, sku) in the same partition of
# `staged_night.StagedNight.classify_orders`, is looked up among earlier lines by their kept
# `order_lines.line_key`, and becomes the new line's `line_key` when it is recorded: hashed
# once, here, with `hash(orderid, sku)`, the function `staged_night` checks the kept keys
# against.
_INSERT = {
    "orders": "INSERT INTO orders SELECT seq, source_file, line, orderid, sku, qty, raw, "
    "hash(orderid, sku) FROM {frame}",
    "batches": "INSERT INTO batches SELECT seq, source_file, line, reference, sku, qty, eta, raw "
    "FROM {frame}",
    "rejected": "INSERT INTO rejected SELECT seq, kind, source_file, line, reason, raw "
    "FROM {frame}",
}

_names = itertools.count()


def discard(path: Path) -> None:
    """Removes a staging file and its write-ahead log, if they are there."""
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def clear_leftovers(folder: Path) -> list[str]:
    """Removes every staging file in `folder`, the state folder's `load` (call it holding the
    run lock: then none belongs to a live night). Returns the names removed."""
    if not folder.is_dir():
        return []
    removed = []
    for leftover in sorted(folder.iterdir()):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed.append(leftover.name)
    return removed


class StagingWriter:
    """`with StagingWriter(path, limits) as staging: staging.add("orders", frame) ...`: a new
    staging file (an older one at the same path is replaced: a retried load starts over). On an
    error the half-written file is removed."""

    def __init__(self, path: Path, limits: DuckDBLimits | None = None) -> None:
        discard(path)
        self.path = path
        self.con = connect(path, limits=limits)
        self._next = dict.fromkeys(_INSERT, 0)
        try:
            self.con.execute(_TABLES)
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise

    def add(self, table: str, frame: pl.DataFrame) -> None:
        """Appends `frame` (the table's columns but `seq`, `key_hash`) after the rows so far."""
        for part in frame.iter_slices(STAGE_ROWS):
            numbered = part.with_row_index("seq", offset=self._next[table]).with_columns(
                pl.col("seq").cast(pl.Int64)
            )
            self._next[table] += part.height
            name = f"incoming_{next(_names)}"
            # A relation from Arrow rather than a registered frame: faster into a file
            # (docs/benchmarks.md).
            self.con.from_arrow(numbered.to_arrow()).query(name, _INSERT[table].format(frame=name))

    @contextlib.contextmanager
    def file(self) -> Iterator[FileStaging]:
        """``with staging.file() as one: one.add(...)``: one inbox file's rows, added a slice at
        a time in one transaction, kept unless ``one.drop()`` was called (a file rejected whole
        after some of its slices were staged) or an error ended the block."""
        marks = dict(self._next)
        one = FileStaging(self)
        self.con.begin()
        try:
            yield one
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # the error that ended the block is the one
                self._rollback(marks)
            raise
        if one.dropped:
            self._rollback(marks)
        else:
            self.con.commit()

    def _rollback(self, marks: dict[str, int]) -> None:
        self.con.rollback()
        self._next = marks

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure = exc
        try:
            if exc is None:
                self.con.execute("CHECKPOINT")  # the file complete on its own, no .wal
        except (duckdb.Error, OSError) as error:
            failure = error
            raise
        finally:
            self.con.close()
            if failure is not None:
                discard(self.path)
            if isinstance(failure, duckdb.Error | OSError) and is_disk_full(failure):
                raise WarehouseError(
                    f"the disk holding the warehouse state {self.path.parent.parent} is full (No "
                    "space left on device) while loading the inbox: nothing of this night was "
                    "committed. Free space on that disk, then run the same night again"
                ) from failure


class FileStaging:
    """One inbox file being staged (``StagingWriter.file``)."""

    def __init__(self, writer: StagingWriter) -> None:
        self._writer = writer
        self.dropped = False

    def add(self, table: str, frame: pl.DataFrame) -> None:
        self._writer.add(table, frame)

    def drop(self) -> None:
        """Nothing of this file is kept: its slices staged so far are rolled back."""
        self.dropped = True
