"""What a night tells Prefect along the way (the progress bar, the summary artifacts) is a
courtesy: the night's own work never waits on it.

Prefect's client retries a call that meets a refused or reset connection for about a minute
(five times, backing off). A night that lost its API would wait that long at every progress
update (docs/operations.md has the figure). So each courtesy call runs on a thread of its own and
the night waits at most a few seconds for it; a call still hanging then is left to finish or
fail alone, and the caller stops making such calls for the rest of the night.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("allocation")

#: How long the night waits for one courtesy call to the Prefect API.
COURTESY_TIMEOUT_SECONDS = 5.0


def best_effort(call: Callable[[], Any], what: str, timeout: float | None = None) -> bool:
    """Runs `call` (in the caller's Prefect context) for at most `timeout` seconds
    (`COURTESY_TIMEOUT_SECONDS` by default). True when it returned in time; otherwise logs one
    warning naming `what` and returns False."""
    timeout = COURTESY_TIMEOUT_SECONDS if timeout is None else timeout
    failure: list[BaseException] = []
    context = contextvars.copy_context()

    def attempt() -> None:
        try:
            context.run(call)
        except Exception as error:
            failure.append(error)

    worker = threading.Thread(target=attempt, name="prefect-courtesy", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.warning(
            "%s: the Prefect API did not answer within %gs; the night goes on without it",
            what,
            timeout,
        )
        return False
    if failure:
        error = failure[0]
        first = str(error).strip().splitlines()[0] if str(error).strip() else "no details"
        log.warning("%s: %s (%s)", what, first, type(error).__name__)
        return False
    return True
