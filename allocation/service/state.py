"""What the committed working state says about past nights: where it lives, which files a
business date already committed, the last committed date, whether a run committed.

Read-only questions the night's steps ask before (or while retrying) their work: each is asked
of a read-only connection (`allocation.io.run_history`), which never upgrades the schema.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from pathlib import Path

from allocation.io.run_history import open_run_history
from allocation.io.run_lock import run_lock
from allocation.settings import RunParameters


def state_db(params: RunParameters) -> Path:
    """The working state's DuckDB file in the state folder."""
    return params.state_folder.state_db


def already_ingested(params: RunParameters) -> set[tuple[str, str]]:
    """Files (name, sha256) this business date already committed: a rerun of the night skips
    them, so a rerun after a crash converges to what one uninterrupted run would have done."""
    path = state_db(params)
    if not path.exists():
        return set()
    with open_run_history(path) as history:
        return history.ingested_files(params.business_date)


def last_committed_date(params: RunParameters) -> dt.date | None:
    """The business date of the latest committed night, None before the first one."""
    path = state_db(params)
    if not path.exists():
        return None
    with open_run_history(path) as history:
        return history.last_committed_date()


def committed_run(params: RunParameters, run_id: str) -> bool:
    """Whether run `run_id` is already committed: an earlier attempt of its allocate step
    committed, then failed before returning; or a night that left a note before its commit."""
    path = state_db(params)
    if not path.exists():
        return False
    with open_run_history(path) as history:
        return history.has_run(run_id)


def warehouse_lock(
    params: RunParameters, holder: str, *, for_night: bool = True, timeout: float | None = None
) -> AbstractContextManager[None]:
    """The warehouse's one writer lock, the same for every writer (a night, `allocation publish`,
    a rollback, the CLI's early date check): held by `holder` (a night's run id, or what holds
    it) for `params.business_date` (or no night, `for_night=False`), waiting at most the
    lock_timeout_seconds setting unless `timeout` says otherwise. Its holder is what a waiting
    writer's message names."""
    return run_lock(
        params.state_folder.run_lock,
        run_id=holder,
        business_date=params.business_date.isoformat() if for_night else "",
        timeout=params.lock_timeout_seconds if timeout is None else timeout,
    )
