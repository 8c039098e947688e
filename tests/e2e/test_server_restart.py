"""Issue 15 item 4: a Prefect server restart does not end a night that is running.

Its own stack (the server must restart on the same port and PREFECT_HOME): `make server`,
`make deploy`, one `make worker`. A running night renews its deployment's concurrency lease
every 225 s; with Prefect's default in-memory lease storage the first renewal after a restart
got "410 Gone" and the night was terminated. The test makes that renewal itself right after the
restart (the event it waits for is the restarted server's health, never a span of time), then
lets the night finish. Teardown stops the worker, then the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import StateType
from test_deployment import (
    DEPLOYMENT,
    MAKE,
    SERVER_GRACE,
    WORKER_GRACE,
    Service,
    clean_env,
    free_port,
    make,
    start,
    stop,
    wait_healthy,
)
from test_operations import (
    Ops,
    create_run,
    final,
    held_lock,
    ledger,
    parameters,
    run_logs,
    running,
    wait_for,
)

from conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(360)]


def start_server(port: int, env: dict[str, str], root: Path, attempt: int) -> Service:
    return start(
        "server", [*MAKE, "server", f"PREFECT_PORT={port}"], cwd=REPO, env=env,
        log=root / f"server-{attempt}.log",
    )  # fmt: skip


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ops, list[Service]]]:
    root = tmp_path_factory.mktemp("prefect-restart")
    home = root / "prefect-home"
    home.mkdir()
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = clean_env(home)
    servers: list[Service] = []
    stack: Ops | None = None
    try:
        servers.append(start_server(port, env, root, 1))
        wait_healthy(servers[-1], api_url)
        env = {**env, "PREFECT_API_URL": api_url}
        make("deploy", env)
        with SyncPrefectClient(api_url) as client:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
            client.pause_deployment(deployment.id)
        stack = Ops(api_url, env, root, deployment.id)
        stack.start_worker()
        yield stack, servers
    finally:
        for worker in stack.workers if stack else []:
            print(f"{worker.name}: {stop(worker, WORKER_GRACE)}")
        for server in servers:
            print(f"server: {stop(server, SERVER_GRACE)}")


def test_a_night_running_across_a_server_restart_completes(
    restartable: tuple[Ops, list[Service]], tmp_path: Path
) -> None:
    ops, servers = restartable
    night = parameters(tmp_path, "2026-11-25")
    warehouse = Path(night["warehouse"])
    port = int(ops.api_url.rsplit(":", 1)[1].split("/")[0])
    with held_lock(warehouse):  # the night stays Running, renewing its lease
        run_id = create_run(ops, night)
        wait_for(ops, run_id, running, "Running", timeout=90)
        tick = time.monotonic()
        print(f"server: {stop(servers[-1], SERVER_GRACE)}")
        servers.append(start_server(port, clean_env(Path(ops.env["PREFECT_HOME"])), ops.root, 2))
        wait_healthy(servers[-1], ops.api_url)
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
