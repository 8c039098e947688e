"""The unit of work over the pipeline's DuckDB working state: one transaction per run.

As in the book, it rolls back unless told to commit, so a run that fails anywhere (or a dry run)
leaves nothing behind, and a run that commits leaves everything at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from types import TracebackType

import duckdb

from allocation.io.candidates import DuckDBCandidates
from allocation.io.check_figures import DuckDBCheckFigures
from allocation.io.disk import is_disk_full
from allocation.io.repository import DuckDBRepository
from allocation.io.warehouse_comments import COMMENTS
from allocation.io.warehouse_schema import SCHEMA_VERSION, migrate
from allocation.settings.duckdb_limits import DuckDBLimits
from allocation.settings.state_folder import StateFolder

log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or is not ours; a person must look at it."""


def connect(
    path: Path,
    *,
    read_only: bool = False,
    limits: DuckDBLimits | None = None,
    create_in: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Opens a DuckDB file with a message that says what to do when it cannot be opened.
    `limits`: the night's memory limit and spill folder (None: DuckDB's defaults).
    `create_in`: the DuckDB storage version a file created here is written in (None: DuckDB's
    newest); an existing file keeps the version it has, whatever is asked."""
    try:
        if read_only and not path.exists():
            raise WarehouseError(f"warehouse {path} does not exist yet: run a night first")
        path.parent.mkdir(parents=True, exist_ok=True)
        if create_in is not None and not read_only and not path.exists():
            _create(path, create_in)
        if limits is None:
            return duckdb.connect(str(path), read_only=read_only)
        limits.temp_directory.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), read_only=read_only, config=limits.config())
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise WarehouseError(
            f"cannot open the warehouse state {path}: {first}. If another program holds it, close "
            "that program; if the file is damaged, restore it from a published copy (README)."
        ) from error
    except OSError as error:
        raise WarehouseError(f"cannot open the warehouse state {path}: {error}") from error


def _create(path: Path, storage_version: str) -> None:
    # DuckDB writes a file in the storage version it was created in for as long as it lives
    # (later writes and checkpoints keep it, whatever a later connection's setting says), so the
    # version is set once, here, by a connection of its own: the connections that work in the
    # file then need no setting that could conflict with another one's in this process.
    duckdb.connect(str(path), config={"storage_compatibility_version": storage_version}).close()


DUCKDB_MAGIC = b"DUCK"


def check_warehouse_path(warehouse: Path) -> None:
    """Refuses, before any work, a warehouse path that can never be written."""
    if warehouse.is_dir():
        raise WarehouseError(
            f"--warehouse {warehouse} is a folder: give the path of a .duckdb file"
        )
    if warehouse.exists():
        with open(warehouse, "rb") as handle:
            header = handle.read(12)
        if header[8:12] != DUCKDB_MAGIC:
            raise WarehouseError(
                f"--warehouse {warehouse} is not a DuckDB database: move it away or pick another path"
            )
        problem = not_ours(warehouse)
        if problem is not None:
            raise WarehouseError(problem)
    parent = warehouse.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WarehouseError(
            f"cannot create the warehouse folder {parent}: {error.strerror or error}: pick a "
            "--warehouse in a folder this user can write"
        ) from error
    if not os.access(parent, os.W_OK):
        raise WarehouseError(f"the warehouse folder {parent} is not writable by this user")
    try:  # os.access cannot tell (root, read-only mounts, /proc): try it
        with tempfile.TemporaryFile(dir=parent, prefix=f".{warehouse.name}.probe-"):
            pass
    except OSError as error:
        full = " (the disk is full: free space there)" if is_disk_full(error) else ""
        raise WarehouseError(
            f"the warehouse folder {parent} cannot be written: {error.strerror or error}{full}; "
            "pick a --warehouse in a folder this user can write"
        ) from error


#: Tables every warehouse the pipeline has written holds (its published copies included, also
#: when copied table by table with COPY FROM DATABASE): how it knows a file is its own.
PIPELINE_TABLES: frozenset[str] = frozenset(
    {"schema_version", "runs", "ingested_files", "order_lines", "allocations"}
)


def not_ours(warehouse: Path) -> str | None:
    """Why the DuckDB file at ``warehouse`` must not be replaced, or None when the pipeline
    made it (it holds the pipeline's tables). A file that cannot be opened to check (another
    program holds it for writing) counts as ours only when the pipeline's state folder beside
    it says it has published there before."""
    try:
        with open(warehouse, "rb") as handle:
            header = handle.read(12)
    except OSError as error:
        return f"--warehouse {warehouse} cannot be read to check it: {error.strerror or error}"
    if header[8:12] != DUCKDB_MAGIC:
        return (
            f"--warehouse {warehouse} is not a DuckDB database: move it away or pick another path"
        )
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as error:
        if _published_before(warehouse):
            return None
        return (
            f"--warehouse {warehouse} is a DuckDB database the pipeline cannot check "
            f"({str(error).splitlines()[0]}); it never replaces a file it did not make: "
            "close the program holding it, or pick another path"
        )
    try:
        tables = {
            name
            for (name,) in con.sql(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        }
        edited_copy = _published_before(warehouse) and _an_edited_copy(con)
    finally:
        con.close()
    if tables >= PIPELINE_TABLES or edited_copy:
        return None
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    return (
        f"--warehouse {warehouse} is a DuckDB database the pipeline did not create (tables: "
        f"{shown or 'none'}); it never replaces a file it did not make: move that file away "
        "or pick another path"
    )


def _an_edited_copy(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a file missing some of the pipeline's tables is still the published copy as an
    analyst left it after editing it (a `DROP TABLE`; the caller knows the pipeline published
    at this path): a table or view left in it carries the pipeline's own `COMMENT ON` text
    word for word, which a foreign database does not, or nothing is left in it at all (nothing
    to lose). Like a complete copy with a table an analyst added, it is replaced by the next
    publish (README: the analysts' file is the pipeline's, rewritten every night)."""
    objects = con.sql(
        "SELECT table_name, comment FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
    ).fetchall()
    ours = [name for name, comment in objects if name in COMMENTS and comment == COMMENTS[name][0]]
    return bool(ours) or not objects


