"""The night each kept copy holds is read from the copy once, then from the record beside the
copies (`allocation.io.kept_nights`): a night no longer opens every kept copy with DuckDB."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from allocation.io import restore
from allocation.io.kept_nights import RECORD
from allocation.io.publish import copy_state, put_in_place
from allocation.io.restore import kept_copies
from allocation.io.unit_of_work import PIPELINE_TABLES
from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION


def _copy_of_night(path: Path, night: str) -> None:
    """A file whose latest night is `night` (a run of that night added to it)."""
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE IF NOT EXISTS runs (business_date DATE)")
        con.execute("INSERT INTO runs VALUES (?::DATE)", [night])
    finally:
        con.close()


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the kept copies DuckDB is asked to open, in order."""
    names: list[str] = []
    read_night = restore.night_of

    def night_of(copy: Path) -> dt.date | None:
        names.append(copy.name)
        return read_night(copy)

    monkeypatch.setattr(restore, "night_of", night_of)
    return names


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """The kept copies' folder."""
    folder = tmp_path / "published"
    folder.mkdir()
    return folder


def _nights(history: Path) -> list[tuple[str, dt.date]]:
    return [(c.path.name, c.business_date) for c in kept_copies(history)]


#: Lists the kept copies of the folder argv[1] as a night's process does, and prints them
#: with the copies DuckDB was asked to open.
_LISTING = """
import json, sys
from pathlib import Path
from allocation.io import restore
opened = []
read_night = restore.night_of
def night_of(copy):
    opened.append(copy.name)
    return read_night(copy)
restore.night_of = night_of
copies = restore.kept_copies(Path(sys.argv[1]))
print(json.dumps({"nights": [[c.path.name, str(c.business_date)] for c in copies], "opened": opened}))
"""


def _listed_by_a_new_process(history: Path) -> tuple[list[list[str]], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _LISTING, str(history)], capture_output=True, text=True, check=True
    )
    listing = json.loads(done.stdout)
    return listing["nights"], sorted(listing["opened"])


def test_each_kept_copy_is_opened_once_then_later_nights_read_its_night_from_the_record(
    history: Path,
) -> None:
    """Every night is a process of its own: before the record, each one opened every kept copy."""
    _copy_of_night(history / "a.duckdb", "2026-11-25")
    _copy_of_night(history / "b.duckdb", "2026-11-26")
    a_and_b = [["a.duckdb", "2026-11-25"], ["b.duckdb", "2026-11-26"]]
    assert _listed_by_a_new_process(history) == (a_and_b, ["a.duckdb", "b.duckdb"])

    _copy_of_night(history / "c.duckdb", "2026-11-27")
    c = ["c.duckdb", "2026-11-27"]
    assert _listed_by_a_new_process(history) == ([*a_and_b, c], ["c.duckdb"])
    assert _listed_by_a_new_process(history) == ([*a_and_b, c], [])

    (history / "a.duckdb").unlink()  # pruned
    assert _listed_by_a_new_process(history) == ([a_and_b[1], c], [])


def test_a_copy_replaced_under_its_own_name_is_read_again(
    tmp_path: Path, history: Path, opened: list[str]
) -> None:
    _copy_of_night(history / "copy.duckdb", "2026-11-25")
    assert _nights(history) == [("copy.duckdb", dt.date(2026, 11, 25))]

    _copy_of_night(tmp_path / "newer.duckdb", "2026-11-26")
    os.replace(tmp_path / "newer.duckdb", history / "copy.duckdb")
    assert _nights(history) == [("copy.duckdb", dt.date(2026, 11, 26))]
    assert opened == ["copy.duckdb", "copy.duckdb"]


@pytest.mark.parametrize(
    "record",
    [b"", b"{not json", b'{"copies": [{"name": 1}]}', b"\xff\xfe", b'{"copies": 7}', b"[]"],
    ids=["empty", "cut-short", "missing-fields", "not-utf8", "wrong-shape", "a-list"],
)
def test_a_damaged_record_is_ignored_and_written_again(
    history: Path, opened: list[str], record: bytes
) -> None:
    _copy_of_night(history / "a.duckdb", "2026-11-25")
    (history / RECORD).write_bytes(record)

    assert _nights(history) == [("a.duckdb", dt.date(2026, 11, 25))]
    assert _nights(history) == [("a.duckdb", dt.date(2026, 11, 25))]
    assert opened == ["a.duckdb"]  # the record was written again, whole


def test_a_record_that_cannot_be_written_costs_only_the_opens(
    history: Path, opened: list[str]
) -> None:
    _copy_of_night(history / "a.duckdb", "2026-11-25")
    (history / RECORD).mkdir()  # in the way

    assert _nights(history) == [("a.duckdb", dt.date(2026, 11, 25))]
    assert _nights(history) == [("a.duckdb", dt.date(2026, 11, 25))]
    assert opened == ["a.duckdb", "a.duckdb"]
    assert [p.name for p in history.glob(".*.partial")] == []


def test_the_record_is_never_taken_for_a_copy(history: Path) -> None:
    _copy_of_night(history / "a.duckdb", "2026-11-25")
    kept_copies(history)
    assert (history / RECORD).is_file()
    assert [c.path.name for c in kept_copies(history)] == ["a.duckdb"]


def test_a_publish_puts_its_copy_in_place_without_opening_a_kept_copy(
    tmp_path: Path, history: Path, opened: list[str]
) -> None:
    state = tmp_path / "state.duckdb"
    _copy_of_night(state, "2026-11-24")
    con = duckdb.connect(str(state))
    for table in sorted(PIPELINE_TABLES - {"runs"}):  # so publishing takes it for ours
        con.execute(f"CREATE TABLE {table} (x INTEGER)")
    con.close()
    warehouse = tmp_path / "warehouse.duckdb"
    for label, night in [("night-1", "2026-11-24"), ("night-2", "2026-11-25")]:
        if label == "night-2":
            _copy_of_night(state, night)
        copies = copy_state(state, warehouse, history, label, DEFAULT_STORAGE_VERSION)
        opened.clear()  # the copy's night is read here, beside the night's reports

        put_in_place(copies, warehouse, history, label, keep=1)

        assert opened == []  # the rename and the pruning open no copy
    assert _nights(history) == [("night-2.duckdb", dt.date(2026, 11, 25))]
    assert opened == []
