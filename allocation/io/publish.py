"""Publishes the analysts' copy of the warehouse: a new file, then a rename, never in place.

Analysts hold read-only connections to the published file for hours. On Linux a rename over it
leaves their open file (the old inode) intact, so their queries keep working on what they had,
while a connection opened afterwards sees the new night. The pipeline's own working state lives in
a hidden folder beside it that analysts never open, so they can never block a night.

The working state is in the analysts' storage version (`allocation.io.compatible_copy`), so the
new file is a byte copy of it; a working state in another version is converted first, once.
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
from allocation.io.compatible_copy import (
    CopyError,
    convert,
    in_storage_version,
    remove_leftovers_of,
    storage_tag,
)
from allocation.io.discards import (
    discard_in_background,
    keep_until_discarded,
    remove_discarded,
    set_aside,
)
from allocation.io.disk import is_disk_full
from allocation.io.files import fsync_dir, fsync_file, remove_leftovers
from allocation.io.kept_nights import remember_night
from allocation.io.restore import KeptCopy, kept_copies, night_of
from allocation.io.unit_of_work import not_ours

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """The night is committed, but analysts still see the previous one."""


def publish_copy(
    state_db: Path,
    warehouse: Path,
    history_dir: Path,
    label: str,
    keep: int,
    storage_version: str,
) -> Path:
    """Copies the closed, checkpointed working database over `warehouse` atomically (a complete
    new file, renamed into place) and keeps a copy of it under `history_dir/<label>.duckdb`;
    returns the history path: `copy_state`, then `put_in_place`. Both are byte copies of the
    working database in `storage_version`, the analysts' DuckDB storage version: a working
    database in another one is converted to it first (once: it stays in it).

    The caller must have closed every connection to `state_db` after a CHECKPOINT (no `.wal`).
    """
    copies = copy_state(state_db, warehouse, history_dir, label, storage_version)
    return put_in_place(copies, warehouse, history_dir, label, keep)


@dataclass(frozen=True)
class StateCopies:
    """The closed working state copied, complete and on disk, under temporary names
    (`copy_state`): `for_analysts` beside the warehouse, `for_rollbacks` in the history
    folder, or None with `rollback_error` saying why it could not be written (the night is
    published all the same, then that error is said)."""

    for_analysts: Path
    for_rollbacks: Path | None
    rollback_error: OSError | None = None
    #: The night the copy for rollbacks holds, read from it while the reports were written, so
    #: that listing the kept copies after the rename need not open it again (None: not read).
    rollback_night: dt.date | None = None

    def discard(self) -> None:
        """Removes the copies (and any log DuckDB left beside them): they were not put in place."""
        for path in (self.for_analysts, self.for_rollbacks):
            if path is not None:
                path.unlink(missing_ok=True)
                path.with_name(path.name + ".wal").unlink(missing_ok=True)


def ready_to_copy(state_db: Path, storage_version: str) -> bool:
    """Whether the working state is already in the analysts' storage version, so that copying
    it only reads it (`copy_state` converts it first otherwise, which rewrites the file)."""
    try:
        return in_storage_version(state_db, storage_version)
    except (OSError, duckdb.Error, CopyError):
        return False


def copy_state(
    state_db: Path, warehouse: Path, history_dir: Path, label: str, storage_version: str | None
) -> StateCopies:
    """Copies the closed working state for the analysts (beside `warehouse`) and for rollbacks
    (in `history_dir`), each complete and on disk under a temporary name, for `put_in_place`;
    converts the state to `storage_version` first when it is in another (once; None: the
    caller found it in the analysts' version already, `ready_to_copy`, and the file is only
    read: DuckDB is not asked, so the state may be open in this process meanwhile). Removes
    what earlier killed publishes left. Raises PublishError when the analysts' copy cannot be
    made (nothing of it is left); a copy for rollbacks that cannot be made is said by
    `put_in_place`, once the night is published."""
    _check_ours(warehouse)
    wal = state_db.with_name(state_db.name + ".wal")
    if wal.exists():
        raise PublishError(
            f"{state_db} still has a write-ahead log (a run was killed before closing it): run the "
            "night again, which replays it, then publish if needed"
        )
    tmp = warehouse.with_name(f".{warehouse.name}.publish-{os.getpid()}")
    try:
        warehouse.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(warehouse.parent, f".{warehouse.name}.publish-*")
        remove_leftovers(history_dir, ".*.partial")
        remove_discarded(warehouse.parent, warehouse.name)
        remove_discarded(history_dir)
        remove_leftovers_of(state_db)
        # In the storage version older DuckDB clients open (the warehouse_storage_version
        # setting); a full disk fails here: the same message applies.
        if storage_version is not None and not in_storage_version(state_db, storage_version):
            log.info(
                "The working state is in DuckDB storage %s, not %s: converting it (once)",
                storage_tag(state_db),
                storage_version,
            )
            convert(state_db, storage_version)
        shutil.copyfile(state_db, tmp)
        fsync_file(tmp)
    except (OSError, duckdb.Error, CopyError) as error:
        StateCopies(tmp, None).discard()
        raise _not_replaced(warehouse, error) from error
    partial = history_dir / f".{label}.partial"
    try:
        copy_for_rollbacks(state_db, partial)
    except OSError as error:
        partial.unlink(missing_ok=True)
        return StateCopies(tmp, None, error)
    return StateCopies(tmp, partial, rollback_night=night_of(partial))


def copy_for_rollbacks(state_db: Path, partial: Path) -> None:
    """Copies the closed working state to `partial` (in the history folder) and syncs it: the
    source of `allocation rollback` once renamed to `<label>.duckdb`. A real copy of the state
    file, never a link to the analysts' file: an analyst's read-write session there must not
    change what a rollback restores."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(state_db, partial)
    fsync_file(partial)


