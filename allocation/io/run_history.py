"""The read-only questions about committed nights, asked of a warehouse file as it is: which
files a business date committed, whether a run committed, the last committed date, the runs after
a night. Opened read-only: nothing is upgraded, no transaction is taken to write, and a night
running in another process is not in the way any more than any reader is.

A file of an older schema answers as the upgraded one would (the tables and columns read here
are in every version); a file of a newer schema is refused with the unit of work's message,
except by `last_committed_date`, which reads only `runs` (the pre-flight date check asks it
before any night opens the file, as it always has).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb

from allocation.io.unit_of_work import WarehouseError, connect
from allocation.io.warehouse_schema import SCHEMA_VERSION, current_version


class DuckDBRunHistory:
    """The questions over one read-only connection (`open_run_history`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.con = con
        self.path = path

    def _has_table(self, name: str) -> bool:
        found = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
        ).fetchall()
        return bool(found[0][0])

    def _schema_known(self) -> bool:
        """Whether the file holds the pipeline's tables yet (False: a file no night wrote in, as
        empty as a new one); refuses a newer schema as the unit of work does."""
        try:
            found = current_version(self.con)
        except duckdb.Error as error:
            raise self._unprepared(str(error)) from error
        if found > SCHEMA_VERSION:
            raise self._unprepared(
                f"warehouse schema version {found} is newer than this code ({SCHEMA_VERSION}): "
                "upgrade the allocation package before running this night"
            )
        return found > 0

    def _unprepared(self, reason: str) -> WarehouseError:
        # The message of `DuckDBUnitOfWork`, which used to answer these questions.
        return WarehouseError(
            f"cannot prepare the warehouse state {self.path} (schema version "
            f"{SCHEMA_VERSION}): {reason.splitlines()[0]}"
        )

    def ingested_files(self, business_date: dt.date) -> set[tuple[str, str]]:
        if not self._schema_known():
            return set()
        rows = self.con.execute(
            "SELECT file_name, sha256 FROM ingested_files WHERE business_date = ?",
            [business_date],
        ).fetchall()
        return {(str(name), str(sha)) for name, sha in rows}

    def has_run(self, run_id: str) -> bool:
        if not self._schema_known():
            return False
        rows = self.con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()
        return bool(rows[0][0])

    def last_committed_date(self) -> dt.date | None:
        if not self._has_table("runs"):
            return None
        last = self.con.sql("SELECT max(business_date) FROM runs").fetchall()[0][0]
        return last if isinstance(last, dt.date) else None

    def runs_after(self, business_date: dt.date) -> list[tuple[dt.date, str]]:
        rows = self.con.execute(
            "SELECT business_date, run_id FROM runs WHERE business_date > ? "
            "ORDER BY business_date, started_at",
            [business_date],
        ).fetchall()
        return [(day, str(run_id)) for day, run_id in rows]

    def last_finished_before(self, business_date: dt.date) -> dt.datetime | None:
        found = self.con.execute(
            "SELECT max(finished_at) FROM runs WHERE business_date < ?", [business_date]
        ).fetchall()[0][0]
        return found if isinstance(found, dt.datetime) else None


@contextlib.contextmanager
def open_run_history(path: Path) -> Iterator[DuckDBRunHistory]:
    """`with open_run_history(path) as history: history.has_run(...)`: a read-only connection
    to the warehouse file at `path` (a WarehouseError when it cannot be opened)."""
    con = connect(path, read_only=True)
    try:
        yield DuckDBRunHistory(con, path)
    finally:
        con.close()
