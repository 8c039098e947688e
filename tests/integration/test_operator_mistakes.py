"""Issue 10 (tracker #13), items 7 and 9-13: an operator's mistake or a full disk ends the run
with the exit code the README promises and one line that names what is wrong and what to do;
nothing the pipeline did not make is replaced, nothing is left half-written, and a rerun after
the fix converges."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prefect.states import Failed

from allocation import cli, services
from allocation.flows import nightly
from allocation.flows.nightly import worth_retrying
from allocation.io.disk import is_disk_full
from allocation.io.outbox import ReportsNotWritten
from allocation.io.publish import PublishError
from allocation.io.run_lock import RunLockError
from allocation.io.unit_of_work import WarehouseError
from allocation.settings import ParameterError, Settings
from conftest import Site

DAY = "2026-11-25"
NEXT_DAY = "2026-11-26"


def exit_code(error: BaseException) -> int:
    """The exit code `allocation run` gives for ``error`` (its EXIT_CODES table)."""
    return next((code for kind, code in cli.EXIT_CODES if isinstance(error, kind)), 1)


def a_night(site: Site, orders: int = 1) -> None:
    site.batches("b.csv", "B1,LAMP,1000000,")
    site.orders("o.csv", *[f"o{i},LAMP,1" for i in range(orders)])


def run_cli(site: Site, *extra: str) -> list[str]:
    return [
        "run",
        "--inbox",
        str(site.inbox),
        "--warehouse",
        str(site.warehouse),
        "--outbox",
        str(site.outbox),
        "--business-date",
        DAY,
        *extra,
    ]


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# ------------------------------------------------- item 7: a DuckDB file we did not make


def test_a_duckdb_file_the_pipeline_did_not_create_is_never_replaced(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    a_night(site)
    con = duckdb.connect(str(site.warehouse))
    con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    con.close()

    code = cli.main(run_cli(site))

    assert code == 3
    line = one_line(capsys.readouterr().err)
    assert str(site.warehouse) in line and "did not create" in line and "precious" in line
    con = duckdb.connect(str(site.warehouse), read_only=True)
    assert con.sql("SELECT answer FROM precious").fetchall() == [(42,)]
    con.close()
    assert not (site.root / ".warehouse.duckdb.pipeline").exists()
    assert not site.outbox.exists()


def test_an_empty_duckdb_file_is_not_the_pipelines_either(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    a_night(site)
    duckdb.connect(str(site.warehouse)).close()

    assert cli.main(run_cli(site)) == 3
    assert "did not create (tables: none)" in one_line(capsys.readouterr().err)


def test_a_foreign_duckdb_file_found_only_when_publishing_is_kept_and_exit_4(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file appears while the night runs, after the pre-checks (which refuse it up front):
    # publishing is the last line of defence.
    a_night(site)
    real = services.write_reports

    def someone_creates_the_file_meanwhile(*args: Any, **kwargs: Any) -> Path:
        con = duckdb.connect(str(site.warehouse))
        con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
        con.close()
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "write_reports", someone_creates_the_file_meanwhile)

    with pytest.raises(PublishError, match="did not create") as raised:
        site.run(DAY)

    assert exit_code(raised.value) == 4
    assert "the night is committed" in str(raised.value)
    assert site.query("SELECT answer FROM precious") == [(42,)]


def test_a_published_copy_remade_table_by_table_is_still_the_pipelines(site: Site) -> None:
    a_night(site)
    site.run(DAY)
    # An older-format copy, as COPY FROM DATABASE makes it: no file property survives, tables do.
    copy = site.root / "copy.duckdb"
    con = duckdb.connect()
    con.execute("ATTACH ? AS src (READ_ONLY)", [str(site.warehouse)])
    con.execute("ATTACH ? AS dst", [str(copy)])
    con.execute("COPY FROM DATABASE src TO dst")
    con.close()
    os.replace(copy, site.warehouse)

    site.orders("p.csv", "p1,LAMP,1")
    summary = site.run(NEXT_DAY)

    assert summary["allocated"] == 1


def test_publish_never_replaces_a_file_the_pipeline_did_not_create(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    a_night(site)
    site.run(DAY)
    site.warehouse.unlink()
    duckdb.connect(str(site.warehouse)).execute("CREATE TABLE mine (x INT)").close()

    code = cli.main(["publish", "--warehouse", str(site.warehouse)])

    assert code == 4
    assert "did not create" in one_line(capsys.readouterr().err)
    assert site.query("SELECT count(*) FROM mine") == [(0,)]


# ----------------------------------------------------------------- item 9: the run lock


def test_a_run_lock_that_is_a_symlink_is_refused_and_its_target_untouched(site: Site) -> None:
    a_night(site)
    victim = site.root / "victim.txt"
    victim.write_text("precious\n")
    state = site.root / ".warehouse.duckdb.pipeline"
    state.mkdir()
    (state / "run.lock").symlink_to(victim)

    with pytest.raises(RunLockError, match="is a symbolic link") as raised:
        site.run(DAY)

    assert exit_code(raised.value) == 3
    assert str(victim) in str(raised.value) and "delete the link" in str(raised.value)
    assert victim.read_text() == "precious\n"
    assert not site.outbox.exists()


def test_a_run_lock_that_is_a_hard_link_is_refused_and_the_other_file_untouched(
    site: Site,
) -> None:
    a_night(site)
    victim = site.root / "victim.txt"
    victim.write_text("precious\n")
    state = site.root / ".warehouse.duckdb.pipeline"
    state.mkdir()
    os.link(victim, state / "run.lock")

    with pytest.raises(RunLockError, match="is a hard link") as raised:
        site.run(DAY)

    assert exit_code(raised.value) == 3
    assert victim.read_text() == "precious\n"


# ------------------------------------------------------ item 10: a real OUTBOX/latest


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_real_latest_in_the_outbox_ends_committed_not_published_and_leaves_nothing(
    site: Site, kind: str
) -> None:
    a_night(site)
    latest = site.outbox / "latest"
    site.outbox.mkdir()
    if kind == "folder":
        latest.mkdir()
        (latest / "notes.txt").write_text("mine\n")
    else:
        latest.write_text("mine\n")

    with pytest.raises(ReportsNotWritten) as raised:
        site.run(DAY)

    assert exit_code(raised.value) == 4
    message = str(raised.value)
    assert f"{latest} is a real {kind}" in message and "committed" in message
    assert sorted(p.name for p in site.outbox.iterdir()) == [DAY, "latest"]  # no .latest.tmp-*
    assert (latest / "notes.txt" if kind == "folder" else latest).read_text() == "mine\n"

    # Moved away, the same night again points latest and publishes.
    latest.rename(site.root / "old-latest")
    site.run(DAY)
    assert (site.outbox / "latest").readlink() == Path(DAY)
    assert site.query("SELECT count(*) FROM allocations") == [(1,)]


# ---------------------------------------------------------- item 11: ALLOCATION_* values


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("ALLOCATION_KEEP_PUBLISHED", "0", "greater than or equal to 1"),
        ("ALLOCATION_KEEP_PUBLISHED", "abc", "a valid integer"),
        ("ALLOCATION_WORKERS", "-1", "greater than or equal to 0"),
        ("ALLOCATION_TASK_RUNNER", "foo", "'local' or 'dask'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    site: Site,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    allowed: str,
) -> None:
    a_night(site)
    monkeypatch.setenv(variable, value)

    code = cli.main(run_cli(site))

    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert f"{variable}={value!r} is not allowed" in line and allowed in line
    with pytest.raises(ParameterError):
        Settings()


# ------------------------------------------------- item 12: a folder that cannot be written


def test_a_warehouse_in_a_folder_that_cannot_be_written_is_exit_3_in_one_line(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    a_night(site)
    site.warehouse = Path("/proc/w.duckdb")

    code = cli.main(run_cli(site))

    assert code == 3
    line = one_line(capsys.readouterr().err)
    assert "/proc" in line and "cannot be written" in line


# ------------------------------------------------------------------ item 13: a full disk


def test_a_full_disk_is_told_apart_from_other_errors_and_never_retried() -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    duck = duckdb.IOException('Could not write file "x.wal": No space left on device')
    wrapped = WarehouseError("the disk is full")
    wrapped.__cause__ = duck
    for error in (full, duck, wrapped):
        assert is_disk_full(error)
        assert not worth_retrying(None, None, Failed(data=error))
    other = OSError(errno.EACCES, "Permission denied")
    assert not is_disk_full(other)
    assert worth_retrying(None, None, Failed(data=other))
    # Every retried step of the flow asks first.
    for step in (nightly.check_already_ingested, nightly.load, nightly.allocate):
        assert step.retries == 2 and step.retry_condition_fn is worth_retrying
    for step in (nightly.write_reports, nightly.publish):
        assert step.retries == 2 and step.retry_condition_fn is worth_retrying


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs of its own, to fill for real; skipped where mounting is not permitted."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as error:
        pytest.skip(f"cannot mount a tmpfs here: {error}")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def fill(disk: Path, leave: int = 64 * 1024) -> Path:
    """Takes all but ``leave`` bytes of ``disk``; delete the returned file to free them."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(stats.f_bavail * stats.f_frsize - leave, 0))
    return filler


