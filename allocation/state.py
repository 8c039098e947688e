"""What the committed working state says about past nights: where it lives, which files a
business date already committed, the last committed date, whether a run committed.

Read-only questions the night's steps ask before (or while retrying) their work.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from allocation.io.unit_of_work import DuckDBUnitOfWork, connect
from allocation.settings import RunParameters

STATE_DB = "state.duckdb"


def state_db(params: RunParameters) -> Path:
    return params.state_dir / STATE_DB


def already_ingested(params: RunParameters) -> set[tuple[str, str]]:
    """Files (name, sha256) this business date already committed: a rerun of the night skips
    them, so a rerun after a crash converges to what one uninterrupted run would have done."""
    path = state_db(params)
    if not path.exists():
        return set()
    with DuckDBUnitOfWork(path) as uow:
        return uow.repo.ingested_files(params.business_date)


def last_committed_date(params: RunParameters) -> dt.date | None:
    """The business date of the latest committed night, None before the first one."""
    path = state_db(params)
    if not path.exists():
        return None
    con = connect(path, read_only=True)
    try:
        found = con.sql(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'runs'"
        ).fetchall()[0][0]
        if not found:
            return None
        last = con.sql("SELECT max(business_date) FROM runs").fetchall()[0][0]
        return last if isinstance(last, dt.date) else None
    finally:
        con.close()


def committed_run(params: RunParameters, run_id: str) -> bool:
    """Whether run `run_id` is already committed (an earlier attempt of its allocate step
    committed, then failed before returning)."""
    path = state_db(params)
    if params.dry_run or not path.exists():
        return False
    with DuckDBUnitOfWork(path) as uow:
        return uow.repo.has_run(run_id)
