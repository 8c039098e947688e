"""One Prefect stack for the operator's e2e modules (test_interrupts.py, test_operations.py,
test_server_restart.py): `make server` on a free loopback port with a temporary PREFECT_HOME,
`make deploy` (paused: no real 02:30 night during the tests), and `make worker`s, each in its own
process group.

Each module used to start a stack of its own: ~45 CPU-s each (the server's start-up and
migrations, `make deploy`, the workers' start) on a 2-core machine whose whole suite is
CPU-bound. The three modules now run on one pytest-xdist worker, one after the other (one unit
of pytest-xdist's work: tests/conftest.py's scheduler and `SHARED_STACK_MODULES`); this stack
is started by the first of their tests that asks for it and stopped once the last of them has
run (`close_after`). Each module says how many workers it needs (`SharedOps.get(...,
workers=n)`); every night a test creates names its own warehouse under its own tmp_path, so the
modules share nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import SyncPrefectClient
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

from conftest import REPO, SHARED_STACK_MODULES

WORKER_ENV = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",  # pick runs up quickly
    # A night waiting for an earlier one tries again 6 s later: well after a night refused the
    # slot asks again (1 s, `_server_env`), as in production (120 s against Prefect's 30 s). At
    # 3 s against 2 s the earliest night, refused while a later one held the slot to find out
    # it must wait, lost the slot to the later nights again and again (180 s once, under load).
    "ALLOCATION_ORDER_RETRY_SECONDS": "6",
    "ALLOCATION_LOCK_TIMEOUT_SECONDS": "240",  # a night stays Running while a test holds the lock
}


@dataclass
class Ops:
    api_url: str
    env: dict[str, str]
    root: Path
    deployment_id: UUID
    workers: list[Service] = field(default_factory=list)
    started: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def client(self) -> SyncPrefectClient:
        return SyncPrefectClient(self.api_url)

    def start_worker(self) -> Service:
        self.started += 1
        name = f"worker-{self.started}"
        worker = start(
            name,
            [*MAKE, "worker"],
            cwd=REPO,
            # Deployment runs may only use paths inside the data roots: here pytest's folders.
            env={**self.env, **WORKER_ENV, "ALLOCATION_DATA_ROOTS": str(self.root.parent)},
            log=self.root / f"{name}.log",
        )
        self.workers.append(worker)
        return worker

    def use_workers(self, count: int) -> None:
        """Starts or stops workers (the newest first) until `count` run."""
        while len(self.workers) < count:
            self.start_worker()
        while len(self.workers) > count:
            worker = self.workers.pop()
            print(f"{worker.name}: {stop(worker, WORKER_GRACE)}")

    def logs(self) -> str:
        return "\n".join(worker.tail(30) for worker in self.workers)


class SharedOps:
    """The stack, started on first use and stopped by `close` (idempotent)."""

    def __init__(self) -> None:
        self.ops: Ops | None = None
        self.server: Service | None = None
        self.port = 0
        self.servers_started = 0

    def get(self, factory: pytest.TempPathFactory, *, workers: int) -> Ops:
        if self.ops is None:
            self.ops = self._start(factory)
        self.ops.use_workers(workers)
        return self.ops

    def _server_env(self, home: Path) -> dict[str, str]:
        # Queued runs ask for the slot again every 1 s instead of 30 s: a faster test only.
        return {**clean_env(home), "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "1"}

    def _start_server(self, root: Path, home: Path) -> Service:
        self.servers_started += 1
        self.server = start(
            "server",
            [*MAKE, "server", f"PREFECT_PORT={self.port}"],
            cwd=REPO,
            env=self._server_env(home),
            log=root / f"server-{self.servers_started}.log",
        )
        # More patience than the default: on a loaded machine a fresh server took over 90 s.
        wait_healthy(self.server, f"http://127.0.0.1:{self.port}/api", timeout=300.0)
        return self.server

    def _start(self, factory: pytest.TempPathFactory) -> Ops:
        root = factory.mktemp("prefect-ops")
        home = root / "prefect-home"
        home.mkdir()
        self.port = free_port()
        api_url = f"http://127.0.0.1:{self.port}/api"
        tick = time.monotonic()
        self._start_server(root, home)
        env = {**clean_env(home), "PREFECT_API_URL": api_url}
        # make deploy applies every automations/*.yaml, the silent-night one included (the
        # docs used to add it again by hand: a second copy that fired too).
        deployed = make("deploy", env)
        assert "automation 'crash-silent-night' (crash-silent-night.yaml): created" in (
            deployed.stdout
        ), deployed.stdout
        with SyncPrefectClient(api_url) as client:
            assert len(client.read_automations_by_name("crash-silent-night")) == 1
            deployment = client.read_deployment_by_name(DEPLOYMENT)
            client.pause_deployment(deployment.id)  # no real 02:30 night during the tests
        ops = Ops(api_url, env, root, deployment.id)
        ops.timings["stack up"] = time.monotonic() - tick
        return ops

    def restart_server(self) -> None:
        """Stops the server and starts it again on the same port and PREFECT_HOME."""
        assert self.ops is not None and self.server is not None
        print(f"server: {stop(self.server, SERVER_GRACE)}")
        self._start_server(self.ops.root, Path(self.ops.env["PREFECT_HOME"]))

    def close(self) -> None:
        ops, server = self.ops, self.server
        self.ops = self.server = None
        for worker in ops.workers if ops else []:
            print(f"{worker.name}: {stop(worker, WORKER_GRACE)}")
        if server is not None:
            print(f"server: {stop(server, SERVER_GRACE)}")
        if ops:
            print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in ops.timings.items()))


SHARED = SharedOps()


def close_after(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stops the stack once `item`, of one of its modules, is followed by a test of none."""
    if item.path.name in SHARED_STACK_MODULES and (
        nextitem is None or nextitem.path.name not in SHARED_STACK_MODULES
    ):
        SHARED.close()
