"""The flow refuses a business date earlier than the last committed night, as the CLI does."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.states import State

from allocation.flows.nightly import nightly_allocation
from allocation.settings import ParameterError
from conftest import Site

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


def run_flow(site: Site, day: str) -> State[Any]:
    state: State[Any] = nightly_allocation(
        inbox=str(site.inbox),
        warehouse=str(site.warehouse),
        outbox=str(site.outbox),
        business_date=day,
        return_state=True,
    )
    return state


def test_the_flow_refuses_an_earlier_date_before_reading_the_inbox(site: Site) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,1,")
    site.orders("o1.csv", "o1,RETRO-CLOCK,1", "o2,RETRO-CLOCK,1")
    site.run("2026-11-26")
    site.orders("o3.csv", "o3,RETRO-CLOCK,1")

    state = run_flow(site, "2026-11-25")

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, ParameterError)
    assert "earlier than the last committed night 2026-11-26" in str(error)
    assert site.query("SELECT count(*) FROM runs") == [(1,)]
    assert site.query("SELECT count(*) FROM order_lines WHERE orderid = 'o3'") == [(0,)]
