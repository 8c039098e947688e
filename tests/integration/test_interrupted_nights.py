"""Issue 27 without Prefect: a night stopped after its commit never loses its reports, one
warehouse is one warehouse however its path is spelled, and the set-ups that could never finish
a night are refused up front in one line.

The nights run as `night.run_night` in a bare Python process (a second each), stopped with
SIGKILL (`ALLOCATION_CRASH_AT`) or held at a step (`ALLOCATION_HOLD_AT`) and sent SIGTERM, as
a cancel from Prefect sends it. The Prefect side (a cancel through the API, the API cut mid-night)
is tests/e2e/test_interrupts.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from test_crash_safety import BIN, NIGHT_SCRIPT, child_env, night_process

from allocation import cli
from allocation.io.pending import note_path, read_note
from allocation.service.night import MemoryLimitTooSmall, naming_memory_limit
from allocation.settings.state_folder import StateFolder
from conftest import Site

DAY = "2026-11-25"
NEXT_DAY = "2026-11-26"


def a_night(site: Site, day: str) -> None:
    site.batches("stock.csv", "B-CLOCK,RETRO-CLOCK,100,")
    site.orders(f"{day}.csv", f"{day}-a,RETRO-CLOCK,1", f"{day}-b,RETRO-CLOCK,2")


def allocated_orders(folder: Path) -> list[str]:
    return sorted(pl.read_csv(folder / "allocations.csv", infer_schema=False)["orderid"])


def published_orders(site: Site) -> list[str]:
    return sorted(row[0] for row in site.query("SELECT orderid FROM allocations"))


def committed(site: Site) -> list[str]:
    con = duckdb.connect(str(StateFolder.beside(site.warehouse).state_db), read_only=True)
    try:
        return [str(r[0]) for r in con.sql("SELECT business_date FROM runs ORDER BY 1").fetchall()]
    finally:
        con.close()


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


# -- item 1: stopped after its commit ------------------------------------------------------------
def test_a_night_killed_after_its_commit_gets_its_reports_from_the_next_night_of_another_date(
    site: Site,
) -> None:
    """Old code: the killed night's reports and published copy were never written (the next
    night wrote only its own, and the killed date could no longer be rerun)."""
    a_night(site, DAY)
    assert night_process(site, DAY, "after-commit") == -signal.SIGKILL
    assert committed(site) == [DAY] and not (site.outbox / DAY).exists()
    assert read_note(StateFolder.beside(site.warehouse).root) is not None

    site.clear_inbox()
    a_night(site, NEXT_DAY)
    site.run(NEXT_DAY)

    assert allocated_orders(site.outbox / DAY) == [f"{DAY}-a", f"{DAY}-b"]
    assert allocated_orders(site.outbox / NEXT_DAY) == [f"{NEXT_DAY}-a", f"{NEXT_DAY}-b"]
    assert published_orders(site) == sorted(f"{d}-{x}" for d in (DAY, NEXT_DAY) for x in "ab")
    kept = sorted(
        p.name[:10] for p in StateFolder.beside(site.warehouse).published.glob("*.duckdb")
    )
    assert kept == [DAY, NEXT_DAY]  # the killed night can be rolled back to
    assert not note_path(StateFolder.beside(site.warehouse).root).exists()


def test_a_night_killed_before_its_commit_leaves_a_note_the_next_night_drops(site: Site) -> None:
    a_night(site, DAY)
    assert night_process(site, DAY, "before-commit") == -signal.SIGKILL
    assert read_note(StateFolder.beside(site.warehouse).root) is not None

    site.run(DAY)

    assert committed(site) == [DAY]
    assert allocated_orders(site.outbox / DAY) == [f"{DAY}-a", f"{DAY}-b"]
    assert not note_path(StateFolder.beside(site.warehouse).root).exists()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["publish"], id="publish"),
        # No night was ever published before it: no kept copies at all yet.
        pytest.param(["rollback", "--to", DAY], id="rollback-to-the-first-night"),
    ],
)
def test_publish_and_rollback_finish_the_first_night_stopped_after_its_commit(
    site: Site,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
) -> None:
    a_night(site, DAY)
    assert night_process(site, DAY, "while-writing-reports") == -signal.SIGKILL
    monkeypatch.chdir(site.root)

    code = cli.main([*command, "--warehouse", str(site.warehouse)])

    assert code == 0, capsys.readouterr().err
    assert allocated_orders(site.outbox / DAY) == [f"{DAY}-a", f"{DAY}-b"]
    assert published_orders(site) == [f"{DAY}-a", f"{DAY}-b"]
    assert not note_path(StateFolder.beside(site.warehouse).root).exists()


def test_rollback_to_a_night_killed_after_its_commit_finishes_it_first(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's first move after an incident is often a rollback. Old code: `rollback
    --to` the night that committed but was killed before its reports said "no copy kept"
    (exit 2), the one night the operator most wants back."""
    a_night(site, DAY)
    site.run(DAY)
    site.clear_inbox()
    a_night(site, NEXT_DAY)
    assert night_process(site, NEXT_DAY, "while-writing-reports") == -signal.SIGKILL
    monkeypatch.chdir(site.root)

    args = ["rollback", "--to", NEXT_DAY, "--warehouse", str(site.warehouse)]
    code = cli.main([*args, "--outbox", str(site.outbox)])

    assert code == 0, capsys.readouterr().err
    assert f"Rolled back to night {NEXT_DAY}" in capsys.readouterr().out
    assert committed(site) == [DAY, NEXT_DAY]
    assert allocated_orders(site.outbox / NEXT_DAY) == [f"{NEXT_DAY}-a", f"{NEXT_DAY}-b"]
    assert published_orders(site) == sorted(f"{d}-{x}" for d in (DAY, NEXT_DAY) for x in "ab")
    assert not note_path(StateFolder.beside(site.warehouse).root).exists()

    # And further back, past it: the killed night is undone like any other.
    assert (
        cli.main(
            [
                "rollback",
                "--to",
                DAY,
                "--warehouse",
                str(site.warehouse),
                "--outbox",
                str(site.outbox),
            ]
        )
        == 0
    )
    assert committed(site) == [DAY]
    assert published_orders(site) == [f"{DAY}-a", f"{DAY}-b"]


