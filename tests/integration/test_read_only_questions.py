"""The read-only questions about committed nights (which files a date ingested, whether a run
committed, the last committed date) are asked of the warehouse as it is: they never upgrade an
older schema or write to the file, and they answer what the upgraded warehouse would. A newer
schema is refused with the message the night's unit of work gives."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from allocation.io.pending import PendingNight, leave_note, read_note
from allocation.io.run_history import open_run_history
from allocation.io.unit_of_work import DuckDBUnitOfWork, WarehouseError
from allocation.io.warehouse_schema import SCHEMA_VERSION, current_version
from allocation.service.after_commit import finish_committed_night
from allocation.service.state import (
    already_ingested,
    committed_run,
    last_committed_date,
    state_db,
)
from conftest import Site
from old_releases import HISTORY, install

FIRST_NIGHT = HISTORY[0][0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def schema_version(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return current_version(con)
    finally:
        con.close()


def upgraded_answers(path: Path, copy: Path, day: dt.date, run_id: str) -> tuple[object, ...]:
    """What a copy of the file answers once a unit of work has upgraded it."""
    shutil.copyfile(path, copy)
    with DuckDBUnitOfWork(copy) as uow:
        uow.commit()
    assert schema_version(copy) == SCHEMA_VERSION
    with open_run_history(copy) as history:
        return history.ingested_files(day), history.has_run(run_id)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_an_older_warehouse_answers_as_upgraded_and_is_left_as_it_was(
    site: Site, version: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = site.params(FIRST_NIGHT.isoformat())
    path = install(version, state_db(params))
    before = digest(path)
    con = duckdb.connect(str(path), read_only=True)
    run_id, last = con.sql("SELECT min(run_id), max(business_date) FROM runs").fetchall()[0]
    con.close()
    expected = upgraded_answers(path, tmp_path / "copy.duckdb", FIRST_NIGHT, str(run_id))
    caplog.set_level(logging.INFO)
    caplog.clear()  # the copy's upgrade above logs it, when this process logs INFO already

    answers = (already_ingested(params), committed_run(params, str(run_id)))

    assert answers == expected
    assert answers[0] and answers[1]  # the night's files, and its run, are there
    assert last_committed_date(params) == last
    assert schema_version(path) == version < SCHEMA_VERSION
    assert digest(path) == before
    assert "schema upgraded" not in caplog.text


def test_a_state_file_no_night_wrote_in_has_ingested_nothing(site: Site) -> None:
    params = site.params("2026-11-26")
    path = state_db(params)
    path.parent.mkdir(parents=True)
    duckdb.connect(str(path)).close()

    assert already_ingested(params) == set()
    assert committed_run(params, "run-1") is False
    assert last_committed_date(params) is None
    assert schema_version(path) == 0


def test_a_newer_schema_is_refused_with_the_unit_of_work_s_message(site: Site) -> None:
    params = site.params("2026-11-26")
    site.run("2026-11-26")
    path = state_db(params)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(WarehouseError) as by_unit_of_work, DuckDBUnitOfWork(path):
        pass

    for question in (
        lambda: already_ingested(params),
        lambda: committed_run(params, "run-1"),
    ):
        with pytest.raises(WarehouseError) as asked:
            question()
        assert str(asked.value) == str(by_unit_of_work.value)
        assert "newer than this code" in str(asked.value)


def test_the_questions_are_answered_while_another_process_reads_the_file(site: Site) -> None:
    """A reader in another process holds the file: a writer could not open it, the questions can."""
    params = site.params("2026-11-26")
    site.run("2026-11-26")
    path = state_db(params)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
            "print('open', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(WarehouseError), DuckDBUnitOfWork(path):
            pass

        assert last_committed_date(params) == dt.date(2026, 11, 26)
        assert committed_run(params, "no-such-run") is False
        assert len(already_ingested(params)) == 0  # the night had no files
    finally:
        holder.communicate(timeout=30)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_a_note_left_by_a_night_that_never_committed_is_dropped_without_an_upgrade(
    site: Site, version: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first thing a night asks: whether the run that left a note committed. Asked of an
    older warehouse, the question upgrades nothing and leaves it byte for byte as it was."""
    params = site.params(FIRST_NIGHT.isoformat())
    path = install(version, state_db(params))
    before = digest(path)
    leave_note(
        params.state_dir,
        PendingNight("never-committed", FIRST_NIGHT, "a-label", tmp_path / "outbox"),
    )

    caplog.set_level(logging.INFO)
    assert finish_committed_night(params, "this-run") is None

    assert read_note(params.state_dir) is None
    assert digest(path) == before
    assert schema_version(path) == version
    assert "schema upgraded" not in caplog.text
