"""Issue 10 (tracker #13), items 7 and 9-13: an operator's mistake or a full disk ends the run
with the exit code the README promises and one line that names what is wrong and what to do;
nothing the pipeline did not make is replaced, nothing is left half-written, and a rerun after
the fix converges.

The claims that go through `allocation run` itself (a run lock that is a link, a real
`OUTBOX/latest`, a full disk, a foreign file found at publish) are in tests/e2e/test_exit_codes.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import duckdb
import pytest
from prefect.states import Failed

from allocation import cli
from allocation.flows.nightly import worth_retrying
from allocation.io import outbox
from allocation.io.disk import is_disk_full
from allocation.io.publish import PublishError
from allocation.io.unit_of_work import WarehouseError
from allocation.service.night import run_night
from allocation.settings import ParameterError, Settings
from conftest import Site

DAY = "2026-11-25"
NEXT_DAY = "2026-11-26"


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
    # That every retried step asks first: tests/e2e/test_flow.py.


def test_a_full_disk_under_the_reports_spill_says_which_and_the_same_night_finishes(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB spills a report's sort to its temporary folder; on a full disk it raises its own
    IOException (worded as below), which used to end the night as an unexpected error (exit 1)
    after the commit."""
    a_night(site)
    params = site.params(DAY)
    spill = params.duckdb_limits.temp_directory

    def spilling_on_a_full_disk(*args: object) -> None:
        raise duckdb.IOException(
            f'IO Error: Could not write file "{spill}/duckdb_temp_1_storage_DEFAULT-0.tmp": '
            "No space left on device"
        )

    monkeypatch.setattr(outbox, "write_report_files", spilling_on_a_full_disk)
    with pytest.raises(PublishError) as raised:  # exit 4: committed
        run_night(params)
    message = str(raised.value)
    assert f"the night {DAY} is committed" in message
    assert f"the disk DuckDB spills to ({spill}) is full" in message
    assert "ALLOCATION_DUCKDB_TEMP_DIRECTORY" in message and "run the same night again" in message
    assert dict(cli.EXIT_CODES)[PublishError] == 4

    monkeypatch.undo()
    run_night(site.params(DAY))

    assert (site.outbox / DAY / "allocations.csv").read_text().count("\n") == 2  # header, o0
    assert site.query("SELECT count(*) FROM allocations") == [(1,)]
