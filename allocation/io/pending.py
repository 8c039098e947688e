"""The note a committing night leaves in its state folder until its reports and its published
copy are written: how a night stopped after its commit (cancelled from Prefect, killed, the
host lost) gets them written by the next run of any date, or by `allocation publish`.

A night writes the note, durably, just before its commit and removes it once it has published.
The note alone proves nothing: the warehouse's ledger (`runs`) decides. A note whose run is in
`runs` is a committed night with work left undone; a note whose run is not there is a night that
stopped before (or failed at) its commit, which left nothing to finish. So a kill at any moment
leaves either no note, or a note the ledger can judge.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from allocation.io.files import fsync_dir
from allocation.settings.state_folder import StateFolder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingNight:
    """A night that is committing, or committed with its reports and publishing still to do."""

    run_id: str
    business_date: dt.date
    label: str  # the name its published copy is kept under
    outbox: Path  # where its reports go

    def describe(self) -> str:
        return f"night {self.business_date} (run {self.run_id})"


def note_path(state_dir: Path) -> Path:
    return StateFolder(state_dir).pending_note


def leave_note(state_dir: Path, night: PendingNight) -> None:
    """Writes the note whole (temporary file, fsync, rename, fsync of the folder): it is on disk
    before the commit that it describes can be."""
    state_dir.mkdir(parents=True, exist_ok=True)
    target = note_path(state_dir)
    partial = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    text = json.dumps(
        {
            "run_id": night.run_id,
            "business_date": night.business_date.isoformat(),
            "label": night.label,
            "outbox": str(night.outbox),
        }
    )
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(state_dir)


def read_note(state_dir: Path) -> PendingNight | None:
    """The note left in `state_dir`, or None. A note that cannot be read (cut short by a full
    disk before the rename could not happen, so only by hand) is logged and ignored."""
    path = note_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PendingNight(
            run_id=str(data["run_id"]),
            business_date=dt.date.fromisoformat(data["business_date"]),
            label=str(data["label"]),
            outbox=Path(data["outbox"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("Ignoring the unreadable note %s: %s", path, error)
        return None


def remove_note(state_dir: Path, run_id: str) -> None:
    """Removes the note of run `run_id` (a note of another run is not this night's to remove)."""
    found = read_note(state_dir)
    if found is not None and found.run_id != run_id:
        return
    path = note_path(state_dir)
    if path.exists():
        path.unlink()
        fsync_dir(state_dir)
