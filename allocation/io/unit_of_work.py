"""The unit of work over the pipeline's DuckDB working state: one transaction per run.

As in the book, it rolls back unless told to commit, so a run that fails anywhere (or a dry run)
leaves nothing behind, and a run that commits leaves everything at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from types import TracebackType

import duckdb

from allocation.io.repository import DuckDBRepository
from allocation.io.warehouse_schema import SCHEMA_VERSION, migrate

log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or is not ours; a person must look at it."""


def connect(path: Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Opens a DuckDB file with a message that says what to do when it cannot be opened."""
    try:
        if read_only and not path.exists():
            raise WarehouseError(f"warehouse {path} does not exist yet: run a night first")
        path.parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise WarehouseError(
            f"cannot open the warehouse state {path}: {first}. If another program holds it, close "
            "that program; if the file is damaged, restore it from a published copy (README)."
        ) from error
    except OSError as error:
        raise WarehouseError(f"cannot open the warehouse state {path}: {error}") from error


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
    parent = warehouse.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise WarehouseError(f"cannot create the warehouse folder {parent}: {error}") from error
    if not os.access(parent, os.W_OK):
        raise WarehouseError(f"the warehouse folder {parent} is not writable by this user")


class DuckDBUnitOfWork:
    """`with DuckDBUnitOfWork(path) as uow: ...; uow.commit()`: anything not committed is undone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._con: duckdb.DuckDBPyConnection | None = None
        self.schema_version_found = 0

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError("the unit of work is not open")
        return self._con

    def __enter__(self) -> DuckDBUnitOfWork:
        self._con = connect(self.path)
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
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._con is not None:
                self.rollback()
        finally:
            self.close()

    def commit(self) -> None:
        self.con.execute("COMMIT")
        self._committed = True
        # Fold the write-ahead log into the file so the closed file is complete on its own.
        self.con.execute("CHECKPOINT")
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