@pytest.mark.parametrize("point", ["while-writing-reports", "while-publishing"])
def test_a_stop_asked_after_the_commit_waits_for_the_reports_and_the_published_copy(
    site: Site, point: str
) -> None:
    """SIGTERM, as Prefect's cancel and a stopping worker send it, arriving while the committed
    night writes its reports or publishes. Old code: the process died there, the reports and
    the analysts' copy missing."""
    a_night(site, DAY)
    hold = site.root / "hold"
    hold.mkdir()
    args = [sys.executable, "-c", NIGHT_SCRIPT, str(site.inbox), str(site.warehouse)]
    env = child_env(ALLOCATION_HOLD_AT=point, ALLOCATION_HOLD_DIR=str(hold))
    with (site.root / "night.log").open("wb") as log:
        night = subprocess.Popen([*args, str(site.outbox), DAY], env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while not (hold / f"reached-{point}").exists() and time.monotonic() < deadline:
                assert night.poll() is None, (site.root / "night.log").read_text()
                time.sleep(0.05)
            night.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            (hold / "release").touch()
            code = night.wait(timeout=60)
        finally:
            night.kill()
            night.wait()
    output = (site.root / "night.log").read_text()

    assert code == -signal.SIGTERM, output  # it still stops, as asked, once the night is whole
    assert "Asked to stop (SIGTERM) after the night 2026-11-25 committed" in output
    assert allocated_orders(site.outbox / DAY) == [f"{DAY}-a", f"{DAY}-b"]
    assert published_orders(site) == [f"{DAY}-a", f"{DAY}-b"]
    assert not note_path(StateFolder.beside(site.warehouse).root).exists()


def test_ctrl_c_after_the_commit_ends_the_command_as_the_complete_night_it_is(
    site: Site, tmp_path: Path, prefect_api: str
) -> None:
    """`allocation run` in a terminal, Ctrl-C while the committed night publishes. Old code:
    exit 130 "interrupted. Run the same night again", though the night was whole: a script
    would count it failed."""
    a_night(site, DAY)
    hold = site.root / "hold"
    hold.mkdir()
    args = [str(BIN / "allocation"), "run", "--inbox", str(site.inbox), "--warehouse"]
    args += [str(site.warehouse), "--outbox", str(site.outbox), "--business-date", DAY]
    env = child_env(
        ALLOCATION_HOLD_AT="while-publishing",
        ALLOCATION_HOLD_DIR=str(hold),
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_API_URL=prefect_api,
    )
    log_path = site.root / "night.log"
    with log_path.open("wb") as log:
        night = subprocess.Popen(args, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while not (hold / "reached-while-publishing").exists():
                assert night.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            night.send_signal(signal.SIGINT)  # the terminal sends it to the command
            time.sleep(0.5)
            (hold / "release").touch()
            code = night.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(night.pid, signal.SIGKILL)
            night.wait()
    output = log_path.read_text()

    assert code == 0, output
    assert "Asked to stop (SIGINT) after the night 2026-11-25 committed" in output
    assert "the night is complete, so this run ends as completed" in output
    assert "allocation: interrupted" not in output
    assert "Finished in state Completed()" in output  # Prefect is told the truth too
    assert allocated_orders(site.outbox / DAY) == [f"{DAY}-a", f"{DAY}-b"]
    assert published_orders(site) == [f"{DAY}-a", f"{DAY}-b"]


# -- item 2: one warehouse, however its path is spelled ------------------------------------------
def test_a_warehouse_path_through_a_symlink_or_dotdot_is_the_same_warehouse(site: Site) -> None:
    a_night(site, NEXT_DAY)
    site.run(NEXT_DAY)
    (site.root / "link").symlink_to(site.root)
    (site.root / "sub").mkdir()
    aliases = [
        site.root / "link" / "warehouse.duckdb",
        site.root / "sub" / ".." / "warehouse.duckdb",
    ]
    for alias in aliases:
        params = site.params(DAY).model_copy(update={"warehouse": alias})
        rebuilt = type(params).build(
            inbox=site.inbox, warehouse=alias, outbox=site.outbox, business_date=DAY
        )
        assert rebuilt.warehouse == site.warehouse
        assert rebuilt.state_dir == StateFolder.beside(site.warehouse).root

    code = cli.main(
        ["run", "--inbox", str(site.inbox), "--warehouse", str(aliases[0]), "--outbox",
         str(site.outbox), "--business-date", DAY]
    )  # fmt: skip

    assert code == 2  # earlier than the last committed night, whichever path named it


# -- item 5: names too long for the file system --------------------------------------------------
@pytest.mark.parametrize("length", [235, 243, 245])
def test_a_warehouse_name_too_long_for_a_publish_is_refused_up_front(
    site: Site, capsys: pytest.CaptureFixture[str], length: int
) -> None:
    """Old code: 243-245 characters committed, then could never publish (exit 1)."""
    a_night(site, DAY)
    name = "w" * (length - len(".duckdb")) + ".duckdb"

    code = cli.main(
        ["run", "--inbox", str(site.inbox), "--warehouse", str(site.root / name), "--outbox",
         str(site.outbox), "--business-date", DAY]
    )  # fmt: skip

    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert f"{length} bytes long" in line and "at most 234 bytes" in line
    assert not StateFolder.beside(site.root / name).root.exists()


def test_the_longest_warehouse_name_allowed_commits_and_publishes(site: Site) -> None:
    a_night(site, DAY)
    name = "w" * (234 - len(".duckdb")) + ".duckdb"
    warehouse = site.root / name
    from allocation.service.night import run_night
    from allocation.settings import RunParameters

    run_night(
        RunParameters.build(
            inbox=site.inbox, warehouse=warehouse, outbox=site.outbox, business_date=DAY
        )
    )

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.sql("SELECT count(*) FROM allocations").fetchall() == [(2,)]
    finally:
        con.close()


# -- item 6: a DuckDB memory limit too small -----------------------------------------------------
@pytest.mark.parametrize("limit", ["1MB", "16MB"])
def test_a_memory_limit_too_small_for_any_night_is_refused_naming_the_setting(
    site: Site, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """Old code: exit 1 "unexpected error OutOfMemoryException" over several lines."""
    a_night(site, DAY)
    monkeypatch.setenv("ALLOCATION_DUCKDB_MEMORY_LIMIT", limit)

    code = cli.main(
        ["run", "--inbox", str(site.inbox), "--warehouse", str(site.warehouse), "--outbox",
         str(site.outbox), "--business-date", DAY]
    )  # fmt: skip

    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert "ALLOCATION_DUCKDB_MEMORY_LIMIT" in line and "at least" in line
    assert not site.warehouse.exists()


def test_duckdb_running_out_of_memory_names_the_setting_to_raise(site: Site) -> None:
    params = site.params(DAY)
    with (
        pytest.raises(MemoryLimitTooSmall, match="ALLOCATION_DUCKDB_MEMORY_LIMIT=384MB: raise"),
        naming_memory_limit(params, committed=False),
    ):
        con = duckdb.connect(config={"memory_limit": "1MB"})
        try:
            con.sql("SELECT range % 1000 AS k, count(*) FROM range(3000000) GROUP BY k").fetchall()
            con.sql("SELECT list(range) FROM range(3000000)").fetchall()
        finally:
            con.close()


# -- item 8: set-ups that would read the pipeline's own files, and a file loaded after all -------
@pytest.mark.parametrize("kind", ["orders", "batches"])
def test_a_warehouse_inside_the_inboxs_folders_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    a_night(site, DAY)
    warehouse = site.inbox / kind / "warehouse.duckdb"

    code = cli.main(
        ["run", "--inbox", str(site.inbox), "--warehouse", str(warehouse), "--outbox",
         str(site.outbox), "--business-date", DAY]
    )  # fmt: skip

    assert code == 2
    assert f"inside the inbox's {kind}/ folder" in one_line(capsys.readouterr().err)
    assert not warehouse.exists()


def test_a_file_rejected_whole_then_loaded_by_a_rerun_is_no_longer_listed_as_rejected(
    site: Site,
) -> None:
    """A file rejected whole (here: a byte that is not UTF-8, as an unreadable file is too),
    fixed and loaded by a rerun of the date. Old code: still in the date's rejected.csv and
    summary, although its lines are allocated."""
    a_night(site, DAY)
    late = site.inbox / "orders" / "late.csv"
    late.write_bytes(b"orderid,sku,qty\nlate-a,RETRO-CLOCK,1\nlate-b,RETRO-CLOCK,\xff\n")
    first = site.run(DAY)
    assert first["files"]["rejected"] == 1
    late.write_bytes(b"orderid,sku,qty\nlate-a,RETRO-CLOCK,1\nlate-b,RETRO-CLOCK,1\n")

    again = site.run(DAY)

    assert again["files"]["rejected"] == 0 and again["files"]["rejected_files"] == []
    rejected = pl.read_csv(site.outbox / DAY / "rejected.csv", infer_schema=False)
    assert "orders/late.csv" not in rejected["source_file"].to_list()
    assert {"late-a", "late-b"} <= set(allocated_orders(site.outbox / DAY))
    # The warehouse keeps the history: the first run did reject it.
    assert site.query(
        "SELECT count(*) FROM rejected_rows WHERE source_file = 'orders/late.csv'"
    ) == [(1,)]
