"""Undo nights: `allocation rollback --to DATE` (docs/operations.md, "Undo a night").

Puts back the working state kept after that date's committed night, publishes it to analysts,
rewrites that night's reports from it and points `latest` at them. The report folders of the
nights after it are moved aside (under `OUTBOX/rolled-back/`), so that no later `latest` can point
at a night the warehouse no longer holds; their kept copies stay, so a rollback can be undone by
rolling back to a later date while that copy is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from allocation.io.files import fsync_dir
from allocation.io.outbox import write_night
from allocation.io.pending import read_note
from allocation.io.restore import kept_copies, newest_copy_of, restore_state
from allocation.io.run_history import open_run_history
from allocation.io.unit_of_work import DuckDBUnitOfWork, WarehouseError, connect
from allocation.service import after_commit
from allocation.service.state import state_db, warehouse_lock
from allocation.settings import ParameterError, RunParameters

log = logging.getLogger("allocation")

ROLLED_BACK = "rolled-back"


class NoKeptCopyError(ParameterError):
    """No copy of the night asked for is kept: the message names the nights that are."""


@dataclass(frozen=True)
class UndoneRun:
    """A committed run a rollback undid: its business date and run id (for a run of the
    deployment, its Prefect flow run id)."""

    business_date: dt.date
    run_id: str


@dataclass(frozen=True)
class RolledBack:
    business_date: dt.date
    restored_from: Path
    reports: Path
    moved_aside: list[Path] = field(default_factory=list)
    undone: list[UndoneRun] = field(default_factory=list)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def rollback(params: RunParameters) -> RolledBack:
    """Rolls the pipeline back to the end of `params.business_date`'s committed night, under the
    run lock. Raises NoKeptCopyError (nothing changed) when no copy of that night is kept."""
    night = params.business_date
    history = params.state_folder.published
    # Nothing to restore (and no committed night left to finish): refuse before creating anything.
    if not history.is_dir() and read_note(params.state_dir) is None:
        raise NoKeptCopyError(
            f"no copy of the night {night} is kept, so it cannot be restored; nights kept: none "
            f"(no {history}: is --warehouse the analysts' file of a pipeline that ran?)"
        )
    with warehouse_lock(params, "rollback"):
        # A night that committed but was stopped before its reports and published copy gets
        # them first: its kept copy is then one to roll back to, and nothing of it is lost.
        after_commit.finish_committed_night(params, "rollback")
        copies = kept_copies(history)
        chosen = newest_copy_of(copies, night)
        if chosen is None:
            kept = sorted({c.business_date.isoformat() for c in copies})
            raise NoKeptCopyError(
                f"no copy of the night {night} is kept, so it cannot be restored; nights kept: "
                + (", ".join(kept) if kept else "none")
                + f" (in {history})"
            )
        log.info("Restoring the state after night %s from %s", night, chosen.path)
        state = state_db(params)
        undone = _runs_after(state, night)
        try:
            restore_state(chosen.path, state)
        except OSError as error:
            raise WarehouseError(
                f"cannot restore {state} from {chosen.path} ({error}); the working state is as "
                "it was: free the space or fix the folder, then run the rollback again"
            ) from error
        with DuckDBUnitOfWork(state) as uow:  # an older copy is upgraded to this code's schema
            uow.commit()
        # The outbox before the analysts' copy: if publishing fails (exit 4), the reports and
        # `latest` already match the restored state, and no later run points `latest` back.
        moved = _move_later_nights_aside(params.outbox, night)
        limits = params.duckdb_limits
        con = connect(state, limits=limits)
        try:
            reports = write_night(con, night, params.outbox, limits=limits)
        finally:
            con.close()
        done = RolledBack(night, chosen.path, reports, moved, undone)
        _record(params, done)
        after_commit.publish(params, chosen.path.stem)
    log.info("Rolled back to night %s; latest is %s", night, reports)
    return done


def _runs_after(state: Path, business_date: dt.date) -> list[UndoneRun]:
    """The committed runs of nights after `business_date`: the ones the rollback undoes."""
    if not state.exists():
        return []
    try:
        with open_run_history(state) as history:
            rows = history.runs_after(business_date)
    except (duckdb.Error, WarehouseError) as error:  # a damaged state is what rollbacks fix
        log.warning("Cannot tell which runs the rollback undoes: %s", error)
        return []
    return [UndoneRun(day, run_id) for day, run_id in rows]


def _record(params: RunParameters, done: RolledBack) -> None:
    """Appends the rollback to the state folder's `rollbacks_log` (one JSON line each): the
    next night's summary says what was undone, so a rolled-back night does not look current."""
    line = json.dumps(
        {
            "at": done.at.isoformat(),
            "to": done.business_date.isoformat(),
            "undone": [
                {"business_date": run.business_date.isoformat(), "run_id": run.run_id}
                for run in done.undone
            ],
            "moved_aside": str(done.moved_aside[0].parent) if done.moved_aside else None,
        }
    )
    path = params.state_folder.rollbacks_log
    with path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def rollbacks_before(params: RunParameters, business_date: dt.date) -> list[dict[str, Any]]:
    """The rollbacks made since the last night before `business_date` was committed, oldest first, as
    recorded by `_record`: what this night's summary reports. Best effort: nothing when the
    record or the analysts' copy cannot be read."""
    path = params.state_folder.rollbacks_log
    if not path.is_file() or not params.warehouse.is_file():
        return []
    try:
        with open_run_history(params.warehouse) as history:
            found = history.last_finished_before(business_date)
        records = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
        since = None if found is None else found.replace(tzinfo=dt.UTC)
        return [
            record
            for record in records
            if dt.date.fromisoformat(record["to"]) <= business_date
            and (since is None or dt.datetime.fromisoformat(record["at"]) > since)
        ]
    except (duckdb.Error, WarehouseError, OSError, ValueError, KeyError, TypeError) as error:
        log.warning("Cannot read the record of rollbacks: %s", error)
        return []


def _move_later_nights_aside(outbox: Path, business_date: dt.date) -> list[Path]:
    """Moves the report folders of nights after `business_date` to `OUTBOX/rolled-back/<now>/`."""
    if not outbox.is_dir():
        return []
    later = sorted(
        p
        for p in outbox.iterdir()
        if p.is_dir() and not p.is_symlink() and _after(p.name, business_date)
    )
    if not later:
        return []
    aside = outbox / ROLLED_BACK / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside.mkdir(parents=True)
    moved = []
    for folder in later:
        target = aside / folder.name
        folder.rename(target)
        moved.append(target)
        log.info("Moved the reports of rolled-back night %s to %s", folder.name, target)
    fsync_dir(outbox)
    return moved


def _after(name: str, business_date: dt.date) -> bool:
    try:
        return dt.date.fromisoformat(name) > business_date and len(name) == 10
    except ValueError:
        return False
