"""The benchmark's memory sampler counts the whole process tree, grandchildren included: a
ProcessPoolExecutor's helpers and a Dask nanny's workers sit two levels below the measured run."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

from benchmarks.process import timed, tree_memory

MiB = 2**20

# A child that starts a grandchild holding 200 MiB, then waits for it; the child stays small.
TREE = textwrap.dedent(
    """
    import subprocess, sys
    grandchild = (
        "import time; block = bytearray(200 * 2**20); "
        "block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)"
    )
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', %r], check=True)"
    subprocess.run([sys.executable, "-c", child % grandchild], check=True)
    """
)


def test_peak_memory_counts_grandchildren(tmp_path: Path) -> None:
    run = timed([sys.executable, "-c", TREE], {}, tmp_path / "tree.log")
    assert run.code == 0, run.output
    assert run.tree_procs == 3  # the run, its child, its grandchild
    assert 200 <= run.max_rss_mb < 300  # the grandchild, not this (large) test process
    assert run.tree_rss_mb > run.max_rss_mb + 5  # the sum adds the run and its child


def test_the_harness_own_memory_is_not_counted_as_the_childs(tmp_path: Path) -> None:
    ballast = bytearray(400 * MiB)  # a forked child's ru_maxrss would start at least this high
    ballast[::4096] = b"x" * len(ballast[::4096])
    run = timed([sys.executable, "-c", "import time; time.sleep(0.6)"], {}, tmp_path / "s.log")
    assert run.code == 0, run.output
    assert 0 < run.tree_rss_mb < 100 and 0 < run.max_rss_mb < 100
    del ballast


def test_a_finished_process_has_no_memory() -> None:
    assert tree_memory(2**22 + 12345) == (0, 0, 0)  # no such pid (above the usual pid_max)
    assert tree_memory(os.getpid())[0] > 10 * MiB
