"""Undo a night: `allocation rollback --to DATE` restores the working state kept after that
night, republishes it, and points `latest` back at it. And the copies it restores from are the
pipeline's own: nothing an analyst opens for writing changes them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from allocation import cli
from allocation.flows.artifacts import rollback_lines
from allocation.service.rollback import rollbacks_before
from allocation.service.state import state_db
from conftest import Site


def kept_copies(site: Site) -> list[Path]:
    return sorted((site.params("2026-11-25").state_dir / "published").glob("*.duckdb"))


def analyst_edits(warehouse: Path) -> None:
    """An analyst opens the published file read-write and changes a table."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("UPDATE batches SET purchased = 999")
        con.execute("CREATE TABLE my_notes AS SELECT 1 AS x")
    finally:
        con.close()


def purchased_in(path: Path) -> list[tuple[str, int]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql("SELECT reference, purchased FROM batches ORDER BY 1").fetchall()
    finally:
        con.close()


def test_the_kept_copies_do_not_share_anything_with_the_analysts_file(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,3,")
    site.run(day(0))
    [kept] = kept_copies(site)
    assert not os.path.samefile(kept, site.warehouse)

    analyst_edits(site.warehouse)

    assert purchased_in(kept) == [("b1", 3)]


def rollback(site: Site, to: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(
        ["rollback", "--to", to, "--warehouse", str(site.warehouse), "--outbox", str(site.outbox)]
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def latest(site: Site) -> str:
    return (site.outbox / "latest").resolve().name


def nights_in(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql("SELECT DISTINCT business_date::VARCHAR FROM runs ORDER BY 1").fetchall()
    finally:
        con.close()
    return [night for (night,) in rows]


def state(site: Site) -> Path:
    return state_db(site.params("2026-11-25"))


def three_nights(site: Site, day: Callable[[int], str]) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,2,")
    site.orders("o1.csv", "o1,RETRO-CLOCK,1", "o2,RETRO-CLOCK,1", "o3,RETRO-CLOCK,1")
    site.run(day(0))  # o1, o2 placed; o3 waits
    site.batches("wrong.csv", "b1,RETRO-CLOCK,0,")  # a wrong manifest: cancels b1
    site.run(day(1))  # o1, o2 released; all three wait
    site.orders("o4.csv", "o4,RETRO-CLOCK,1")
    site.run(day(2))


def test_rolling_back_restores_the_night_republishes_it_and_points_latest_at_it(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    three_nights(site, day)
    assert latest(site) == day(2)

    code, out, err = rollback(site, day(0), capsys)

    assert code == 0, err
    assert f"Rolled back to night {day(0)}" in out
    assert nights_in(state(site)) == nights_in(site.warehouse) == [day(0)]
    assert site.query("SELECT orderid, batchref FROM order_lines ORDER BY 1") == [
        ("o1", "b1"),
        ("o2", "b1"),
        ("o3", None),
    ]
    assert latest(site) == day(0)
    assert [r["orderid"] for r in site.report(day(0), "allocations")] == ["o1", "o2"]
    # The later nights' reports are kept, moved aside where no `latest` will find them.
    assert not (site.outbox / day(1)).exists() and not (site.outbox / day(2)).exists()
    [aside] = (site.outbox / "rolled-back").iterdir()
    assert sorted(p.name for p in aside.iterdir()) == [day(1), day(2)]

    # The night after runs from there: the wrong manifest fixed (same reference, new file).
    (site.inbox / "batches" / "wrong.csv").unlink()
    site.batches("fixed.csv", "b1,RETRO-CLOCK,3,")
    site.run(day(1))
    assert site.query("SELECT orderid, batchref FROM order_lines ORDER BY 1") == [
        ("o1", "b1"),
        ("o2", "b1"),
        ("o3", "b1"),
        ("o4", None),
    ]
    assert latest(site) == day(1)


def test_the_next_night_reports_the_rollback_once(
    site: Site,
    day: Callable[[int], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rolled-back nights must not look current: the rollback is recorded with the runs it
    undid, and the next night's summary names it (old code recorded nothing)."""
    three_nights(site, day)
    undone = site.query(
        "SELECT business_date::VARCHAR, run_id FROM runs WHERE business_date > ?", [day(0)]
    )
    monkeypatch.delenv("PREFECT_API_URL", raising=False)

    code, out, _ = rollback(site, day(0), capsys)

    assert code == 0
    assert "Prefect: not told (PREFECT_API_URL is not set)" in out
    [record] = rollbacks_before(site.params(day(1)), dt.date.fromisoformat(day(1)))
    assert record["to"] == day(0)
    assert sorted((r["business_date"], r["run_id"]) for r in record["undone"]) == sorted(undone)
    [line] = rollback_lines([record])
    assert f"to night {day(0)}: undid {day(1)}, {day(2)}" in line
    assert "rolled-back" in line

    site.run(day(1))  # the next night: its summary shows the rollback; the one after does not
    assert rollbacks_before(site.params(day(2)), dt.date.fromisoformat(day(2))) == []


def test_a_mistyped_far_future_night_can_be_undone(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,5,")
    site.run(day(0))
    site.orders("o1.csv", "o1,RETRO-CLOCK,1")
    site.run("9999-12-31")
    assert latest(site) == "9999-12-31"

    assert rollback(site, day(0), capsys)[0] == 0

    assert latest(site) == day(0)
    assert site.query("SELECT count(*) FROM order_lines") == [(0,)]
    site.run(day(1))  # no longer refused as "earlier than 9999-12-31"
    assert latest(site) == day(1)
    assert site.query("SELECT orderid, batchref FROM order_lines") == [("o1", "b1")]


def test_a_rollback_can_be_undone_while_the_later_copy_is_kept(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    three_nights(site, day)
    assert rollback(site, day(0), capsys)[0] == 0
    assert rollback(site, day(2), capsys)[0] == 0
    assert nights_in(site.warehouse) == [day(0), day(1), day(2)]
    assert latest(site) == day(2)
    assert (site.outbox / day(2) / "summary.json").exists()


def test_a_night_run_three_times_takes_one_place_in_the_rollback_depth(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Seven nights, the last one run three times (a crash rerun, then late files): the copies
    of the last seven nights are kept. Old code kept the last seven runs' copies, so the second
    night was gone and `rollback --to` it exited 2."""
    site.batches("b1.csv", "b1,RETRO-CLOCK,100,")
    for n in range(7):
        site.orders(f"o{n}.csv", f"o{n},RETRO-CLOCK,1")
        site.run(day(n))
    site.run(day(6))  # the crash rerun
    site.orders("late.csv", "late,RETRO-CLOCK,1")
    site.run(day(6))  # late files, same night

    kept = kept_copies(site)
    assert sorted(nights_in(path)[-1] for path in kept) == [day(n) for n in range(7)]

    code, _, err = rollback(site, day(1), capsys)

    assert code == 0, err
    assert nights_in(site.warehouse) == [day(0), day(1)]
    assert latest(site) == day(1)


def test_the_rollback_depth_counts_the_nights_published_most_recently(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped far-future night, undone, ages out like any other instead of holding one of
    the places for ever."""
    site.batches("b1.csv", "b1,RETRO-CLOCK,100,")
    site.run("2026-11-25")
    site.run("9999-12-31")
    assert rollback(site, "2026-11-25", capsys)[0] == 0
    nights = [f"2026-12-0{n}" for n in range(1, 8)]
    for n, night in enumerate(nights):
        site.orders(f"o{n}.csv", f"o{n},RETRO-CLOCK,1")
        site.run(night)

    assert sorted(nights_in(path)[-1] for path in kept_copies(site)) == nights


def test_refuses_a_night_no_copy_is_kept_of_and_names_the_nights_that_are(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    three_nights(site, day)
    before = state(site).read_bytes()

    code, _, err = rollback(site, day(5), capsys)

    assert code == 2
    [line] = err.strip().splitlines()
    assert f"no copy of the night {day(5)} is kept" in line
    assert f"nights kept: {day(0)}, {day(1)}, {day(2)}" in line
    assert state(site).read_bytes() == before
    assert latest(site) == day(2)


def test_refuses_when_nothing_was_ever_kept_without_creating_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    warehouse = tmp_path / "typo" / "warehouse.duckdb"
    code = cli.main(
        ["rollback", "--to", "2026-11-25", "--warehouse", str(warehouse), "--outbox", "out"]
    )
    assert code == 2
    assert "nights kept: none" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_a_bad_date_is_a_parameter_error(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = rollback(site, "2026-13-01", capsys)
    assert code == 2
    assert "is not a real calendar date" in err


def test_waits_for_a_running_night_and_gives_up_with_exit_3(
    site: Site,
    day: Callable[[int], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from allocation.io.run_lock import run_lock

    three_nights(site, day)
    monkeypatch.setenv("ALLOCATION_LOCK_TIMEOUT_SECONDS", "0")
    lock = site.params(day(0)).state_dir / "run.lock"
    with run_lock(lock, run_id="a-night", business_date=day(3), timeout=0):
        code, _, err = rollback(site, day(0), capsys)
    assert code == 3
    assert "the warehouse is being written by run a-night" in err
    assert nights_in(state(site)) == [day(0), day(1), day(2)]


def test_an_analysts_edit_is_not_brought_back_by_a_rollback(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,3,")
    site.run(day(0))
    site.batches("b2.csv", "b2,RETRO-CLOCK,4,")
    site.run(day(1))

    analyst_edits(site.warehouse)  # the published file of night 2, opened read-write

    for night in (day(1), day(0)):
        assert rollback(site, night, capsys)[0] == 0
        published = purchased_in(site.warehouse)
        assert 999 not in [qty for _, qty in published], night
        assert purchased_in(state(site)) == published
        assert site.query("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'my_notes'") == [
            (0,)
        ]


def test_a_kill_while_restoring_leaves_the_old_state_and_the_next_rollback_completes(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    three_nights(site, day)
    before = state(site).read_bytes()
    script = "import sys; from allocation import cli; sys.exit(cli.main(sys.argv[1:]))"
    env = {**os.environ, "ALLOCATION_CRASH_AT": "while-restoring"}
    killed = subprocess.run(
        [sys.executable, "-c", script, "rollback", "--to", day(0),
         "--warehouse", str(site.warehouse), "--outbox", str(site.outbox)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert state(site).read_bytes() == before, "the old state, whole"
    assert list(state(site).parent.glob(".restoring-*")), "the copy being restored was left"
    assert latest(site) == day(2)

    assert rollback(site, day(0), capsys)[0] == 0
    assert nights_in(state(site)) == [day(0)]
    assert not list(state(site).parent.glob(".restoring-*"))
    assert latest(site) == day(0)


def test_when_the_analysts_copy_cannot_be_replaced_the_outbox_is_rolled_back_already(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    three_nights(site, day)
    site.warehouse.unlink()
    site.warehouse.mkdir()  # something occupies the analysts' path

    code, _, err = rollback(site, day(0), capsys)

    assert code == 4, err
    assert "allocation publish --warehouse" in err
    assert nights_in(state(site)) == [day(0)]
    assert latest(site) == day(0), "no later night's folder is left for `latest` to find"
    site.warehouse.rmdir()
    assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
    assert nights_in(site.warehouse) == [day(0)]
