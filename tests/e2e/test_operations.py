"""Issue 15 end to end: operating the deployment as an unlucky operator would.

The operators' shared stack (ops_stack.py: `make server` with leases kept on disk, `make deploy`
with the silent-night automation applied from its file) with TWO `make worker`s, each in its own
process group. Nights are triggered out of order, workers and flow processes are killed with
SIGKILL, and the warehouse's ledger says what happened.

Each test holds the warehouse's run lock itself (`held_lock`) when it needs a night to stay
Running: the night waits for the lock, alive and sending heartbeats, until the test lets go.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import pytest
from ops_stack import SHARED, Ops
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import LogSort
from prefect.states import Scheduled
from test_deployment import (
    DEPLOYMENT,
    MAKE,
    Service,
    clean_env,
    make,
)

from allocation.settings.state_folder import StateFolder
from conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(420)]

RUN_TIMEOUT = 180.0
# The shipped automation crashes a run 90 s after its last heartbeat (one every 30 s).
CRASH_DETECTION_LIMIT = 200.0


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Ops:
    """The shared stack (ops_stack.py) with TWO workers: a killed worker's night, and nights
    that two workers could run at once."""
    return SHARED.get(tmp_path_factory, workers=2)


def write_night(inbox: Path, day: str) -> None:
    """A small night of its own: one batch of RETRO-CLOCK (the same row every night, a
    duplicate after the first) and two order lines named after the night."""
    (inbox / "batches").mkdir(parents=True)
    (inbox / "orders").mkdir(parents=True)
    (inbox / "batches" / "stock.csv").write_text("reference,sku,qty,eta\nb1,RETRO-CLOCK,100,\n")
    (inbox / "orders" / f"{day}.csv").write_text(
        f"orderid,sku,qty\n{day}-a,RETRO-CLOCK,1\n{day}-b,RETRO-CLOCK,2\n"
    )


def parameters(tmp_path: Path, day: str) -> dict[str, Any]:
    inbox = tmp_path / f"inbox-{day}"
    if not inbox.exists():
        write_night(inbox, day)
    return {
        "inbox": str(inbox),
        "warehouse": str(tmp_path / "warehouse.duckdb"),
        "outbox": str(tmp_path / "outbox"),
        "business_date": day,
    }


def create_run(ops: Ops, params: dict[str, Any], *, at: dt.datetime | None = None) -> UUID:
    with ops.client() as client:
        state = Scheduled(scheduled_time=at) if at else None
        run = client.create_flow_run_from_deployment(
            ops.deployment_id, parameters=params, state=state
        )
    return run.id


def wait_for(ops: Ops, run_id: UUID, done: Any, what: str, timeout: float = RUN_TIMEOUT) -> FlowRun:
    deadline = time.monotonic() + timeout
    with ops.client() as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(run_id)
            if done(run):
                return run
            time.sleep(0.5)
    pytest.fail(f"flow run {run_id} not {what} after {timeout:.0f}s\n{ops.logs()}")


def run_logs(ops: Ops, run_id: UUID) -> str:
    """The run's log lines as the server holds them (the worker does not relay its output)."""
    with ops.client() as client:
        lines = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
            limit=200,
            sort=LogSort.TIMESTAMP_DESC,
        )[::-1]
    noise = ("submitting flow run", "Aborted submission")  # a queued run offered to the workers
    kept = [line for line in lines if not any(word in line.message for word in noise)]
    return "\n".join(f"{line.level} {line.message}" for line in kept[-60:])


def running_periods(ops: Ops, run_id: UUID) -> list[tuple[dt.datetime, dt.datetime]]:
    """(entered Running, left Running) for each time the run was Running."""
    with ops.client() as client:
        states = sorted(client.read_flow_run_states(run_id), key=lambda state: state.timestamp)
    return [
        (state.timestamp, following.timestamp)
        for state, following in itertools.pairwise(states)
        if state.type == StateType.RUNNING
    ]


def final(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


def running(run: FlowRun) -> bool:
    return run.state is not None and run.state.type == StateType.RUNNING


def ledger(warehouse: Path) -> list[tuple[Any, ...]]:
    """The committed nights in commit order, from the pipeline's own state."""
    con = duckdb.connect(str(StateFolder.beside(warehouse).state_db), read_only=True)
    try:
        return con.sql(
            "SELECT business_date::VARCHAR, run_id FROM runs ORDER BY finished_at"
        ).fetchall()
    finally:
        con.close()


@contextlib.contextmanager
def held_lock(warehouse: Path) -> Iterator[None]:
    """Holds the warehouse's run lock as another writer would (e.g. a manual `allocation run`)."""
    path = StateFolder.beside(warehouse).run_lock
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, json.dumps({"run_id": "the test", "pid": os.getpid()}).encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def flow_processes(run_id: UUID) -> list[int]:
    """The PIDs of the processes running flow run `run_id` (found by their environment)."""
    needle = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def parent_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1])