def _published_before(warehouse: Path) -> bool:
    published = StateFolder.beside(warehouse).published
    return published.is_dir() and any(published.glob("*.duckdb"))


class DuckDBUnitOfWork:
    """`with DuckDBUnitOfWork(path) as uow: ...; uow.commit()`: anything not committed is undone.
    A new file is created in storage version `create_in` (None: DuckDB's newest). Once open,
    `repo` (the batches and lines) and `figures` (what the night's checks read) work in its
    transaction (`allocation.service.storage.UnitOfWork`, `CheckFigures`)."""

    def __init__(
        self, path: Path, limits: DuckDBLimits | None = None, create_in: str | None = None
    ) -> None:
        self.path = path
        self.limits = limits
        self.create_in = create_in
        self._con: duckdb.DuckDBPyConnection | None = None
        self.schema_version_found = 0

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError("the unit of work is not open")
        return self._con

    def candidates(self, spill_dir: Path) -> DuckDBCandidates:
        """The night's open lines for the allocation engine, over this transaction (their spill
        files under `spill_dir`)."""
        return DuckDBCandidates(self.con, spill_dir, self.limits)

    def __enter__(self) -> DuckDBUnitOfWork:
        self._con = connect(self.path, limits=self.limits, create_in=self.create_in)
        try:
            self._con.execute("BEGIN TRANSACTION")
            self.schema_version_found = migrate(self._con)
        except (duckdb.Error, RuntimeError) as error:  # RuntimeError: a newer schema than ours
            self._con.close()
            self._con = None
            raise WarehouseError(
                f"cannot prepare the warehouse state {self.path} (schema version "
                f"{SCHEMA_VERSION}): {str(error).splitlines()[0]}"
            ) from error
        if self.schema_version_found < SCHEMA_VERSION:
            log.info(
                "Warehouse schema upgraded from version %d to %d",
                self.schema_version_found,
                SCHEMA_VERSION,
            )
        self.repo = DuckDBRepository(self._con)
        self.figures = DuckDBCheckFigures(self._con)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._con is not None:
                if exc is None:
                    self.rollback()
                else:
                    # The first error is the one to report: a failed COMMIT has already ended
                    # the transaction, so this rollback fails too ("no transaction is active").
                    try:
                        self.rollback()
                    except duckdb.Error as second:
                        log.debug("Rollback after %r also failed: %s", exc, second)
        finally:
            self.close()
        if isinstance(exc, duckdb.Error | OSError) and is_disk_full(exc):
            raise WarehouseError(
                f"the disk holding the warehouse state {self.path.parent} is full (No space "
                "left on device): nothing of this night was committed. Free space on that "
                "disk, then run the same night again"
            ) from exc

    def commit(self) -> None:
        self.con.execute("COMMIT")
        # Fold the write-ahead log into the file so the closed file is complete on its own.
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.Error as error:
            if not is_disk_full(error):
                raise
            raise WarehouseError(
                f"the night is committed (in {self.path} and its write-ahead log), but the disk "
                f"holding {self.path.parent} is full (No space left on device). Free space on "
                "that disk, then run the same night again: it writes the reports and publishes, "
                "and applies nothing twice"
            ) from error
        self.con.execute("BEGIN TRANSACTION")

    def rollback(self) -> None:
        self.con.execute("ROLLBACK")
        self.con.execute("BEGIN TRANSACTION")

    def close(self) -> None:
        if self._con is not None:
            with contextlib.suppress(duckdb.Error):
                self._con.execute("ROLLBACK")
            self._con.close()
            self._con = None
