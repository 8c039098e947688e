"""The README's exit codes, each through the real `allocation` command in a process of its own,
as operators and scripts call it: the code, the one line on stderr, and what was left behind.

`allocation run` talks to this session's Prefect API (the harness), so each run takes seconds
instead of starting a temporary server of its own. Two faults cannot be arranged from outside the
process (a file that appears while the night runs, a bug): there the command runs as
`python -c` that patches one service function, then calls the command's own `main`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from prefect.settings import get_current_settings

from conftest import Site, fill

pytestmark = [pytest.mark.e2e]

ALLOCATION = Path(sys.executable).with_name("allocation")
DAY = "2026-11-25"
NEXT_DAY = "2026-11-26"

# The command's `main`, after `patch` (Python run in the command's process) has replaced a
# service function: what cannot be arranged from outside.
PATCHED_COMMAND = """
import sys
from allocation import cli
from allocation.service import after_commit
{patch}
sys.exit(cli.main(sys.argv[1:]))
"""
# After the command's own checks (which refuse either up front), before publishing.
SOMETHING_TAKES_THE_PATH = """
import duckdb, os
real = after_commit.write_reports
warehouse = sys.argv[sys.argv.index("--warehouse") + 1]
def someone_takes_the_path_meanwhile(*args, **kwargs):
    folder = real(*args, **kwargs)
    if {kind!r} == "folder":
        os.mkdir(warehouse)
    else:
        con = duckdb.connect(warehouse)
        con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
        con.close()
    return folder
after_commit.write_reports = someone_takes_the_path_meanwhile
"""
A_BUG = """
def a_bug(*args, **kwargs):
    raise KeyError("missing-key")
