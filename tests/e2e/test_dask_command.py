"""`allocation run --task-runner dask --dask-address ADDR` from the command line, against a real
`dask scheduler` and `dask worker --nworkers 2` on loopback, started by the test and stopped
after it: the night completes, its shards run in the worker processes, and its reports are the
local runner's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from prefect.settings import get_current_settings
from test_deployment import free_port

from conftest import Site

pytestmark = [pytest.mark.e2e]

BIN = Path(sys.executable).parent
DAY = "2026-11-25"


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (a worker's nanny and its worker processes), then SIGKILL
    to whatever is left of it."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def env(prefect_harness: None, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "prefect-home"
    home.mkdir()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")},
        "PREFECT_API_URL": str(get_current_settings().api.url),
        "PREFECT_HOME": str(home),
        "ALLOCATION_INBOX_SETTLE_SECONDS": "0",  # the test writes its files just before
        "ALLOCATION_CHECKS": os.environ.get("ALLOCATION_CHECKS", ""),  # as conftest set them
    }


@pytest.fixture
def cluster(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """(scheduler address, the workers' log): a scheduler and two worker processes."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    scheduler = start(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
        tmp_path / "scheduler.log",
        env,
    )
    workers_log = tmp_path / "workers.log"
    workers = None
    try:
        worker = [str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1"]
        workers = start([*worker, "--host", "127.0.0.1", "--no-dashboard"], workers_log, env)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers_log
    finally:
        if workers is not None:
            stop(workers)
        stop(scheduler)


def a_night(site: Site) -> None:
    site.batches("b.csv", *[f"B-{n},SKU-{n % 40:02d},{n % 7}," for n in range(80)])
    site.orders("o.csv", *[f"o{n},SKU-{n % 40:02d},{1 + n % 3}" for n in range(400)])


def allocation_run(site: Site, env: dict[str, str], *extra: str) -> str:
    args = [
        str(BIN / "allocation"), "run",
        "--inbox", str(site.inbox),
        "--warehouse", str(site.warehouse),
        "--outbox", str(site.outbox),
        "--business-date", DAY,
    ]  # fmt: skip
    done = subprocess.run(
        [*args, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_command_allocates_on_a_dask_cluster_given_by_its_address(
    tmp_path: Path, env: dict[str, str], cluster: tuple[str, Path]
) -> None:
    address, workers_log = cluster
    on_dask, local = Site(tmp_path / "dask"), Site(tmp_path / "local")
    for site in (on_dask, local):
        a_night(site)

    output = allocation_run(on_dask, env, "--task-runner", "dask", "--dask-address", address)
    allocation_run(local, env)

    assert f"2 worker thread(s) on {address}" in output
    shard_lines = [line for line in workers_log.read_text().splitlines() if "Shard " in line]
    assert shard_lines, "the shards ran in the worker processes"
    for name in ("allocations", "out_of_stock"):
        placed = [{k: v for k, v in r.items() if k != "run_id"} for r in on_dask.report(DAY, name)]
        expected = [{k: v for k, v in r.items() if k != "run_id"} for r in local.report(DAY, name)]
        assert placed == expected, name
    assert len(on_dask.report(DAY, "allocations")) > 100
