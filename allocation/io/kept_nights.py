"""The night each kept copy holds, remembered in a small record beside the copies.

Which night a kept copy holds is read from the copy itself (`allocation.io.restore.night_of`:
DuckDB opens it), and every publish, pre-flight check and rollback lists the copies. Opened
every time, that is one DuckDB open per kept copy per night, in a process that runs one night
(20 ms each on this machine: 0.16 s a night at the default seven copies, more with a deeper
history). So the nights read are kept in `.kept-nights.json` in the history folder, by each
file's identity (name, device, inode, size, modification time): a copy is written whole under
another name and renamed into place, so the same identity means the same file, and a copy
replaced under its own name is read again.

The record is a cache and nothing more: unreadable, damaged or missing, it is ignored and written
again; a record that cannot be written costs only the opens. Hidden, so it is never taken for a
copy (those are `*.duckdb`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: The record's name in the history folder.
RECORD = ".kept-nights.json"
#: A record being written (a killed write leaves it; the next publish removes `.*.partial`).
PARTIAL = ".kept-nights-{pid}.partial"

#: A file's identity: name, device, inode, size, modification time (ns).
Identity = tuple[str, int, int, int, int]


def identity(path: Path, stat: os.stat_result) -> Identity:
    return (path.name, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def remembered(history_dir: Path) -> dict[Identity, dt.date]:
    """The nights the record holds, by file identity; empty when there is none or it cannot be
    read as one."""
    try:
        entries = json.loads((history_dir / RECORD).read_text(encoding="utf-8"))["copies"]
        return {
            (str(e["name"]), int(e["dev"]), int(e["ino"]), int(e["size"]), int(e["mtime_ns"])): (
                dt.date.fromisoformat(e["night"])
            )
            for e in entries
        }
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        if not isinstance(error, FileNotFoundError):
            log.debug("Ignoring the record of kept nights in %s: %s", history_dir, error)
        return {}


def remember(history_dir: Path, nights: dict[Identity, dt.date]) -> None:
    """Replaces the record with `nights` (written whole, then renamed over the old one). A
    record that cannot be written is left out: the next listing opens the copies again."""
    entries = [
        {"name": n, "dev": d, "ino": i, "size": s, "mtime_ns": m, "night": night.isoformat()}
        for (n, d, i, s, m), night in sorted(nights.items())
    ]
    partial = history_dir / PARTIAL.format(pid=os.getpid())
    try:
        partial.write_text(json.dumps({"copies": entries}, indent=1) + "\n", encoding="utf-8")
        os.replace(partial, history_dir / RECORD)
    except OSError as error:
        log.debug("Could not keep the record of kept nights in %s: %s", history_dir, error)
        partial.unlink(missing_ok=True)


def remember_night(history_dir: Path, copy: Path, night: dt.date) -> None:
    """Adds `copy` (in `history_dir`, just put in place) to the record as holding `night`, which
    its writer read from it: the next listing need not open it."""
    try:
        copied = identity(copy, copy.stat())
    except OSError as error:
        log.debug("Could not note the night of %s: %s", copy, error)
        return
    remember(history_dir, {**remembered(history_dir), copied: night})
