"""Named crash points for the fault-injection tests (issue: crash-safe nights).

`ALLOCATION_CRASH_AT=<name>` makes the process kill itself with SIGKILL at that point, exactly
as an out-of-memory kill or a host reboot would stop it. `ALLOCATION_HOLD_AT=<name>` with
`ALLOCATION_HOLD_DIR=<folder>` makes it stop there instead, alive: it creates
`<folder>/reached-<name>` and waits until `<folder>/release` exists (at most
`HOLD_LIMIT_SECONDS`), so a test can cancel the night, or cut it off from Prefect, at exactly
that step. Unset (always, in production) they cost two dictionary lookups.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

HOLD_LIMIT_SECONDS = 600.0

CRASH_POINTS = (
    "after-load",
    "after-validate",
    "before-commit",
    "after-commit",
    "while-writing-reports",
    "while-publishing",
)
# A rollback's own point (allocation/io/restore.py), not a step of the night: "while-restoring";
# the one-time conversion of the working state's storage version (io/compatible_copy.py):
# "while-converting"; deleting the old copies once a night is published (io/discards.py):
# "while-discarding".


def crash_point(name: str) -> None:
    if os.environ.get("ALLOCATION_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("ALLOCATION_HOLD_AT") == name:
        _hold(name, Path(os.environ.get("ALLOCATION_HOLD_DIR") or "."))


def _hold(name: str, folder: Path) -> None:
    (folder / f"reached-{name}").touch()
    deadline = time.monotonic() + HOLD_LIMIT_SECONDS
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # a signal sent meanwhile is handled between two sleeps
