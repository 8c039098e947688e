"""What follows a night's commit: its reports, its published copy, and the same for a night
that committed but was stopped before it wrote them.

The reports are read back from committed state (`allocation.io.outbox`), never from the
transaction that wrote it, so a night finished later by another run (`finish_committed_night`,
from the note the commit left: `allocation.io.pending`) writes the same files.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from allocation.io.outbox import write_night
from allocation.io.pending import PendingNight, read_note, remove_note
from allocation.io.publish import (
    PublishError,
    StateCopies,
    copy_state,
    put_in_place,
    ready_to_copy,
)
from allocation.io.unit_of_work import connect
from allocation.service.night_transaction import NightOutcome
from allocation.service.state import committed_run, state_db
from allocation.settings import RunParameters

log = logging.getLogger("allocation")


def write_reports(params: RunParameters, outcome: NightOutcome) -> Path:
    """Reports come from committed state (or, for a dry run, the state it computed)."""
    if outcome.dry_run_folder is not None:
        return outcome.dry_run_folder
    limits = params.duckdb_limits
    con = connect(state_db(params), limits=limits)
    try:
        return write_night(con, params.business_date, params.outbox, limits=limits)
    finally:
        con.close()


def publish(params: RunParameters, label: str) -> Path:
    """Publishes the committed state as the analysts' warehouse file, and keeps its copy for
    rollbacks: the copies `copying_state` made while the reports were written, when it made
    them for this night, else made now."""
    copying = _copying.pop(label, None)
    copies = (
        copying.result()
        if copying is not None
        else copy_state(
            state_db(params),
            params.warehouse,
            params.state_folder.published,
            label,
            params.warehouse_storage_version,
        )
    )
    return put_in_place(
        copies, params.warehouse, params.state_folder.published, label, params.keep_published
    )


#: The copies under way for `publish`, by night label (`copying_state`).
_copying: dict[str, Future[StateCopies]] = {}


@contextlib.contextmanager
def copying_state(params: RunParameters, label: str) -> Iterator[None]:
    """While the block runs (the night's reports are written), copies the committed state for
    the analysts and for rollbacks on a thread of its own, for `publish` to put in place: the
    two need nothing of each other, so the night no longer waits for both in turn
    (docs/benchmarks.md, "Publishing while the reports are written"). Nothing is copied
    for a dry run, nor when the state must first be converted to the analysts' storage version
    (that rewrites the file the reports read: `publish` converts and copies after them). On
    leaving, waits for the copies; those `publish` did not take (the reports failed) are
    removed, and the analysts keep the previous night."""
    state = state_db(params)
    if params.dry_run or not ready_to_copy(state, params.warehouse_storage_version):
        yield
        return
    with ThreadPoolExecutor(1, "publish-copies") as copier:
        _copying[label] = copier.submit(
            copy_state, state, params.warehouse, params.state_folder.published, label, None
        )
        try:
            yield
        finally:
            left = _copying.pop(label, None)
            if left is not None:
                try:
                    left.result().discard()
                except PublishError as error:  # nothing was left of it
                    log.debug("The copies made for publishing failed, and were not used: %s", error)


def finish_committed_night(params: RunParameters, run_id: str) -> PendingNight | None:
    """Writes the reports and the published copy of a night that committed but stopped before
    it had written them (cancelled, killed, its host lost), read from the note it left
    (`allocation.io.pending`); returns that night, or None when none was left undone. A note
    whose run the ledger does not hold is a night that never committed: it is dropped. The
    note of run `run_id` itself is left alone: that run is about to do its own steps again.
    Call it holding the warehouse lock."""
    note = read_note(params.state_dir)
    if note is None or note.run_id == run_id:
        return None
    if not committed_run(params, note.run_id):
        log.info("%s stopped before its commit: nothing of it to finish", note.describe())
        remove_note(params.state_dir, note.run_id)
        return None
    log.warning(
        "%s committed, then stopped before its reports and published copy were written "
        "(cancelled or killed): writing them now, before anything else",
        note.describe(),
    )
    committed_night = params.model_copy(
        update={"business_date": note.business_date, "outbox": note.outbox, "dry_run": False}
    )
    write_reports(committed_night, NightOutcome(note.run_id, note.business_date, counts={}))
    publish(committed_night, note.label)
    remove_note(params.state_dir, note.run_id)
    return note
