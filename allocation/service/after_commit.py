"""What follows a night's commit: its reports, its published copy, and the same for a night
that committed but was stopped before it wrote them.

The reports are read back from committed state (`allocation.io.outbox`), never from the
transaction that wrote it, so a night finished later by another run (`finish_committed_night`,
from the note the commit left: `allocation.io.pending`) writes the same files.
"""

from __future__ import annotations

import logging
from pathlib import Path

from allocation.io.outbox import write_night
from allocation.io.pending import PendingNight, read_note, remove_note
from allocation.io.publish import publish_copy
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
    """Publishes the committed state as the analysts' warehouse file."""
    return publish_copy(
        state_db(params),
        params.warehouse,
        params.state_folder.published,
        label,
        params.keep_published,
        params.warehouse_storage_version,
    )


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
