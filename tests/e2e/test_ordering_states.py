"""Issue 15 items 1 and 2: the Prefect side of night ordering, against the session's temporary
Prefect API: a deployment night that finds an earlier night pending (or the warehouse lock held)
moves itself to a named Scheduled state that says why, and fails once it has waited too long."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from prefect import get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.exceptions import Pause
from prefect.states import Completed, Pending, Running

from allocation.flows import ordering
from allocation.settings import RunParameters

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def client() -> Iterator[SyncPrefectClient]:
    with get_client(sync_client=True) as opened:
        yield opened


@pytest.fixture
def deployment(client: SyncPrefectClient) -> UUID:
    flow_id = client.create_flow_from_name("nightly-allocation")
    return client.create_deployment(flow_id=flow_id, name=f"ordering-{uuid4().hex[:8]}")


def night(client: SyncPrefectClient, deployment: UUID, warehouse: Path, day: str) -> UUID:
    run = client.create_flow_run_from_deployment(
        deployment, parameters={"warehouse": str(warehouse), "business_date": day}
    )
    return run.id


def start(client: SyncPrefectClient, run_id: UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the worker and the engine do; `prefect.runtime` then sees this run."""
    client.set_flow_run_state(run_id, Pending(), force=True)
    client.set_flow_run_state(run_id, Running(), force=True)
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", str(run_id))


def params(tmp_path: Path, day: str) -> RunParameters:
    return RunParameters.build(
        inbox=tmp_path / "inbox",
        warehouse=tmp_path / "warehouse.duckdb",
        outbox=tmp_path / "outbox",
        business_date=day,
    )


def test_a_night_waits_visibly_for_an_earlier_pending_night_then_runs(
    client: SyncPrefectClient, deployment: UUID, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    earlier = night(client, deployment, warehouse, "2026-11-25")
    later = night(client, deployment, warehouse, "2026-11-26")
    start(client, later, monkeypatch)

    with pytest.raises(Pause):  # the engine ends the process quietly on this signal
        ordering.earlier_nights_first(params(tmp_path, "2026-11-26"))

    waiting = client.read_flow_run(later).state
    assert waiting is not None and waiting.name == "AwaitingEarlierNight"
    assert waiting.is_scheduled()
    assert f"night-2026-11-25 (run {earlier}" in (waiting.message or "")

    client.set_flow_run_state(earlier, Completed(), force=True)
    start(client, later, monkeypatch)
    ordering.earlier_nights_first(params(tmp_path, "2026-11-26"))  # no earlier night left: runs
    assert client.read_flow_run(later).state.name == "Running"  # type: ignore[union-attr]


def test_a_night_that_waited_too_long_fails_saying_what_to_run_first(
    client: SyncPrefectClient, deployment: UUID, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    night(client, deployment, warehouse, "2026-11-25")
    later = night(client, deployment, warehouse, "2026-11-26")
    start(client, later, monkeypatch)
    monkeypatch.setenv("ALLOCATION_ORDER_MAX_WAIT_SECONDS", "0")

    with pytest.raises(ordering.NightOutOfOrder, match="Run the earlier night"):
        ordering.earlier_nights_first(params(tmp_path, "2026-11-26"))


def test_a_night_that_meets_the_warehouse_lock_reschedules_itself_instead_of_failing(
    client: SyncPrefectClient, deployment: UUID, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = night(client, deployment, tmp_path / "warehouse.duckdb", "2026-11-25")
    start(client, run_id, monkeypatch)
    holder = "the warehouse is being written by run 1f0c (PID 48213, ...)"

    with pytest.raises(Pause):
        ordering.wait_for_warehouse(params(tmp_path, "2026-11-25"), holder)

    waiting = client.read_flow_run(run_id).state
    assert waiting is not None and waiting.name == "AwaitingWarehouse"
    assert holder in (waiting.message or "")

    # Started again, the lock still held, and the waiting limit spent: it fails, visibly.
    start(client, run_id, monkeypatch)
    monkeypatch.setenv("ALLOCATION_ORDER_MAX_WAIT_SECONDS", "0")
    with pytest.raises(ordering.NightOutOfOrder, match="for the warehouse"):
        ordering.wait_for_warehouse(params(tmp_path, "2026-11-25"), holder)


def test_dry_runs_are_never_held_back(
    client: SyncPrefectClient, deployment: UUID, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    night(client, deployment, warehouse, "2026-11-25")
    later = night(client, deployment, warehouse, "2026-11-26")
    start(client, later, monkeypatch)
    dry = RunParameters.build(
        inbox=tmp_path,
        warehouse=warehouse,
        outbox=tmp_path,
        business_date="2026-11-26",
        dry_run=True,
    )
    ordering.earlier_nights_first(dry)  # returns: a dry run commits nothing
