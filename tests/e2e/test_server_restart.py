"""Issue 15 item 4: a Prefect server restart does not end a night that is running.

Its own stack (the server must restart on the same port and PREFECT_HOME): `make server`,
`make deploy`, one `make worker`. The deployment's concurrency lease lasts 30 s here instead of
300 s, so the night renews it every ~22 s and a renewal falls after the restart within a short
test; with Prefect's default in-memory lease storage that renewal got "410 Gone" and the night
was terminated. Teardown stops the worker, then the server.
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

LEASE_SECONDS = "30"  # the minimum Prefect accepts


def start_server(port: int, env: dict[str, str], root: Path, attempt: int) -> Service:
    return start(
        "server",
        [*MAKE, "server", f"PREFECT_PORT={port}"],
        cwd=REPO,
        env={**env, "PREFECT_SERVER_CONCURRENCY_INITIAL_DEPLOYMENT_LEASE_DURATION": LEASE_SECONDS},
        log=root / f"server-{attempt}.log",
    )


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
        # The night renews its lease every 0.75 x 30 s from its start: at least one renewal
        # falls in the next 30 s, after the restart.
        time.sleep(float(LEASE_SECONDS))
    run = wait_for(ops, run_id, final, "final")

    assert run.state is not None and run.state.type == StateType.COMPLETED, (
        f"{run.state}\n{run_logs(ops, run_id)}"
    )
    assert ledger(warehouse) == [("2026-11-25", str(run_id))]
