"""The copies kept after each published night, and putting one back as the working state.

Each copy under `<state dir>/published/` is a closed, checkpointed copy of the working state at
the end of a night. Which night is read from the copy itself (its latest committed run), so a
copy made by `allocation publish` counts as well as one named after its night.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from allocation.faults import crash_point
from allocation.io.files import fsync_dir, fsync_file, remove_leftovers
from allocation.io.kept_nights import Identity, identity, remember, remembered

log = logging.getLogger(__name__)

RESTORING = ".restoring-*"  # a copy on its way to becoming the working state


@dataclass(frozen=True)
class KeptCopy:
    path: Path
    business_date: dt.date
    written_ns: int  # when the copy was made (modification time)


def night_of(copy: Path) -> dt.date | None:
    """The business date of the latest committed run in a kept copy; None when it cannot be
    read as one (damaged, empty, not a warehouse)."""
    try:
        con = duckdb.connect(str(copy), read_only=True)
    except duckdb.Error as error:
        log.warning("Ignoring kept copy %s: %s", copy.name, str(error).splitlines()[0])
        return None
    try:
        night = con.sql("SELECT max(business_date) FROM runs").fetchall()[0][0]
    except duckdb.Error as error:
        log.warning("Ignoring kept copy %s: %s", copy.name, str(error).splitlines()[0])
        return None
    finally:
        con.close()
    return night if isinstance(night, dt.date) else None


def kept_copies(history_dir: Path) -> list[KeptCopy]:
    """Every readable kept copy, oldest first. Each copy's night is read from the copy once,
    then from the record beside the copies (`allocation.io.kept_nights`) while it is the same
    file."""
    found: list[KeptCopy] = []
    if not history_dir.is_dir():
        return found
    known = remembered(history_dir)
    nights: dict[Identity, dt.date] = {}
    for path in history_dir.glob("*.duckdb"):
        if path.name.startswith(".") or not path.is_file():
            continue
        stat = path.stat()
        key = identity(path, stat)
        night = known.get(key) or night_of(path)
        if night is not None:
            nights[key] = night
            found.append(KeptCopy(path, night, stat.st_mtime_ns))
    if nights != known:
        remember(history_dir, nights)
    return sorted(found, key=lambda c: (c.business_date, c.written_ns, c.path.name))


def newest_copy_of(copies: list[KeptCopy], business_date: dt.date) -> KeptCopy | None:
    of_night = [c for c in copies if c.business_date == business_date]
    return of_night[-1] if of_night else None


def restore_state(copy: Path, state_db: Path) -> None:
    """Makes `copy` the working state in one step: copied whole under a temporary name beside
    the state, then renamed over it. A kill leaves the old state or the new one, never a mix;
    the temporary file is removed by the next restore.

    The old state's write-ahead log must not meet the new file: it is folded into the old state
    first (so a kill before the rename leaves the old state whole), or, if that state cannot be
    opened any more, moved aside as `state.duckdb.wal.before-rollback`."""
    folder = state_db.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_leftovers(folder, RESTORING)
    tmp = folder / f".restoring-{os.getpid()}.duckdb"
    try:
        shutil.copyfile(copy, tmp)
        fsync_file(tmp)
        _fold_wal(state_db)
        crash_point("while-restoring")
        os.replace(tmp, state_db)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)


def _fold_wal(state_db: Path) -> None:
    wal = state_db.with_name(state_db.name + ".wal")
    if not wal.exists():
        return
    try:
        con = duckdb.connect(str(state_db))
        try:
            con.execute("CHECKPOINT")
        finally:
            con.close()
    except duckdb.Error as error:
        aside = wal.with_name(wal.name + ".before-rollback")
        log.warning(
            "The working state %s cannot be opened (%s): its write-ahead log is kept as %s",
            state_db,
            str(error).splitlines()[0],
            aside,
        )
        os.replace(wal, aside)
