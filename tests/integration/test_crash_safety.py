"""Crash-safe nights (issue 8): kill a night anywhere, run it again, get the same warehouse.

Each test runs night 1 cleanly, then night 2 in a separate process group with
`ALLOCATION_CRASH_AT=<point>`, so the process SIGKILLs itself there exactly as an out-of-memory
kill or a host reboot would stop it. Until the night is run again, analysts must still see night 1
whole. Running night 2 again must then give, row for row, the warehouse and the reports of one
uninterrupted run on a fresh site, with nothing half-written left behind.

Most points run `night.run_night` in a bare Python process (about a second each); one runs the
real `allocation run` command, Prefect's temporary server included, to prove the product path.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from allocation import TELEMETRY_OFF
from allocation.faults import CRASH_POINTS
from conftest import Site

NIGHT_1 = "2026-11-25"
NIGHT_2 = "2026-11-26"
BIN = Path(sys.executable).parent

# Points where the night's transaction has already committed when the process dies: the rerun
# finds every file of the night recorded and only rebuilds the reports and the published copy.
COMMITTED_AT = {"after-commit", "while-writing-reports", "while-publishing"}

# The published tables, without the run ids that differ between any two runs.
TABLES = {
    "batches": "*",
    "order_lines": "* EXCLUDE (run_id)",
    "allocations": "* EXCLUDE (run_id)",
    "rejected_rows": "* EXCLUDE (run_id)",
    "ingested_files": "* EXCLUDE (run_id)",
}

NIGHT_SCRIPT = """
import logging, sys
from allocation.service.night import run_night
from allocation.settings import RunParameters
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
inbox, warehouse, outbox, day = sys.argv[1:5]
run_night(RunParameters.build(inbox=inbox, warehouse=warehouse, outbox=outbox, business_date=day))
"""


# -- the two nights ----------------------------------------------------------------------------
def first_night(site: Site) -> None:
    """Stock in hand and on a ship, lines that fit, a backorder, a bad row and a bad file."""
    site.clear_inbox()
    site.batches(
        "2026-11-25-manifest.csv",
        "B-CLOCK-1,RETRO-CLOCK,10,",
        "B-CLOCK-2,RETRO-CLOCK,5,2026-12-01",
        "B-LAMP-1,BLUE-LAMP,2,",
    )
    site.orders(
        "2026-11-25-orders.csv",
        "o1,RETRO-CLOCK,4",
        "o2,BLUE-LAMP,3",
        "o3,RETRO-CLOCK,8",
        "o4,SMALL-TABLE,1",
        "o5,BLUE-LAMP,lots",
    )
    site.write("orders/notes.txt", "not an order file\n")


def second_night(site: Site) -> None:
    """New stock for the backorders, new lines, a duplicate, a conflict, a bad row, a bad file."""
    site.clear_inbox()
    site.batches(
        "2026-11-26-manifest.csv",
        "B-LAMP-2,BLUE-LAMP,5,2026-12-03",
        "B-TABLE-1,SMALL-TABLE,3,",
    )
    site.orders(
        "2026-11-26-orders.csv",
        "o1,RETRO-CLOCK,4",
        "o6,SMALL-TABLE,2",
        "o7,BLUE-LAMP,1",
        "o2,BLUE-LAMP,9",
        "o8,,1",
    )
    site.orders("2026-11-26-web-shop.csv", "w1,RETRO-CLOCK,2", "w2,BLUE-LAMP,10")
    site.write("batches/readme.md", "not a manifest\n")


NIGHT_2_FILES = 4  # two order files, one manifest, one rejected file


# -- running a night in its own process group ----------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOCATION_")}
    env.update(TELEMETRY_OFF, ALLOCATION_INBOX_SETTLE_SECONDS="0", **extra)  # files just written
    if "ALLOCATION_CHECKS" in os.environ:  # the checks as the test set them (conftest)
        env["ALLOCATION_CHECKS"] = os.environ["ALLOCATION_CHECKS"]
    return env


def run_group(args: list[str], env: Mapping[str, str], cwd: Path, timeout: float) -> int:
    """Runs a command as the leader of a new process group and returns its exit code; whatever
    it leaves running (Prefect's temporary server, when it was killed) is killed with it.

    Output goes to a file, not a pipe: an orphaned server would hold a pipe open forever."""
    with (cwd / "process.log").open("ab") as log:
        proc = subprocess.Popen(
            args, env=dict(env), cwd=cwd, stdout=log, stderr=log, start_new_session=True
        )
        try:
            proc.wait(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print((cwd / "process.log").read_text(errors="replace"))  # shown when an assertion fails
    return proc.returncode


def night_process(site: Site, day: str, crash_at: str) -> int:
    args = [sys.executable, "-c", NIGHT_SCRIPT, str(site.inbox), str(site.warehouse)]
    args += [str(site.outbox), day]
    return run_group(args, child_env(ALLOCATION_CRASH_AT=crash_at), site.root, timeout=120)


def cli_night(
    site: Site, day: str, prefect_home: Path, api: str, crash_at: str | None = None
) -> int:
    """`allocation run` against the session's Prefect API (`api`)."""
    args = [str(BIN / "allocation"), "run", "--inbox", str(site.inbox), "--warehouse"]
    args += [str(site.warehouse), "--outbox", str(site.outbox), "--business-date", day]
    env = child_env(PREFECT_HOME=str(prefect_home), PREFECT_API_URL=api)
    if crash_at:
        env["ALLOCATION_CRASH_AT"] = crash_at
    return run_group(args, env, site.root, timeout=240)


# -- what an analyst and a reader of the outbox see ---------------------------------------------
def published_tables(site: Site) -> dict[str, list[dict[str, Any]]]:
    """The published copy's tables, read-only as an analyst reads them, in a stable order."""
    con = duckdb.connect(str(site.warehouse), read_only=True)
    try:
        return {
            table: con.sql(f"SELECT {columns} FROM {table} ORDER BY ALL").pl().to_dicts()  # noqa: S608
            for table, columns in TABLES.items()
        }
    finally:
        con.close()


def published_nights(site: Site) -> list[str]:
    return sorted({str(row[0]) for row in site.query("SELECT business_date FROM runs")})


def reports(site: Site, day: str) -> dict[str, Any]:
    """The night's reports in file order, minus run ids."""
    folder = site.outbox / day

    def csv(name: str) -> list[dict[str, Any]]:
        return pl.read_csv(folder / name, infer_schema=False).to_dicts()

    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    # The checks are the latest run's, over what that run read (a rerun after a kill skips the
    # files the killed run committed): they describe the run, like its id, not the night.
    del summary["run_id"], summary["runs"], summary["checks"]
    return {
        "allocations.csv": [
            {k: v for k, v in row.items() if k != "run_id"} for row in csv("allocations.csv")
        ],
        "out_of_stock.csv": csv("out_of_stock.csv"),
        "rejected.csv": csv("rejected.csv"),
        "reallocations.csv": csv("reallocations.csv"),
        "summary.json": summary,
    }


def snapshot(site: Site) -> dict[str, Any]:
    return {
        "tables": published_tables(site),
        "night 1": reports(site, NIGHT_1),
        "night 2": reports(site, NIGHT_2),
        "latest": os.readlink(site.outbox / "latest"),
    }


def leftovers(site: Site) -> list[Path]:
    """Half-written things a killed run may leave: none may be visible after the rerun."""
    return sorted(
        [
            *site.outbox.rglob(".*tmp-*"),
            *site.outbox.rglob(".*.old-*"),
            *site.warehouse.parent.glob(f".{site.warehouse.name}.publish-*"),
            *site.warehouse.parent.glob(f"{site.warehouse.name}.wal"),
            # a copy for rollbacks not yet renamed (made while the reports were written)
            *site.params(NIGHT_2).state_folder.published.glob(".*.partial"),
            # a load's staging file
            *site.params(NIGHT_2).state_folder.load.glob("*"),
        ]
    )


def rerun_skipped(summary: dict[str, Any]) -> int:
    files: dict[str, Any] = summary["files"]
    skipped: int = files.pop("skipped_already_ingested")
    return skipped


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both nights run once each, never killed, on a fresh site: what every rerun must match."""
    site = Site(tmp_path_factory.mktemp("uninterrupted"))
    first_night(site)
    site.run(NIGHT_1)
    second_night(site)
    site.run(NIGHT_2)
    result = snapshot(site)
    assert result["night 2"]["summary.json"]["allocated"] > 0
    assert result["night 2"]["out_of_stock.csv"], "the nights must leave a backorder open"
    assert result["night 2"]["rejected.csv"], "the nights must reject rows and files"
    assert result["night 2"]["summary.json"]["files"]["skipped_already_ingested"] == 0
    return result


@pytest.fixture
def night_1_done(site: Site) -> Iterator[dict[str, Any]]:
    """Night 1 committed and published, night 2's files in the inbox; yields what analysts see."""
    first_night(site)
    site.run(NIGHT_1)
    seen = published_tables(site)
    second_night(site)
    yield seen


def assert_converged(
    site: Site, uninterrupted: dict[str, Any], crash_at: str, seen_before: dict[str, Any]
) -> None:
    after = snapshot(site)
    expected = copy.deepcopy(uninterrupted)
    # The one count that tells an operator a rerun happened: files it found already committed.
    skipped = rerun_skipped(after["night 2"]["summary.json"])
    rerun_skipped(expected["night 2"]["summary.json"])
    assert skipped == (NIGHT_2_FILES if crash_at in COMMITTED_AT else 0)
    for table, rows in expected["tables"].items():
        assert after["tables"][table] == rows, f"{table} differs from an uninterrupted run"
    for night in ("night 1", "night 2"):
        for name, content in expected[night].items():
            assert after[night][name] == content, f"{night} {name} differs"
    assert after["latest"] == NIGHT_2
    assert leftovers(site) == []
    assert after["tables"] != seen_before


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_night_killed_anywhere_converges_when_run_again(
    site: Site,
    night_1_done: dict[str, Any],
    uninterrupted: dict[str, Any],
    crash_at: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert night_process(site, NIGHT_2, crash_at) == -signal.SIGKILL

    # Killed: analysts still have night 1, whole; no report folder is ever half-written.
    assert published_nights(site) == [NIGHT_1]
    assert published_tables(site) == night_1_done
    if (site.outbox / NIGHT_2).exists():
        assert crash_at == "while-publishing", "reports must wait for the commit"
        assert reports(site, NIGHT_2)["summary.json"]["allocated"] > 0
    else:
        assert os.readlink(site.outbox / "latest") == NIGHT_1

    # Run it again: it takes over the dead run's lock, with a warning naming it, and converges.
    dead = json.loads((site.params(NIGHT_2).state_dir / "run.lock").read_text())
    with caplog.at_level(logging.WARNING, logger="allocation"):
        summary = site.run(NIGHT_2)
    assert summary["business_date"] == NIGHT_2
    assert any(
        "Taking over the warehouse lock" in record.getMessage()
        and f"(PID {dead['pid']}, business date {NIGHT_2}" in record.getMessage()
        and "no longer running" in record.getMessage()
        for record in caplog.records
    ), "the rerun must say it took over the killed run's lock"
    assert_converged(site, uninterrupted, crash_at, night_1_done)


@pytest.mark.parametrize("crash_at", ["while-writing-reports", "while-publishing"])
def test_the_next_night_removes_what_a_killed_night_half_wrote(
    site: Site, night_1_done: dict[str, Any], crash_at: str
) -> None:
    """Even when the killed night is not run again first, the next night cleans up after it."""
    assert night_process(site, NIGHT_2, crash_at) == -signal.SIGKILL
    assert leftovers(site), "the kill must have left a temporary file or folder behind"

    site.clear_inbox()
    site.run("2026-11-27")

    assert leftovers(site) == []
    assert os.readlink(site.outbox / "latest") == "2026-11-27"


def test_running_a_completed_night_again_changes_nothing(
    site: Site, night_1_done: dict[str, Any], uninterrupted: dict[str, Any]
) -> None:
    """A rerun with nothing to do (a duplicate trigger) records no file or row twice."""
    site.run(NIGHT_2)
    site.run(NIGHT_2)
    assert_converged(site, uninterrupted, "after-commit", night_1_done)


@pytest.mark.e2e
@pytest.mark.slow
def test_the_allocation_command_killed_after_its_commit_converges_when_run_again(
    site: Site,
    night_1_done: dict[str, Any],
    uninterrupted: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    prefect_api: str,
) -> None:
    """The product path: `allocation run` under Prefect, killed once the night is committed but
    before any report exists; the same command again must write the night's reports in full."""
    prefect_home = tmp_path_factory.getbasetemp() / "prefect-home-issue-8"
    prefect_home.mkdir(exist_ok=True)

    assert cli_night(site, NIGHT_2, prefect_home, prefect_api, "after-commit") == -signal.SIGKILL
    assert published_nights(site) == [NIGHT_1]
    assert not (site.outbox / NIGHT_2).exists()

    assert cli_night(site, NIGHT_2, prefect_home, prefect_api) == 0
    assert_converged(site, uninterrupted, "after-commit", night_1_done)
