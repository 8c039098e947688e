"""Queued nights named by their business date from the moment they are in the list.

The flow names its run `night-<business date>` (`flow_run_name`), but Prefect 3.9 applies that
template only when a worker starts the run: a run the scheduler creates, or one created from the
UI's form, carries a random name ("satisfied-rooster") while it is Scheduled, Late or waiting for
the concurrency slot, so queued nights cannot be told apart. Prefect has no name template for a
deployment's scheduled runs, so the names are set through the API:

- `make deploy` asks the server to schedule the deployment's runs now (the same runs, with the
  same idempotency keys, that its scheduler service would create within a minute) and names every
  scheduled run (`python -m allocation.flows.naming`);
- every night, as it starts, names the deployment's other queued runs (the scheduler adds one
  run a day, a few days ahead; a run created from the UI meanwhile gets its name then).

What is left (Prefect is the limit): a run created between two nights (from the UI's form, or
the scheduler's new far run) keeps its random name until the next night starts or the next
`make deploy`. `prefect deployment run --flow-run-name 'night-DATE'` (and `make night`) names a
run at creation.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from uuid import UUID

from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType

from allocation.flows.ordering import NOT_FINISHED, night_of

log = logging.getLogger("allocation")

DEPLOYMENT = "nightly-allocation/nightly"


def night_run_name(run: FlowRun) -> str | None:
    """The name the flow gives this run when it starts (`night-2026-11-27`, ` (dry run)`
    appended); None when its business date is not a date (that run fails on its own)."""
    day = night_of(run)
    if day is None:
        return None
    dry = " (dry run)" if (run.parameters or {}).get("dry_run") is True else ""
    return f"night-{day.isoformat()}{dry}"


def name_queued_nights(client: SyncPrefectClient, runs: Iterable[FlowRun]) -> list[str]:
    """Renames each run whose name is not a night's name (Prefect's random names); a run
    already named `night-...` is left as it is. Returns the new names."""
    named = []
    for run in runs:
        name = night_run_name(run)
        if name is None or run.name.startswith("night-"):
            continue
        client.update_flow_run(run.id, name=name)
        named.append(name)
    return named


def queued_runs(client: SyncPrefectClient, deployment_id: UUID) -> list[FlowRun]:
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=NOT_FINISHED))
        ),
        limit=200,
    )


def name_the_queue(deployment_id: UUID) -> None:
    """Best effort, from a night as it starts: a failure is logged, never fails the night."""
    try:
        with get_client(sync_client=True) as client:
            named = name_queued_nights(client, queued_runs(client, deployment_id))
    except Exception as error:
        log.warning("Queued nights not named by their business date: %s", error)
        return
    if named:
        log.info("Named %d queued night(s) by business date: %s", len(named), ", ".join(named))


def schedule_and_name(deployment: str = DEPLOYMENT) -> tuple[list[str], str]:
    """For `make deploy`: the deployment's scheduled runs created now and named; and a line
    saying whose the deployment's concurrency limit is (the UI names it by an id only)."""
    with get_client(sync_client=True) as client:
        found = client.read_deployment_by_name(deployment)
        limit = found.global_concurrency_limit
        owner = (
            f"concurrency limit {limit.name} (limit {limit.limit}) is {deployment}'s"
            if limit is not None
            else f"{deployment} has no concurrency limit"
        )
        if found.paused is not True and found.schedules:
            client.request(
                "POST", "/deployments/{id}/schedule", path_params={"id": found.id}, json={}
            )
        runs = [
            run
            for run in queued_runs(client, found.id)
            if run.state is not None and run.state.type == StateType.SCHEDULED
        ]
        return name_queued_nights(client, runs), owner


def main() -> int:
    named, owner = schedule_and_name()
    print(owner)
    print(
        f"scheduled nights named by business date: {', '.join(sorted(named))}"
        if named
        else "scheduled nights: every one already named by its business date"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