def test_a_full_warehouse_disk_commits_nothing_says_so_and_a_rerun_converges(
    site: Site, small_disk: Path
) -> None:
    site.warehouse = small_disk / "warehouse.duckdb"
    a_night(site)
    site.run(DAY)
    filler = fill(small_disk)
    site.orders("more.csv", *[f"n{i},LAMP,1" for i in range(20_000)])

    with pytest.raises(WarehouseError) as raised:
        site.run(NEXT_DAY)

    message = str(raised.value)
    assert exit_code(raised.value) == 3
    assert "is full (No space left on device)" in message
    assert "nothing of this night was committed" in message
    assert "cannot rollback" not in message
    assert not (site.outbox / NEXT_DAY).exists()

    filler.unlink()
    summary = site.run(NEXT_DAY)
    assert summary["orders"]["accepted"] == 20_000
    assert site.query("SELECT count(*) FROM allocations") == [(20_001,)]


def test_a_full_outbox_disk_says_the_night_is_committed_and_leaves_no_half_folder(
    site: Site, small_disk: Path
) -> None:
    site.outbox = small_disk / "outbox"
    a_night(site, orders=200_000)
    filler = fill(small_disk, leave=256 * 1024)

    with pytest.raises(ReportsNotWritten) as raised:
        site.run(DAY)

    message = str(raised.value)
    assert exit_code(raised.value) == 4
    assert f"the disk holding {site.outbox} is full" in message and "is committed" in message
    assert sorted(p.name for p in site.outbox.iterdir()) == []  # no .<date>.tmp-* left
    assert not site.warehouse.exists()  # not published yet
    state = duckdb.connect(str(site.root / ".warehouse.duckdb.pipeline" / "state.duckdb"))
    assert state.sql("SELECT count(*) FROM allocations").fetchall() == [(200_000,)]
    state.close()

    filler.unlink()
    site.run(DAY)
    assert len(site.report(DAY, "allocations")) == 200_000
    assert site.query("SELECT count(*) FROM allocations") == [(200_000,)]
