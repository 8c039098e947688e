"""Nights commit in date order, whatever order Prefect's queue starts them in.

Prefect does not order queued runs: with several workers and a concurrency limit of 1, a later
night can win the slot before an earlier one. So before it touches the warehouse, a deployment run
looks at the deployment's other runs that have not finished (scheduled, late, awaiting a slot,
pending, running). If one of them is an earlier night for the same warehouse, this night gives its
slot back and reschedules itself a few minutes later, in a Scheduled state named
`AwaitingEarlierNight` whose message names the earlier night: visible in the UI and the logs. A
night that has waited too long, or whose earlier night is scheduled only after that limit, fails
with a message saying what to run first: never silently lost.

The same visible rescheduling serves a night that meets the warehouse's run lock held by another
run (state `AwaitingWarehouse`), instead of failing on the lock timeout.

`decide` holds the rule over plain values; `earlier_nights_first` and `wait_for_warehouse` are
the Prefect glue around it. A waiting night proposes its Scheduled state to the server itself
(that transition out of Running releases its concurrency slot), then ends its process quietly
through Prefect's `Pause` signal, the one the engine has for "this run continues later": the
engine exits 0 and the worker reports nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from prefect import get_client, runtime
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.responses import OrchestrationResult, SetStateStatus
from prefect.exceptions import Abort, Pause
from prefect.states import Scheduled

from allocation.flows.run_context import deployment_id
from allocation.settings import RunParameters, Settings, parse_business_date
from allocation.settings.state_folder import same_warehouse_path

log = logging.getLogger(__name__)

WAITING_FOR_EARLIER_NIGHT = "AwaitingEarlierNight"
WAITING_FOR_WAREHOUSE = "AwaitingWarehouse"
WAITING_STATES = (WAITING_FOR_EARLIER_NIGHT, WAITING_FOR_WAREHOUSE)
NOT_FINISHED = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]


class NightOutOfOrder(RuntimeError):
    """This night cannot run in date order: an earlier night has not run and will not in time."""


@dataclass(frozen=True)
class OtherNight:
    """Another unfinished run of the deployment, as far as ordering cares."""

    run_id: str
    name: str
    state: str
    business_date: dt.date
    expected_start: dt.datetime

    def describe(self) -> str:
        return (
            f"night-{self.business_date.isoformat()} (run {self.run_id}, {self.state}, "
            f"starts {self.expected_start.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)"
        )


@dataclass(frozen=True)
class Proceed:
    """No earlier night is waiting: run now."""


@dataclass(frozen=True)
class Wait:
    """Give the slot back and start again at `until`."""

    until: dt.datetime
    message: str


@dataclass(frozen=True)
class GiveUp:
    """Fail the night visibly: it cannot run in date order."""

    message: str


Decision = Proceed | Wait | GiveUp


def decide(
    night: dt.date,
    others: Iterable[OtherNight],
    *,
    now: dt.datetime,
    waiting_since: dt.datetime,
    retry_in: dt.timedelta,
    give_up_after: dt.timedelta,
) -> Decision:
    """Whether night `night` may run now, given the other unfinished runs of its warehouse.

    Only earlier business dates hold a night back (runs of the same date or later ones do not).
    It waits at most `give_up_after` from `waiting_since` (its first wait), retrying every
    `retry_in`, or until just after the earliest blocking run is due if that is later."""
    earlier = sorted(
        (other for other in others if other.business_date < night),
        key=lambda other: (other.business_date, other.expected_start),
    )
    if not earlier:
        return Proceed()
    names = "; ".join(other.describe() for other in earlier)
    deadline = waiting_since + give_up_after
    what_to_do = (
        f"Run the earlier night(s) first (or cancel them if they must not run), then run "
        f"{night.isoformat()} again."
    )
    too_late = [other for other in earlier if other.expected_start > deadline]
    if too_late:
        return GiveUp(
            f"night {night.isoformat()} cannot run in date order: earlier night "
            f"{too_late[0].describe()} is scheduled after this night's waiting limit "
            f"({deadline.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC). {what_to_do}"
        )
    if now >= deadline:
        return GiveUp(
            f"night {night.isoformat()} waited since "
            f"{waiting_since.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC for earlier night(s) that "
            f"have not finished: {names}. {what_to_do}"
        )
    due = min(other.expected_start for other in earlier)
    until = min(max(now + retry_in, due + retry_in), deadline)
    return Wait(
        until,
        f"night {night.isoformat()} waits for earlier night(s) {names}; "
        f"trying again at {until.astimezone(dt.UTC):%H:%M:%S} UTC",
    )


def night_of(run: FlowRun) -> dt.date | None:
    """The business date a run will use: its parameter, else the date (UTC) it was scheduled
    for. None when the parameter is not a date (that run fails on its own)."""
    value = (run.parameters or {}).get("business_date")
    text = "" if value is None else str(value).strip()
    if text:
        try:
            return parse_business_date(text)
        except ValueError:
            return None
    start = run.expected_start_time or run.created
    if start is None:
        return None
    return dt.datetime.fromtimestamp(start.timestamp(), dt.UTC).date()


def same_warehouse(run: FlowRun, warehouse: Path, settings: Settings) -> bool:
    """Whether `run` writes `warehouse`, however either path is spelled (a symlinked folder,
    `..`): relative paths are relative to the checkout, which is this run's working directory
    too; an empty path is the settings' default."""
    value = (run.parameters or {}).get("warehouse")
    text = "" if value is None else str(value).strip()
    return same_warehouse_path(Path(text or settings.warehouse), warehouse)


