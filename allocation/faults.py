"""Named crash points for the fault-injection tests (issue: crash-safe nights).

`ALLOCATION_CRASH_AT=<name>` makes the process kill itself with SIGKILL at that point, exactly
as an out-of-memory kill or a host reboot would stop it. Unset (always, in production) it costs
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

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
# "while-converting".


def crash_point(name: str) -> None:
    if os.environ.get("ALLOCATION_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
