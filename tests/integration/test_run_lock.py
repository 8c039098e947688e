"""One writer per warehouse (issue 8): a second run waits a bounded time, then fails naming the
run that holds the warehouse; a lock left by a dead process never blocks a later night.

The holder is this test process, inside `run_lock` (flock is per open file, so a second open in
the same process is refused just like another process); the waiting runs are real nights.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, suppress
from pathlib import Path

import pytest

from allocation import TELEMETRY_OFF
from allocation.io import run_lock as run_lock_module
from allocation.io.run_lock import RunLockTimeout, run_lock
from conftest import Site

NIGHT = "2026-11-25"
BIN = Path(sys.executable).parent
HOLDER = "holder-night"
PREFECT_LOG = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| ")  # e.g. "14:03:47.462 | INFO | ..."

NIGHT_SCRIPT = """
import logging, sys
from allocation.service.night import run_night
from allocation.settings import RunParameters
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
inbox, warehouse, outbox, day = sys.argv[1:5]
run_night(RunParameters.build(inbox=inbox, warehouse=warehouse, outbox=outbox, business_date=day))
"""


@pytest.fixture
def night(site: Site) -> Site:
    site.batches("manifest.csv", "B-CLOCK-1,RETRO-CLOCK,10,")
    site.orders("orders.csv", "o1,RETRO-CLOCK,4", "o2,BLUE-LAMP,1")
    return site


def lock_path(site: Site) -> Path:
    return site.params(NIGHT).state_dir / "run.lock"


def holding(site: Site) -> AbstractContextManager[None]:
    """This test process holds the warehouse as run `holder-night` would."""
    return run_lock(lock_path(site), run_id=HOLDER, business_date=NIGHT, timeout=0)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    env.update(TELEMETRY_OFF, ALLOCATION_INBOX_SETTLE_SECONDS="0", **extra)  # files just written
    return env


def start(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Starts a command in its own process group, stdout and stderr to files in `cwd` (an
    orphaned Prefect server must not hold a pipe of ours open)."""
    with (cwd / "stdout.log").open("wb") as out, (cwd / "stderr.log").open("wb") as err:
        return subprocess.Popen(
            args, env=dict(env), cwd=cwd, stdout=out, stderr=err, start_new_session=True
        )


def finish(proc: subprocess.Popen[bytes], timeout: float) -> int:
    try:
        proc.wait(timeout=timeout)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def wait_for_text(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"{text!r} never appeared in {path.name}:\n{path.read_text(errors='replace')}")


def night_process(site: Site, timeout_seconds: float) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", NIGHT_SCRIPT, str(site.inbox), str(site.warehouse)]
    args += [str(site.outbox), NIGHT]
    env = child_env(ALLOCATION_LOCK_TIMEOUT_SECONDS=str(timeout_seconds))
    return start(args, env, site.root)


def dead_pid() -> int:
    """A PID that surely belongs to no process: one we started, saw exit and reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def published_nights(site: Site) -> list[str]:
    return sorted({str(row[0]) for row in site.query("SELECT business_date FROM runs")})


# -- two runs at once ----------------------------------------------------------------------------
class LockClock:
    """The run lock's clock: sleeping moves it on at once. The wait is then counted in the
    lock's own polls, not in seconds of this shared, noisy machine."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.naps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def test_a_second_run_waits_a_bounded_time_then_names_the_run_holding_the_warehouse(
    night: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATION_LOCK_TIMEOUT_SECONDS", "0.6")
    clock = LockClock()
    monkeypatch.setattr(run_lock_module, "time", clock)
    with holding(night), pytest.raises(RunLockTimeout) as refused:
        night.run(NIGHT)
    message = str(refused.value)
    assert f"run {HOLDER} (PID {os.getpid()}, business date {NIGHT}" in message
    assert "waited 0.6s" in message
    # It polled every 0.25 s until the 0.6 s were up (0.75 s on its clock), then gave up.
    assert clock.naps == [0.25, 0.25, 0.25]
    assert not night.warehouse.exists(), "the refused run must not have written anything"
    assert not (night.outbox / NIGHT).exists()


def test_a_waiting_run_proceeds_once_the_holder_finishes(night: Site) -> None:
    with holding(night):
        waiter = night_process(night, timeout_seconds=60)
        wait_for_text(night.root / "stderr.log", "Waiting up to 60s", waiter, timeout=30)
        log = (night.root / "stderr.log").read_text()
        assert f"it is being written by run {HOLDER} (PID {os.getpid()}" in log
        assert waiter.poll() is None, "the second run must wait, not fail"
    assert finish(waiter, timeout=60) == 0, (night.root / "stderr.log").read_text()
    assert published_nights(night) == [NIGHT]
    assert "Taking over" not in (night.root / "stderr.log").read_text()
    assert lock_path(night).read_text() == "", "a finished run leaves no holder note"


@pytest.mark.e2e
@pytest.mark.slow
def test_the_allocation_command_refused_by_a_running_night_exits_3_with_one_clear_line(
    night: Site, tmp_path_factory: pytest.TempPathFactory, prefect_api: str
) -> None:
    prefect_home = tmp_path_factory.getbasetemp() / "prefect-home-issue-8"
    prefect_home.mkdir(exist_ok=True)
    args = [str(BIN / "allocation"), "run", "--inbox", str(night.inbox), "--warehouse"]
    args += [str(night.warehouse), "--outbox", str(night.outbox), "--business-date", NIGHT]
    env = child_env(
        ALLOCATION_LOCK_TIMEOUT_SECONDS="1",
        PREFECT_HOME=str(prefect_home),
        PREFECT_API_URL=prefect_api,
    )
    with holding(night):
        code = finish(start(args, env, night.root), timeout=240)
    stderr = (night.root / "stderr.log").read_text(errors="replace")
    print(stderr)
    assert code == 3
    lines = stderr.splitlines()
    ours = [n for n, line in enumerate(lines) if line.startswith("allocation:")]
    assert len(ours) == 1, "one clear line"
    after = lines[ours[0] + 1 :]
    assert all(PREFECT_LOG.match(line) for line in after), "only Prefect's own log may follow it"
    line = lines[ours[0]]
    assert line.startswith("allocation: the warehouse is being written by run holder-night")
    assert f"(PID {os.getpid()}, business date {NIGHT}" in line
    assert "waited 1s" in line
    assert not night.warehouse.exists()


# -- a lock left behind ----------------------------------------------------------------------------
@pytest.mark.parametrize("holder", ["dead", "alive but not holding it"])
def test_a_lock_note_left_by_a_process_that_no_longer_holds_it_is_taken_over_with_a_warning(
    night: Site, holder: str, caplog: pytest.LogCaptureFixture
) -> None:
    pid = dead_pid() if holder == "dead" else os.getpid()
    note = {
        "run_id": "crashed-night",
        "pid": pid,
        "business_date": "2026-11-24",
        "started_at": dt.datetime(2026, 11, 24, 23, 0, tzinfo=dt.UTC).isoformat(),
    }
    lock_path(night).parent.mkdir(parents=True)
    lock_path(night).write_text(json.dumps(note))

    with caplog.at_level(logging.WARNING, logger="allocation"):
        summary = night.run(NIGHT)

    assert summary["allocated"] == 1
    assert published_nights(night) == [NIGHT]
    [warning] = [r for r in caplog.records if "Taking over" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert f"run crashed-night (PID {pid}, business date 2026-11-24" in warning.getMessage()
    if holder == "dead":
        assert warning.getMessage().endswith("which is no longer running")
    assert lock_path(night).read_text() == ""
