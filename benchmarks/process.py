"""Running a benchmark process: timed by the kernel, its whole process tree's memory sampled,
and the Prefect server the measured runs talk to.

`timed` waits for the child with `os.wait4` (wall time; CPU = user + system of the child and
every descendant it waited for). Memory is sampled, not taken from `ru_maxrss`: a child forked
from this process starts with this process's peak as its own, so `ru_maxrss` can report the
harness rather than the run. A sampler thread reads every 0.1 s the summed RSS of the whole
tree and its largest single process: the child and every descendant, found
through parent links (`psutil.Process.children(recursive=True)`), so the helpers a
`ProcessPoolExecutor` spawns, a forkserver's children and a Dask nanny's workers all count.
The sum counts pages a forked child still shares with its parent twice: an upper bound.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from allocation import TELEMETRY_OFF

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class Timed:
    wall: float
    cpu: float  # user + system seconds of the process and the children it waited for
    max_rss_mb: float  # largest single process seen by the sampler
    tree_rss_mb: float  # sampled sum over the process tree (workers included)
    tree_procs: int  # most processes seen in the tree at one sample (the run's own included)
    output: str
    started: dt.datetime  # timezone-aware, UTC
    ended: dt.datetime
    code: int
    #: (when, CPU seconds of the whole tree so far) every 0.1 s: a step's CPU is the difference
    #: between the samples at its start and its end (`cpu_between`).
    cpu_samples: list[tuple[dt.datetime, float]] = field(default_factory=list)

    def cpu_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """CPU seconds the tree spent from `start` to `end` (the nearest samples at or before
        each; the process's own total once it has ended)."""

        def at(moment: dt.datetime) -> float:
            if moment >= self.ended:
                return self.cpu
            before = [cpu for when, cpu in self.cpu_samples if when <= moment]
            return before[-1] if before else 0.0

        return at(end) - at(start)


def tree_memory(pid: int) -> tuple[int, int, int]:
    """The RSS in bytes summed over process `pid` and all its descendants, the largest single
    one's, and how many processes that is (all 0 once `pid` is gone or a zombie)."""
    try:
        root = psutil.Process(pid)
        total = largest = root.memory_info().rss
        seen = 1
        descendants = root.children(recursive=True)
    except psutil.Error:
        return 0, 0, 0
    for proc in descendants:
        with contextlib.suppress(psutil.Error):  # it may end between the listing and the read
            rss = proc.memory_info().rss
            total, largest, seen = total + rss, max(largest, rss), seen + 1
    return total, largest, seen


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid`, the children it waited for, and every live
    descendant (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        descendants = root.children(recursive=True)
    except psutil.Error:
        return 0.0
    for proc in descendants:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return float(total)


def timed(command: list[str], env: dict[str, str], log: Path) -> Timed:
    """Runs `command` as a child, waits for it with `os.wait4` and samples its tree's RSS."""
    started = dt.datetime.now(dt.UTC)
    tick = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        peak, single, procs = [0], [0], [0]
        cpu_samples: list[tuple[dt.datetime, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                spent = tree_cpu(child.pid)
                if spent:  # 0: the child has just ended
                    cpu_samples.append((dt.datetime.now(dt.UTC), spent))
                total, largest, seen = tree_memory(child.pid)
                peak[0] = max(peak[0], total)
                single[0] = max(single[0], largest)
                procs[0] = max(procs[0], seen)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - tick
        ended = dt.datetime.now(dt.UTC)
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    return Timed(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=single[0] / 2**20,
        tree_rss_mb=peak[0] / 2**20,
        tree_procs=procs[0],
        output=log.read_text(errors="replace"),
        started=started,
        ended=ended,
        code=child.returncode,
        cpu_samples=cpu_samples,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def prefect_server(work: Path) -> Iterator[dict[str, str]]:
    """A Prefect server on loopback with its own PREFECT_HOME; yields the env for its clients."""
    home = work / "prefect-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = free_port()
    env = {**os.environ, **TELEMETRY_OFF, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    log = (work / "prefect-server.log").open("w")
    server = subprocess.Popen(
        [
            *(str(BIN / "prefect"), "server", "start", "--analytics-off"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as one below
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited: see {work / 'prefect-server.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{api}/health", timeout=2) as reply,
            ):
                if reply.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server not healthy after 180 s")
            time.sleep(0.5)
        print(f"prefect server healthy at {api}", flush=True)
        yield {**env, "PREFECT_API_URL": api}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