def worker_process(worker: Service, pid: int) -> int:
    """The `prefect worker` process of `worker` (the child of its `make`) that `pid` runs under."""
    while pid > 1:
        parent = parent_of(pid)
        if parent == worker.process.pid:
            return pid
        pid = parent
    pytest.fail("the flow process does not run under this worker")


def process_state(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/status").read_bytes()
    return b""


def worker_of(ops: Ops, pid: int) -> Service:
    """The worker (of this stack) whose process tree runs `pid`."""
    by_pid = {worker.process.pid: worker for worker in ops.workers}
    while pid > 1:
        if pid in by_pid:
            return by_pid[pid]
        pid = parent_of(pid)
    pytest.fail("the flow process belongs to none of the test's workers")


def running_night(ops: Ops, run_id: UUID) -> tuple[list[int], Service]:
    """Waits for flow run `run_id` to be Running, then finds the processes running it and the
    worker (of this stack) that started them."""
    wait_for(ops, run_id, running, "Running", timeout=90)
    deadline = time.monotonic() + 30
    while not (pids := flow_processes(run_id)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pids, "no process runs the night"
    return pids, worker_of(ops, pids[0])


def test_nights_triggered_out_of_order_commit_in_date_order(ops: Ops, tmp_path: Path) -> None:
    days = ["2026-11-25", "2026-11-26", "2026-11-27"]
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    # The latest night is due first, the earlier two a little later (further than the worker's
    # 10 s prefetch): the latest night runs alone while they are still pending, and must wait for
    # them, visibly. (Due a second apart, all three reached the queue together and the slot went
    # to any of them: when the earliest happened to win it, nothing had to wait.)
    due = {days[2]: 0, days[1]: 12, days[0]: 13}
    runs = {
        day: create_run(ops, parameters(tmp_path, day), at=soon + dt.timedelta(seconds=due[day]))
        for day in reversed(days)
    }
    tick = time.monotonic()
    ended = {day: wait_for(ops, run_id, final, "final") for day, run_id in runs.items()}
    ops.timings["three nights out of order"] = time.monotonic() - tick

    for day, run in ended.items():
        assert run.state is not None and run.state.type == StateType.COMPLETED, (
            f"{day}: {run.state}\n{run_logs(ops, run.id)}"
        )
    warehouse = tmp_path / "warehouse.duckdb"
    assert ledger(warehouse) == [(day, str(runs[day])) for day in days]
    # Each night's lines were allocated under its own date.
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        placed = con.sql("SELECT orderid, business_date::VARCHAR FROM allocations").fetchall()
    finally:
        con.close()
    assert sorted(placed) == sorted((f"{day}-{x}", day) for day in days for x in "ab")
    # The latest night waited, visibly: a state naming the earlier nights it waited for.
    with ops.client() as client:
        history = client.read_flow_run_states(runs["2026-11-27"])
    waits = [state for state in history if state.name == "AwaitingEarlierNight"]
    assert waits, [(state.name, state.message) for state in history]
    assert "night-2026-11-2" in (waits[0].message or "")


def test_a_killed_night_frees_its_slot_once_and_the_next_nights_never_overlap(
    ops: Ops, tmp_path: Path
) -> None:
    night = parameters(tmp_path, "2026-11-25")
    warehouse = Path(night["warehouse"])
    with held_lock(warehouse):
        dead = create_run(ops, night)
        pids, worker = running_night(ops, dead)
        # Worker and night die at once (kill -9), as on a lost host: nobody reports anything.
        os.killpg(worker.process.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        worker.process.wait(timeout=10)
        ops.workers.remove(worker)
        ops.start_worker()  # the stack keeps two workers

        crashed = wait_for(
            ops,
            dead,
            lambda run: run.state is not None and run.state.type == StateType.CRASHED,
            "Crashed",
            timeout=CRASH_DETECTION_LIMIT,
        )
    ops.timings["killed night marked Crashed (slot freed)"] = time.monotonic() - killed
    assert crashed.state is not None and "heartbeat" in (crashed.state.message or "")
    with ops.client() as client:
        limit = client.read_deployment(ops.deployment_id).global_concurrency_limit
    assert limit is not None and limit.active_slots == 0
    # Released once, through its lease: no lease is left for the server to expire and release
    # a second time (the double release that let two nights run at once).
    leases = Path(ops.env["PREFECT_HOME"]) / "concurrency_leases"  # `make server` keeps them here
    assert leases.is_dir()
    assert [p.name for p in leases.glob("*.json") if p.name != "expirations.json"] == []

    # The dead night again and the next one, triggered together: one at a time, in order.
    again = create_run(ops, night)
    after = create_run(ops, parameters(tmp_path, "2026-11-26"))
    done = [wait_for(ops, run_id, final, "final") for run_id in (again, after)]
    for run in done:
        assert run.state is not None and run.state.type == StateType.COMPLETED, run.state
    # Every stretch one of them spent Running is clear of every stretch of the other (a night
    # that waited for the earlier one has several).
    ran = [running_periods(ops, run_id) for run_id in (again, after)]
    assert all(ran), ran
    for start_a, end_a in ran[0]:
        for start_b, end_b in ran[1]:
            assert end_a <= start_b or end_b <= start_a, f"two nights ran at once: {ran}"
    assert [day for day, _ in ledger(warehouse)] == ["2026-11-25", "2026-11-26"]


def test_killing_only_the_worker_lets_the_night_finish_and_publish(
    ops: Ops, tmp_path: Path
) -> None:
    night = parameters(tmp_path, "2026-11-25")
    warehouse, outbox = Path(night["warehouse"]), Path(night["outbox"])
    with held_lock(warehouse):
        run_id = create_run(ops, night)
        pids, worker = running_night(ops, run_id)
        # The worker alone: the `prefect worker` process under `make worker` (killing `make`
        # would leave the real worker running), not the night it started.
        process = worker_process(worker, pids[0])
        os.kill(process, signal.SIGKILL)
        worker.process.wait(timeout=10)  # make ends with its recipe's process
        assert not Path(f"/proc/{process}").exists() or b"zombie" in process_state(process)
        ops.workers.remove(worker)
        time.sleep(1)
    # The lock is free: the night goes on, and logs every step, with no worker to read its pipe.
    run = wait_for(ops, run_id, final, "final")
    ops.start_worker()

    assert run.state is not None and run.state.type == StateType.COMPLETED, run.state
    assert ledger(warehouse) == [("2026-11-25", str(run_id))]
    summary = json.loads((outbox / "2026-11-25" / "summary.json").read_text(encoding="utf-8"))
    assert summary["run_id"] == str(run_id) and summary["allocated"] == 2
    assert (outbox / "latest").resolve() == (outbox / "2026-11-25").resolve()
    con = duckdb.connect(str(warehouse), read_only=True)  # published: the analysts' copy
    try:
        assert con.sql("SELECT count(*) FROM runs").fetchall() == [(1,)]
    finally:
        con.close()


def snapshot(paths: list[Path]) -> dict[str, tuple[int, int] | None]:
    """Size and modification time of every file under `paths` (None: absent)."""
    seen: dict[str, tuple[int, int] | None] = {}
    for path in paths:
        if not path.exists():
            seen[str(path)] = None
            continue
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            info = item.lstat()
            seen[str(item)] = (info.st_size, info.st_mtime_ns)
    return seen


def test_make_run_leaves_the_deployments_warehouse_and_outbox_untouched(tmp_path: Path) -> None:
    data = REPO / "data"
    deployment_paths = [
        data / "warehouse.duckdb",
        data / ".warehouse.duckdb.pipeline",
        data / "outbox",
    ]
    before = snapshot(deployment_paths)
    env = clean_env(tmp_path / "prefect-home")  # no PREFECT_API_URL: its own temporary server
    done = subprocess.run(
        [*MAKE, "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(deployment_paths) == before
    assert f"reports:   {data / 'sample-run' / 'outbox'}" in done.stdout
    assert f"warehouse: {data / 'sample-run' / 'warehouse.duckdb'}" in done.stdout


def test_deploying_again_keeps_a_paused_deployment_paused(ops: Ops) -> None:
    with ops.client() as client:
        assert client.read_deployment(ops.deployment_id).paused is True  # paused by the fixture
    done = make("deploy", ops.env)

    with ops.client() as client:
        assert client.read_deployment(ops.deployment_id).paused is True
    assert f"Deployment '{DEPLOYMENT}' was paused before this deploy: it is paused again" in (
        done.stdout
    )


def test_make_night_reads_its_start_as_utc_and_names_the_night(ops: Ops) -> None:
    env = {**ops.env, "TZ": "Europe/Berlin"}  # an operator's machine in Berlin
    done = subprocess.run(
        [*MAKE, "night", "BUSINESS_DATE=2026-11-28", "START_AT=2030-01-02 00:30"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Created flow run 'night-2026-11-28'." in done.stdout
    assert "Scheduled start time: 2030-01-02 00:30" in done.stdout
    run_id = UUID(done.stdout.split("UUID: ")[1].split()[0])
    with ops.client() as client:
        run = client.read_flow_run(run_id)
        client.delete_flow_run(run_id)  # never to run
    assert run.expected_start_time == dt.datetime(2030, 1, 2, 0, 30, tzinfo=dt.UTC)
    assert run.parameters["business_date"] == "2026-11-28"