def other_nights(
    runs: Sequence[FlowRun], me: str, warehouse: Path, settings: Settings
) -> list[OtherNight]:
    """The runs that could commit a night to `warehouse`: not this one, not dry runs."""
    nights = []
    for run in runs:
        if str(run.id) == me or (run.parameters or {}).get("dry_run") is True:
            continue
        day = night_of(run)
        if day is None or not same_warehouse(run, warehouse, settings):
            continue
        start = run.expected_start_time or run.created or dt.datetime.now(dt.UTC)
        state = (run.state.name if run.state is not None else None) or "?"
        nights.append(OtherNight(str(run.id), run.name, state, day, start))
    return nights


def _waiting_since(states: Sequence[State[Any]], now: dt.datetime) -> dt.datetime:
    """When this run first waited (its first AwaitingEarlierNight/AwaitingWarehouse state)."""
    times = [state.timestamp for state in states if state.name in WAITING_STATES]
    return min(times) if times else now


def earlier_nights_first(params: RunParameters) -> None:
    """Returns when this night may run now. Otherwise reschedules the run (giving its slot
    back) and ends the process, or raises NightOutOfOrder when it cannot run in order.
    Runs outside a deployment (the `allocation` command) and dry runs are not ordered."""
    deployment = deployment_id()
    me = runtime.flow_run.id
    if not deployment or not me or params.dry_run:
        return
    settings = Settings()
    now = dt.datetime.now(dt.UTC)
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=NOT_FINISHED))
            ),
            limit=200,
        )
        history = client.read_flow_run_states(me)
    decision = decide(
        params.business_date,
        other_nights(runs, str(me), params.warehouse, settings),
        now=now,
        waiting_since=_waiting_since(history, now),
        retry_in=dt.timedelta(seconds=settings.order_retry_seconds),
        give_up_after=dt.timedelta(seconds=settings.order_max_wait_seconds),
    )
    if isinstance(decision, GiveUp):
        raise NightOutOfOrder(decision.message)
    if isinstance(decision, Wait):
        _continue_later(WAITING_FOR_EARLIER_NIGHT, decision.until, decision.message)


def wait_for_warehouse(params: RunParameters, holder: str) -> NoReturn:
    """For a deployment night that met the warehouse lock held by another run: reschedule it
    (giving its slot back) within the same waiting limit as for ordering, then NightOutOfOrder."""
    me = runtime.flow_run.id
    settings = Settings()
    now = dt.datetime.now(dt.UTC)
    since = now
    if me:
        with get_client(sync_client=True) as client:
            since = _waiting_since(client.read_flow_run_states(me), now)
    if now - since >= dt.timedelta(seconds=settings.order_max_wait_seconds):
        raise NightOutOfOrder(
            f"night {params.business_date.isoformat()} waited since "
            f"{since:%Y-%m-%d %H:%M} UTC for the warehouse: {holder}"
        )
    until = now + dt.timedelta(seconds=settings.order_retry_seconds)
    _continue_later(
        WAITING_FOR_WAREHOUSE,
        until,
        f"night {params.business_date.isoformat()} waits for the warehouse ({holder}); "
        f"trying again at {until:%H:%M:%S} UTC",
    )


def _continue_later(name: str, until: dt.datetime, message: str) -> NoReturn:
    """Moves this run from Running to a Scheduled state (the server releases its slot), then
    ends the flow's process cleanly."""
    me = runtime.flow_run.id
    assert me is not None
    log.warning("Rescheduled: %s", message)
    with get_client(sync_client=True) as client:
        result: OrchestrationResult[Any] = client.set_flow_run_state(
            me, Scheduled(scheduled_time=until, name=name, message=message)
        )
    if result.status != SetStateStatus.ACCEPT:  # e.g. cancelled meanwhile: leave it as it is
        raise Abort(f"could not reschedule the night: {result.details}")
    raise Pause(message, state=result.state)
