"""Big files deleted off the night's path: set aside at once, removed by a thread of their own.

Deleting a file frees its blocks there and then, in proportion to its size: 0.14 s for a
470 MB warehouse copy on an ext4 disk mounted with `discard` (docs/benchmarks.md, "The old
copies deleted after the night"). Publishing frees two such files every night, the analysts'
previous copy (replaced) and the kept copy that ages out, and both grow with the warehouse. So
publishing gives each a hidden name in its own folder (a rename, at once) and a thread deletes
them while the night winds up (the flow reports its end, the command prints its summary); the
process waits for that thread before it exits. A run killed before the thread is done leaves the
hidden files: the next publish removes them (`remove_discarded`).
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

from allocation.faults import crash_point
from allocation.io.files import remove_leftovers

log = logging.getLogger(__name__)

#: The hidden name a file set aside takes in its folder until it is deleted (`{name}` is its
#: own name).
DISCARDED = ".{name}.discarded-{tag}"

_threads: list[threading.Thread] = []
_lock = threading.Lock()


def set_aside(path: Path) -> Path | None:
    """Renames `path` to a hidden name in the same folder (`DISCARDED`) and returns that name,
    for `discard_in_background`; None when there is nothing at `path`. Falls back to deleting it
    at once when it cannot be renamed."""
    aside = _aside_name(path)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    except OSError:
        path.unlink(missing_ok=True)
        return None
    return aside


def keep_until_discarded(path: Path) -> Path | None:
    """A second name (a hard link, hidden, `DISCARDED`) for the file at `path`, so that replacing
    `path` does not free the old file's blocks: `discard_in_background` frees them later. None
    when there is no file there or the file system has no hard links (the replace then frees the
    old file as it happens)."""
    if not path.is_file():
        return None
    aside = _aside_name(path)
    try:
        os.link(path, aside)
    except OSError:
        return None
    return aside


def discard_in_background(paths: Iterable[Path | None]) -> None:
    """Deletes `paths` (set aside by `set_aside` or `keep_until_discarded`) on a thread of their
    own. The thread is not a daemon: a process that is done waits for it before exiting."""
    pending = [path for path in paths if path is not None]
    if not pending:
        return
    thread = threading.Thread(
        target=_delete, args=(pending,), name="discarding-old-copies", daemon=False
    )
    with _lock:
        _threads[:] = [t for t in _threads if t.is_alive()]
        _threads.append(thread)
    thread.start()


def wait_for_discards() -> None:
    """Returns once every file handed to `discard_in_background` so far is deleted."""
    with _lock:
        threads = list(_threads)
    for thread in threads:
        thread.join()


def remove_discarded(folder: Path, name: str = "*") -> None:
    """Deletes what a killed run had set aside in `folder` (of the file called `name`, or of
    any) and not yet deleted."""
    pattern = "*" if name == "*" else glob.escape(name)
    remove_leftovers(folder, DISCARDED.format(name=pattern, tag="*"))


def _aside_name(path: Path) -> Path:
    return path.with_name(DISCARDED.format(name=path.name, tag=uuid.uuid4().hex[:12]))


def _delete(paths: list[Path]) -> None:
    crash_point("while-discarding")
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError as error:  # the next publish tries again (`remove_discarded`)
            log.warning("Could not delete %s (%s): the next publish will", path, error)