def put_in_place(
    copies: StateCopies, warehouse: Path, history_dir: Path, label: str, keep: int
) -> Path:
    """Renames the analysts' copy over `warehouse` (their open connections keep the file they
    had), then the copy for rollbacks to `history_dir/<label>.duckdb`, and prunes the history
    to `keep` nights; returns the history path. Each rename is atomic: a kill leaves the
    previous file or the new one, and the temporary copies, which the next publish removes."""
    # A write-ahead log beside the published path was left by someone who opened the previous
    # copy read-write; DuckDB refuses to open the new file next to a log that is not its own
    # ("WAL does not match database file"), so it goes (before and after the rename).
    stale_wal = warehouse.with_name(warehouse.name + ".wal")
    try:
        # Asked again just before the rename: the copies may have been made a while ago (while
        # the reports were written), and someone may have put their own file there since.
        _check_ours(warehouse)
    except PublishError:
        copies.discard()
        raise
    try:
        crash_point("while-publishing")
        if warehouse.is_dir():
            raise IsADirectoryError(f"{warehouse} is a folder")
        stale_wal.unlink(missing_ok=True)
        # The previous copy keeps a hidden second name, so the rename does not free its blocks
        # on the night's path (0.14 s for 470 MB here): that is done after it.
        previous = keep_until_discarded(warehouse)
        try:
            os.replace(copies.for_analysts, warehouse)
        except OSError:
            if previous is not None:
                previous.unlink(missing_ok=True)
            raise
    except OSError as error:
        copies.discard()
        raise _not_replaced(warehouse, error) from error
    discard_in_background([previous])
    try:
        stale_wal.unlink(missing_ok=True)
    except OSError as error:
        raise PublishError(
            f"the night is published as {warehouse}, but DuckDB cannot open it while the stale "
            f"{stale_wal} is there ({error}): delete that file"
        ) from error
    fsync_dir(warehouse.parent)
    kept = history_dir / f"{label}.duckdb"
    try:
        if copies.for_rollbacks is None:
            raise copies.rollback_error or OSError(f"no copy was made in {history_dir}")
        os.replace(copies.for_rollbacks, kept)
        fsync_dir(history_dir)
        if copies.rollback_night is not None:
            remember_night(history_dir, kept, copies.rollback_night)
    except OSError as error:
        copies.discard()
        raise PublishError(
            f"the night is committed and published, but its copy for rollbacks could not be "
            f"written in {history_dir} ({error}). Free the space, then run: allocation publish "
            f"--warehouse {warehouse}"
        ) from error
    _prune(history_dir, keep)
    return kept


def _check_ours(warehouse: Path) -> None:
    """Raises PublishError when a file at `warehouse` is not a warehouse this pipeline wrote (a
    folder there is refused when renaming)."""
    problem = not_ours(warehouse) if warehouse.is_file() else None
    if problem is not None:
        raise PublishError(
            f"the night is committed, but it was not published: {problem}; then run: "
            f"allocation publish --warehouse {warehouse}"
        )


def _not_replaced(warehouse: Path, error: BaseException) -> PublishError:
    what = (
        f"the disk holding {warehouse.parent} is full: free space there"
        if is_disk_full(error)
        else "free the path"
    )
    return PublishError(
        f"the night is committed but the analysts' copy {warehouse} could not be replaced "
        f"({error}). To publish it, {what}, then run: allocation publish --warehouse "
        f"{warehouse}"
    )


def _prune(history_dir: Path, keep: int) -> None:
    """Keeps the newest copy of each of the `keep` nights published most recently; drops the
    rest. A night run three times (a crash rerun, then late files) keeps one copy, so it takes
    one place, not three: the rollback depth is `keep` nights, as documented, whatever the
    reruns. Nights are ranked by when their newest copy was made, not by business date, so a
    mistyped far-future night ages out like any other. A copy that cannot be read as a night
    (damaged) is dropped once it is older than every copy kept."""
    # Set aside at once, deleted after the night (`allocation.io.discards`).
    discard_in_background([set_aside(path) for path in _aged_out(history_dir, keep)])


def _aged_out(history_dir: Path, keep: int) -> list[Path]:
    """The copies `_prune` drops, each said in the log."""
    dropped: list[Path] = []
    copies = kept_copies(history_dir)  # oldest first, by night then time
    newest: dict[dt.date, KeptCopy] = {}
    for copy in copies:
        best = newest.get(copy.business_date)
        if best is None or (copy.written_ns, copy.path.name) > (best.written_ns, best.path.name):
            newest[copy.business_date] = copy
    ranked = sorted(newest.values(), key=lambda c: (c.written_ns, c.path.name), reverse=True)
    kept = {copy.path for copy in ranked[:keep]}
    for copy in copies:
        if copy.path not in kept:
            log.info(
                "Dropping published copy %s of night %s (keeping the newest copy of each of "
                "the last %d nights)",
                copy.path.name,
                copy.business_date,
                keep,
            )
            dropped.append(copy.path)
    readable = {copy.path for copy in copies}
    oldest_kept = min((c.written_ns for c in ranked[:keep]), default=None)
    for path in history_dir.glob("*.duckdb"):
        if path.name.startswith(".") or path in readable or not path.is_file():
            continue
        if oldest_kept is not None and path.stat().st_mtime_ns < oldest_kept:
            log.info("Dropping published copy %s: it cannot be read as a night", path.name)
            dropped.append(path)
    return dropped
