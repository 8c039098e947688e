"""Issue 15 item 4: a Prefect server restart does not end a night that is running.

The operators' shared stack (ops_stack.py: `make server`, `make deploy`) with one `make worker`;
the server restarts on the same port and PREFECT_HOME. A running night renews its deployment's
concurrency lease every 225 s; with Prefect's default in-memory lease storage the first renewal
after a restart got "410 Gone" and the night was terminated. The test makes that renewal itself
right after the restart (the event it waits for is the restarted server's health, never a span
of time), then lets the night finish.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ops_stack import SHARED, Ops
from prefect.client.schemas.objects import StateType
from test_operations import (
    create_run,
    final,
    held_lock,
    ledger,
    parameters,
    run_logs,
    running,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(360)]


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Ops:
    """The shared stack (ops_stack.py) with one worker; this module runs last of its three."""
    return SHARED.get(tmp_path_factory, workers=1)


def test_a_night_running_across_a_server_restart_completes(ops: Ops, tmp_path: Path) -> None:
    night = parameters(tmp_path, "2026-11-25")
    warehouse = Path(night["warehouse"])
    with held_lock(warehouse):  # the night stays Running, renewing its lease
        run_id = create_run(ops, night)
        wait_for(ops, run_id, running, "Running", timeout=90)
        tick = time.monotonic()
        SHARED.restart_server()  # on the same port and PREFECT_HOME
        ops.timings["server restart"] = time.monotonic() - tick
        # The night renews its deployment's concurrency lease (Prefect's flow engine asks for
        # 300 s every 225 s): make that renewal now, on the restarted server, instead of waiting
        # for it. With Prefect's default in-memory lease storage the lease is gone after a
        # restart: "410 Gone", and the engine terminates the night.
        with ops.client() as client:
            state = client.read_flow_run(run_id).state
            lease = state.state_details.deployment_concurrency_lease_id if state else None
            assert lease is not None, "the night holds no deployment concurrency lease"
            client.renew_concurrency_lease(lease_id=lease, lease_duration=300)
    run = wait_for(ops, run_id, final, "final")

    assert run.state is not None and run.state.type == StateType.COMPLETED, (
        f"{run.state}\n{run_logs(ops, run_id)}"
    )
    assert ledger(warehouse) == [("2026-11-25", str(run_id))]
