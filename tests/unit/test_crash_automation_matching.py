"""Which events the silent-night automation counts, by the Prefect server's own matching:
heartbeats and states of the nightly flow's deployment runs, never a run of `allocation run`
(it sends no heartbeats, so with PREFECT_API_URL exported the old automation marked it Crashed
90 s after it started)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import yaml
from prefect.server.events.schemas.automations import AutomationCore
from prefect.server.events.schemas.events import ReceivedEvent

from conftest import REPO

TRIGGER = AutomationCore.model_validate(
    yaml.safe_load((REPO / "automations" / "crash-silent-night.yaml").read_text("utf-8"))
).trigger
FLOW = {
    "prefect.resource.id": f"prefect.flow.{uuid.uuid4()}",
    "prefect.resource.role": "flow",
    "prefect.resource.name": "nightly-allocation",
}
DEPLOYMENT_ID = f"prefect.deployment.{uuid.uuid4()}"
# A heartbeat names its deployment by id only (Prefect 3.9's engine); a state change by name too.
HEARTBEAT_DEPLOYMENT = {"prefect.resource.id": DEPLOYMENT_ID, "prefect.resource.role": "deployment"}
STATE_DEPLOYMENT = {**HEARTBEAT_DEPLOYMENT, "prefect.resource.name": "nightly"}


def event(name: str, *related: dict[str, str]) -> ReceivedEvent:
    return ReceivedEvent(
        event=name,
        resource={"prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}"},
        related=list(related),
        id=uuid.uuid4(),
        occurred=dt.datetime.now(dt.UTC),
    )


@pytest.mark.parametrize(
    ("seen", "counted"),
    [
        (event("prefect.flow-run.heartbeat", FLOW, HEARTBEAT_DEPLOYMENT), True),
        (event("prefect.flow-run.Running", FLOW, STATE_DEPLOYMENT), True),
        (event("prefect.flow-run.Running", FLOW), False),  # allocation run: no deployment
        (event("prefect.flow-run.Running", {**FLOW, "prefect.resource.name": "other"}), False),
    ],
    ids=["deployment-heartbeat", "deployment-running", "cli-run", "another-flow"],
)
def test_only_the_nightly_deployment_runs_are_watched(seen: ReceivedEvent, counted: bool) -> None:
    assert TRIGGER.covers(seen) is counted


def test_its_card_says_it_watches_only_the_nightly_deployment_runs() -> None:
    """The UI's card reads "any flow run" whatever the trigger matches: the description, which
    the card shows first, says which runs it watches."""
    described = yaml.safe_load(
        (REPO / "automations" / "crash-silent-night.yaml").read_text("utf-8")
    )
    description = " ".join(described["description"].split())
    assert "Only runs of the nightly-allocation flow's deployments" in description
    assert "not every flow run" in description
