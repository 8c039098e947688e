"""Issue 15 item 4: a night that crashes is retried once, by the flow's `on_crashed` hook, against
the session's temporary Prefect API (a deployment's flow run, driven through its states)."""

from __future__ import annotations

import datetime as dt

import pytest
from prefect import get_client
from prefect.states import Crashed, Running

from allocation.flows.nightly import nightly_allocation
from allocation.flows.recovery import CRASH_RETRY_DELAY, retry_crashed_night_once

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def test_a_crashed_deployment_night_is_rescheduled_once_then_left_crashed() -> None:
    assert retry_crashed_night_once in nightly_allocation.on_crashed_hooks
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(nightly_allocation.name)
        deployment_id = client.create_deployment(flow_id=flow_id, name="crash-retry-test")
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"business_date": "2026-11-25"}
        )
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Crashed(message="lease lost"), force=True)

        before = dt.datetime.now(dt.UTC)
        crashed = client.read_flow_run(run.id)
        assert crashed.state is not None
        retry_crashed_night_once(nightly_allocation, crashed, crashed.state)
        first = client.read_flow_run(run.id).state
        assert first is not None and first.name == "AwaitingRetry", first
        assert first.state_details.scheduled_time is not None
        assert first.state_details.scheduled_time >= before + CRASH_RETRY_DELAY
        assert "lease lost" in (first.message or "")

        # It runs again and crashes again: this time it stays Crashed.
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Crashed(message="again"), force=True)
        again = client.read_flow_run(run.id)
        assert again.state is not None
        retry_crashed_night_once(nightly_allocation, again, again.state)
        second = client.read_flow_run(run.id).state
        assert second is not None and second.type.value == "CRASHED", second


def test_a_crashed_run_outside_a_deployment_is_left_to_the_operator() -> None:
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(nightly_allocation.name)
        run = client.create_flow_run(nightly_allocation, parameters={})
        assert run.flow_id == flow_id
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Crashed(message="killed"), force=True)
        crashed = client.read_flow_run(run.id)
        assert crashed.state is not None
        retry_crashed_night_once(nightly_allocation, crashed, crashed.state)
        state = client.read_flow_run(run.id).state
    assert state is not None and state.type.value == "CRASHED"
