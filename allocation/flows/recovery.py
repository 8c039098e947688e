"""A crashed night is retried once, by Prefect, from the crashed process itself.

A crash is the process failing under the flow, not the night's own error: the server restarted
and the concurrency lease could not be renewed ("Terminating execution"), the process was told to
stop, a BaseException. Prefect's flow `retries` only cover Failed runs, so the flow's `on_crashed`
hook puts the run back in `AwaitingRetry` a minute later, on its first crash only; a second crash
stays Crashed for a person to look at. The night itself is safe to run again: a night that died
before its commit left nothing, one that died after it finds its commit and only writes reports.

A run whose process died outright (kill -9, out of memory, the host) runs no hook: the server
marks it Crashed when its heartbeats stop (automations/crash-silent-night.yaml), and a person runs
the night again (docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from prefect import Flow, get_client
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.states import AwaitingRetry

log = logging.getLogger(__name__)

CRASH_RETRY_DELAY = dt.timedelta(seconds=60)


def first_crash(history: list[State[Any]]) -> bool:
    """Whether the run has crashed once so far (the state just set included)."""
    return sum(1 for state in history if state.type == StateType.CRASHED) <= 1


def retry_crashed_night_once(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """`on_crashed` hook of the nightly flow: reschedule the run once, a minute later."""
    if flow_run.deployment_id is None:
        return  # the `allocation` command: the operator sees the crash and runs again
    try:
        with get_client(sync_client=True) as client:
            if not first_crash(client.read_flow_run_states(flow_run.id)):
                log.error("Night %s crashed again: not retrying it", flow_run.name)
                return
            when = dt.datetime.now(dt.UTC) + CRASH_RETRY_DELAY
            client.set_flow_run_state(
                flow_run.id,
                AwaitingRetry(
                    scheduled_time=when,
                    message=f"Crashed ({state.message}); retried once at {when:%H:%M:%S} UTC",
                ),
                force=True,
            )
        log.warning("Night %s crashed: retrying it once at %s UTC", flow_run.name, when)
    except Exception:  # the hook must never hide the crash itself
        log.exception("Night %s crashed and could not be rescheduled", flow_run.name)
