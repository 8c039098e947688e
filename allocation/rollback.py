"""Undo nights: `allocation rollback --to DATE` (docs/operations.md, "Undo a night").

Puts back the working state kept after that date's committed night, publishes it to analysts,
rewrites that night's reports from it and points `latest` at them. The report folders of the
nights after it are moved aside (under `OUTBOX/rolled-back/`), so that no later `latest` can point
at a night the warehouse no longer holds; their kept copies stay, so a rollback can be undone by
rolling back to a later date while that copy is kept.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from allocation import services
from allocation.io.files import fsync_dir
from allocation.io.outbox import write_night
from allocation.io.restore import kept_copies, newest_copy_of, restore_state
from allocation.io.unit_of_work import DuckDBUnitOfWork, WarehouseError, connect
from allocation.settings import ParameterError, RunParameters
from allocation.state import state_db, warehouse_lock

log = logging.getLogger("allocation")

ROLLED_BACK = "rolled-back"


class NoKeptCopyError(ParameterError):
    """No copy of the night asked for is kept: the message names the nights that are."""


@dataclass(frozen=True)
class RolledBack:
    night: dt.date
    restored_from: Path
    reports: Path
    moved_aside: list[Path] = field(default_factory=list)


def rollback(params: RunParameters) -> RolledBack:
    """Rolls the pipeline back to the end of `params.business_date`'s committed night, under the
    run lock. Raises NoKeptCopyError (nothing changed) when no copy of that night is kept."""
    night = params.business_date
    history = params.state_dir / "published"
    if not history.is_dir():  # nothing to restore: refuse before creating anything
        raise NoKeptCopyError(
            f"no copy of the night {night} is kept, so it cannot be restored; nights kept: none "
            f"(no {history}: is --warehouse the analysts' file of a pipeline that ran?)"
        )
    with warehouse_lock(params, "rollback"):
        copies = kept_copies(history)
        chosen = newest_copy_of(copies, night)
        if chosen is None:
            kept = sorted({c.night.isoformat() for c in copies})
            raise NoKeptCopyError(
                f"no copy of the night {night} is kept, so it cannot be restored; nights kept: "
                + (", ".join(kept) if kept else "none")
                + f" (in {history})"
            )
        log.info("Restoring the state after night %s from %s", night, chosen.path)
        state = state_db(params)
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
        con = connect(state)
        try:
            reports = write_night(con, night, params.outbox)
        finally:
            con.close()
        services.publish(params, chosen.path.stem)
    log.info("Rolled back to night %s; latest is %s", night, reports)
    return RolledBack(night, chosen.path, reports, moved)


def _move_later_nights_aside(outbox: Path, night: dt.date) -> list[Path]:
    """Moves the report folders of nights after `night` to `OUTBOX/rolled-back/<now>/`."""
    if not outbox.is_dir():
        return []
    later = sorted(
        p for p in outbox.iterdir() if p.is_dir() and not p.is_symlink() and _after(p.name, night)
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


def _after(name: str, night: dt.date) -> bool:
    try:
        return dt.date.fromisoformat(name) > night and len(name) == 10
    except ValueError:
        return False
