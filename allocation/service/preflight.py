"""Pre-flight checks: what a night refuses before anything is read or written (a missing inbox,
unusable paths, a business date earlier than the last committed night). The CLI and every night
(`allocation.service.night`: the flow and `run_night`) call these.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from allocation.io.readers import discovery
from allocation.io.restore import kept_copies
from allocation.io.run_lock import RunLockTimeout
from allocation.io.unit_of_work import WarehouseError, check_warehouse_path
from allocation.service import night_checks
from allocation.service.state import last_committed_date, warehouse_lock
from allocation.settings import ParameterError, RunParameters


def check_inbox(inbox: Path, *, flow_run: bool = False) -> None:
    """Fails before anything else when the inbox itself is missing, naming what the person
    running the night can change: `--inbox` on the command line, the run's `inbox` parameter in
    a flow run (the Prefect UI or API)."""
    other = "or set the run's inbox parameter to another folder" if flow_run else "or pass --inbox"
    discovery.check_inbox(inbox, other)


#: The most bytes the pipeline adds to the warehouse's file name for the names it makes beside
#: it: `.NAME.publish-PID.wal` (a PID has at most 7 digits on Linux), longer than
#: `.NAME.pipeline`, `.NAME.probe-XXXXXXXX` and `NAME.wal`.
NAME_OVERHEAD = len(".") + len(".publish-") + 7 + len(".wal")


def check_warehouse_name(warehouse: Path) -> None:
    """Refuses a warehouse file name so long that a name the pipeline makes beside it would
    not fit the file system's limit: such a night would commit, then never publish."""
    folder = warehouse.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    length = len(os.fsencode(warehouse.name))
    if length + NAME_OVERHEAD > limit:
        raise ParameterError(
            f"--warehouse file name is {length} bytes long ({warehouse.name[:40]}...): the "
            f"pipeline makes names up to {NAME_OVERHEAD} bytes longer beside it "
            f"(.NAME.publish-PID.wal) and the file system of {folder} allows {limit} bytes per "
            f"name: use a file name of at most {limit - NAME_OVERHEAD} bytes"
        )


def check_warehouse_outside_inbox(params: RunParameters) -> None:
    """Refuses a warehouse inside the inbox's batches/ or orders/ folder: its file (or its
    published copy) would be read as an input file the next night."""
    home = params.warehouse.parent.resolve()
    for kind in ("batches", "orders"):
        if home == (params.inbox / kind).resolve():
            raise ParameterError(
                f"--warehouse {params.warehouse} is inside the inbox's {kind}/ folder, where "
                f"every file is read as {kind}: keep the warehouse outside the inbox"
            )


def check_run_paths(params: RunParameters, *, flow_run: bool = False) -> None:
    """Refuses, before anything is read or written, paths no night can run with: the CLI and
    the flow both start with this one check (`flow_run`: the messages name the flow's
    parameters, not the command's options)."""
    check_inbox(params.inbox, flow_run=flow_run)
    check_warehouse_name(params.warehouse)
    check_warehouse_outside_inbox(params)
    check_warehouse_path(params.warehouse)
    night_checks.check_settings(params)  # ALLOCATION_CHECKS and the accepted checks
    if params.outbox.exists() and not params.outbox.is_dir():
        raise ParameterError(f"outbox {params.outbox} is a file: give a folder for the reports")


def check_business_date(params: RunParameters) -> None:
    """Refuses a business date earlier than the last committed night, before anything is read.

    Such a night would allocate later nights' backorders under the earlier date, and the later
    night's reports and `latest` would stop matching the warehouse. The last committed date
    itself may run again (with or without new files); an older one only after a rollback to it,
    as its reports cannot be reproduced from today's state (docs/operations.md)."""
    last = last_committed_date(params)
    day = params.business_date
    if last is not None and day < last:
        raise ParameterError(
            f"business date {day} is earlier than the last committed night {last}: run {last} "
            f"or a later date; {_how_to_redo(params)}"
        )


def _how_to_redo(params: RunParameters) -> str:
    """The rollback that makes the refused date runnable again: to that night, or to the
    latest night before it, whichever has a kept copy (a date that never ran has none), or
    that none can be rolled back to."""
    day = params.business_date
    copies = kept_copies(params.state_folder.published)
    earlier = [copy.business_date for copy in copies if copy.business_date <= day]
    if not earlier:
        kept = sorted({copy.business_date.isoformat() for copy in copies})
        return (
            f"no night on or before {day} can be rolled back to (nights kept: "
            f"{', '.join(kept) or 'none'}), so {day} cannot be run again"
        )
    target = max(earlier)
    if target == day:
        return (
            f"to redo {day}, roll back to it first "
            f"(allocation rollback --to {day}, see docs/operations.md)"
        )
    return (
        f"no copy of {day} is kept; to run it, roll back to {target}, the latest night before it "
        f"with a kept copy, then run {day} "
        f"(allocation rollback --to {target}, see docs/operations.md)"
    )


def check_business_date_if_idle(params: RunParameters) -> None:
    """`check_business_date` before a run starts (the CLI, for one clean line), only if no run
    holds the warehouse: opening the state beside a running night would make that night fail
    to open it. Otherwise nothing: the run checks again under the run lock."""
    idle = warehouse_lock(params, "check-business-date", timeout=0)
    with contextlib.suppress(RunLockTimeout, WarehouseError), idle:  # WarehouseError: later
        check_business_date(params)