after_commit.write_reports = a_bug
"""


@pytest.fixture
def plain_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a command that needs no Prefect (publish, rollback)."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")},
        "PREFECT_HOME": str(home),
        "ALLOCATION_INBOX_SETTLE_SECONDS": "0",  # the test writes its files just before
        "ALLOCATION_CHECKS": os.environ.get("ALLOCATION_CHECKS", ""),  # as conftest set them
    }


@pytest.fixture
def env(prefect_harness: None, plain_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """`allocation run`'s environment: this session's Prefect API."""
    yield {**plain_env, "PREFECT_API_URL": str(get_current_settings().api.url)}


def a_night(site: Site, orders: int = 1) -> None:
    site.batches("b.csv", "B1,LAMP,1000000,")
    site.orders("o.csv", *[f"o{i},LAMP,1" for i in range(orders)])


def run_args(site: Site, day: str = DAY) -> list[str]:
    return [
        "run",
        "--inbox", str(site.inbox),
        "--warehouse", str(site.warehouse),
        "--outbox", str(site.outbox),
        "--business-date", day,
    ]  # fmt: skip


def allocation(
    args: list[str], env: dict[str, str], patch: str = ""
) -> subprocess.CompletedProcess[str]:
    command = [str(ALLOCATION)]
    if patch:
        command = [sys.executable, "-c", PATCHED_COMMAND.format(patch=patch)]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300)


def fails_with(done: subprocess.CompletedProcess[str], code: int) -> str:
    """Asserts the exit code and the one line of the command's own on stderr (Prefect's log of
    the flow run may come with it), and returns that line."""
    ours = [line for line in done.stderr.splitlines() if line.startswith("allocation: ")]
    assert done.returncode == code, done.stdout + done.stderr
    assert len(ours) == 1, done.stderr
    return ours[0]


# -- exit 3: the warehouse ------------------------------------------------------------------------
def test_a_run_lock_that_is_a_symlink_is_exit_3_and_its_target_untouched(
    site: Site, env: dict[str, str]
) -> None:
    a_night(site)
    victim = site.root / "victim.txt"
    victim.write_text("precious\n")
    state = site.root / ".warehouse.duckdb.pipeline"
    state.mkdir()
    (state / "run.lock").symlink_to(victim)

    line = fails_with(allocation(run_args(site), env), 3)

    assert "is a symbolic link" in line
    assert str(victim) in line and "delete the link" in line
    assert victim.read_text() == "precious\n"
    assert not site.outbox.exists()


def test_a_run_lock_that_is_a_hard_link_is_exit_3_and_the_other_file_untouched(
    site: Site, env: dict[str, str]
) -> None:
    a_night(site)
    victim = site.root / "victim.txt"
    victim.write_text("precious\n")
    state = site.root / ".warehouse.duckdb.pipeline"
    state.mkdir()
    os.link(victim, state / "run.lock")

    line = fails_with(allocation(run_args(site), env), 3)

    assert "is a hard link" in line
    assert victim.read_text() == "precious\n"


def test_a_full_warehouse_disk_is_exit_3_commits_nothing_and_a_rerun_converges(
    site: Site, small_disk: Path, env: dict[str, str]
) -> None:
    site.warehouse = small_disk / "warehouse.duckdb"
    a_night(site)
    site.run(DAY)
    filler = fill(small_disk)
    site.orders("more.csv", *[f"n{i},LAMP,1" for i in range(20_000)])

    line = fails_with(allocation(run_args(site, NEXT_DAY), env), 3)

    assert "is full (No space left on device)" in line
    assert "nothing of this night was committed" in line
    assert "cannot rollback" not in line
    assert not (site.outbox / NEXT_DAY).exists()

    filler.unlink()
    summary = site.run(NEXT_DAY)
    assert summary["orders"]["accepted"] == 20_000
    assert site.query("SELECT count(*) FROM allocations") == [(20_001,)]


# -- exit 4: committed, not published -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_real_latest_in_the_outbox_is_exit_4_committed_and_leaves_nothing(
    site: Site, env: dict[str, str], kind: str
) -> None:
    a_night(site)
    latest = site.outbox / "latest"
    site.outbox.mkdir()
    if kind == "folder":
        latest.mkdir()
        (latest / "notes.txt").write_text("mine\n")
    else:
        latest.write_text("mine\n")

    line = fails_with(allocation(run_args(site), env), 4)

    assert f"{latest} is a real {kind}" in line and "committed" in line
    assert sorted(p.name for p in site.outbox.iterdir()) == [DAY, "latest"]  # no .latest.tmp-*
    assert (latest / "notes.txt" if kind == "folder" else latest).read_text() == "mine\n"

    # Moved away, the same night again points latest and publishes.
    latest.rename(site.root / "old-latest")
    site.run(DAY)
    assert (site.outbox / "latest").readlink() == Path(DAY)
    assert site.query("SELECT count(*) FROM allocations") == [(1,)]


def test_a_full_outbox_disk_is_exit_4_committed_and_leaves_no_half_folder(
    site: Site, small_disk: Path, env: dict[str, str]
) -> None:
    site.outbox = small_disk / "outbox"
    a_night(site, orders=200_000)
    filler = fill(small_disk, leave=256 * 1024)

    line = fails_with(allocation(run_args(site), env), 4)

    assert f"the disk holding {site.outbox} is full" in line and "is committed" in line
    assert sorted(p.name for p in site.outbox.iterdir()) == []  # no .<date>.tmp-* left
    assert not site.warehouse.exists()  # not published yet
    state = duckdb.connect(str(site.root / ".warehouse.duckdb.pipeline" / "state.duckdb"))
    assert state.sql("SELECT count(*) FROM allocations").fetchall() == [(200_000,)]
    state.close()

    filler.unlink()
    site.run(DAY)
    assert len(site.report(DAY, "allocations")) == 200_000
    assert site.query("SELECT count(*) FROM allocations") == [(200_000,)]


@pytest.mark.parametrize("kind", ["foreign duckdb file", "folder"])
def test_a_path_taken_while_the_night_ran_is_exit_4_committed_and_kept(
    site: Site, env: dict[str, str], plain_env: dict[str, str], kind: str
) -> None:
    a_night(site)

    done = allocation(run_args(site), env, patch=SOMETHING_TAKES_THE_PATH.format(kind=kind))

    line = fails_with(done, 4)
    assert "the night is committed" in line
    assert f"allocation publish --warehouse {site.warehouse}" in line
    assert (site.outbox / DAY / "summary.json").exists(), "the reports were written"
    assert not list(site.root.glob(".warehouse.duckdb.publish-*"))
    publish = ["publish", "--warehouse", str(site.warehouse)]
    if kind == "folder":
        site.warehouse.rmdir()  # freed, as the line says, then published without a rerun
        assert allocation(publish, plain_env).returncode == 0
        assert site.query("SELECT count(*) FROM allocations") == [(1,)]
    else:
        assert "did not create" in line
        assert site.query("SELECT answer FROM precious") == [(42,)]
        assert "did not create" in fails_with(allocation(publish, plain_env), 4)


# -- exit 1: anything unexpected ------------------------------------------------------------------
def test_an_unexpected_error_is_exit_1_in_one_line_naming_it(
    site: Site, env: dict[str, str]
) -> None:
    a_night(site)

    line = fails_with(allocation(run_args(site), env, patch=A_BUG), 1)

    assert line == "allocation: unexpected error KeyError: 'missing-key' (see the log above)"


# -- publish and rollback -------------------------------------------------------------------------
# A writer of the working state killed after its commit, before DuckDB folded its log into the
# file (a run killed in the middle of its commit leaves the state so).
KILLED_BEFORE_ITS_CHECKPOINT = """
import duckdb, os, signal, sys
con = duckdb.connect(sys.argv[1])
con.execute("SET checkpoint_threshold = '1GB'")
con.execute("UPDATE runs SET message = 'killed before its checkpoint'")
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_publish_refuses_while_the_state_has_a_write_ahead_log_and_says_what_to_do(
    site: Site, plain_env: dict[str, str]
) -> None:
    a_night(site)
    site.run(DAY)
    state = site.root / ".warehouse.duckdb.pipeline" / "state.duckdb"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BEFORE_ITS_CHECKPOINT, str(state)], capture_output=True
    )
    assert killed.returncode == -9, killed.stderr
    assert state.with_name("state.duckdb.wal").exists()
    published = site.warehouse.read_bytes()

    publish = ["publish", "--warehouse", str(site.warehouse)]
    line = fails_with(allocation(publish, plain_env), 4)

    assert f"{state} still has a write-ahead log" in line
    assert "run the night again, which replays it" in line
    assert site.warehouse.read_bytes() == published, "nothing published"
    assert state.with_name("state.duckdb.wal").exists(), "the log is left for the rerun"

    site.run(DAY)  # as the line says: the rerun replays the log, then publishes
    assert not state.with_name("state.duckdb.wal").exists()
    assert allocation(publish, plain_env).returncode == 0
    assert ("killed before its checkpoint",) in site.query("SELECT message FROM runs")


def test_a_rollback_whose_state_cannot_be_written_is_exit_3_and_changes_nothing(
    site: Site, small_disk: Path, plain_env: dict[str, str]
) -> None:
    site.warehouse = small_disk / "warehouse.duckdb"
    a_night(site)
    site.run(DAY)
    site.orders("more.csv", "n1,LAMP,1")
    site.run(NEXT_DAY)
    state = small_disk / ".warehouse.duckdb.pipeline" / "state.duckdb"
    before = state.read_bytes()
    filler = fill(small_disk)
    rollback = ["rollback", "--to", DAY, "--warehouse", str(site.warehouse)]
    rollback += ["--outbox", str(site.outbox)]

    line = fails_with(allocation(rollback, plain_env), 3)

    assert f"cannot restore {state}" in line and "No space left on device" in line
    assert "the working state is as it was" in line and "run the rollback again" in line
    assert state.read_bytes() == before
    assert (site.outbox / "latest").readlink() == Path(NEXT_DAY)
    assert not list(state.parent.glob(".restoring-*"))

    filler.unlink()
    assert allocation(rollback, plain_env).returncode == 0
    assert (site.outbox / "latest").readlink() == Path(DAY)
    assert site.query("SELECT count(*) FROM allocations") == [(1,)]
