"""The night checks itself before its commit (issue 25), against real files and real DuckDB: the
broken feeds of the issue stop the night with nothing committed, the same night run again
accepting the check commits and keeps the failure as accepted, a stopped night left alone stops
the next one, and every result is kept in `night_checks` and `summary.json`."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from allocation.service.night_checks import NightStopped
from allocation.service.state import state_db
from conftest import Site

NIGHT, NEXT, AFTER = "2026-11-25", "2026-11-26", "2026-11-27"


def state(site: Site, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    """The pipeline's working state (a stopped first night publishes no analysts' copy)."""
    con = duckdb.connect(str(state_db(site.params(NIGHT))), read_only=True)
    try:
        return con.sql(sql, params=params or []).fetchall()
    finally:
        con.close()


def ordinary(site: Site, tag: str = "") -> None:
    site.batches(f"b{tag}.csv", f"B{tag}1,RETRO-CLOCK,10,", f"B{tag}2,SMALL-TABLE,5,2026-12-01")
    site.orders(f"o{tag}.csv", f"o{tag}1,RETRO-CLOCK,3", f"o{tag}2,SMALL-TABLE,2")


def stopped(site: Site, day: str, accept: str = "") -> NightStopped:
    with pytest.raises(NightStopped) as error:
        site.run(day, accept=accept)
    return error.value


def assert_nothing_committed(site: Site, day: str) -> None:
    assert state(site, "SELECT count(*) FROM runs WHERE business_date = ?", [day]) == [(0,)]
    assert not (site.outbox / day).exists()


def test_an_ordinary_night_passes_every_check_and_keeps_them(site: Site) -> None:
    ordinary(site)
    summary = site.run(NIGHT)

    results = {c["check"]: c["result"] for c in summary["checks"]}
    assert set(results.values()) <= {"passed", "skipped"}, results
    assert results["order_files"] == results["files_rejected"] == "passed"
    kept = site.query("SELECT check_name, result, committed FROM night_checks ORDER BY rowid")
    assert [(name, result) for name, result, _ in kept] == list(results.items())
    assert all(committed for *_, committed in kept)
    on_disk = json.loads((site.outbox / NIGHT / "summary.json").read_text("utf-8"))
    assert on_disk["checks"] == summary["checks"] and on_disk["orders"]["received"] == 2


def test_an_orders_file_missing_qty_stops_the_night_and_commits_nothing(site: Site) -> None:
    ordinary(site)
    site.orders("late.csv", "o9,RETRO-CLOCK", header="orderid,sku")

    stop = stopped(site, NIGHT)

    line = str(stop)
    assert line.startswith(f"night {NIGHT} stopped by check(s) files_rejected 1 (fails above 0)")
    assert "--accept files_rejected" in line and "\n" not in line
    assert_nothing_committed(site, NIGHT)
    assert not (site.outbox / "latest").exists()
    assert not site.warehouse.exists()  # nothing published
    assert state(site, "SELECT count(*) FROM order_lines") == [(0,)]
    assert state(
        site, "SELECT result, committed FROM night_checks WHERE check_name = 'files_rejected'"
    ) == [("failed", False)]


def test_the_same_night_accepting_the_check_commits_and_keeps_it_as_accepted(site: Site) -> None:
    ordinary(site)
    site.orders("late.csv", "o9,RETRO-CLOCK", header="orderid,sku")
    stopped(site, NIGHT)

    summary = site.run(NIGHT, accept="files_rejected")

    assert summary["allocated"] == 2
    by_check = {c["check"]: c for c in summary["checks"]}
    assert by_check["files_rejected"]["result"] == "accepted"
    assert by_check["files_rejected"]["figure"] == 1
    assert site.query(
        "SELECT committed, count(*) FROM night_checks WHERE check_name = 'files_rejected' "
        "GROUP BY ALL ORDER BY ALL"
    ) == [(False, 1), (True, 1)]


def test_a_misnamed_orders_folder_stops_the_night(site: Site) -> None:
    ordinary(site)
    site.run(NIGHT)
    site.clear_inbox()
    site.batches("b2.csv", "B3,RETRO-CLOCK,10,")
    site.write("order/o.csv", "orderid,sku,qty\no9,RETRO-CLOCK,3\n")  # "order", not "orders"

    stop = stopped(site, NEXT)

    assert "order_files 0 (fails below 1)" in str(stop)
    assert_nothing_committed(site, NEXT)


def test_a_first_night_with_only_manifests_stocks_the_warehouse(site: Site) -> None:
    site.batches("b.csv", "B1,RETRO-CLOCK,10,")
    summary = site.run(NIGHT)
    assert {c["check"]: c["result"] for c in summary["checks"]}["order_files"] == "skipped"


def test_an_empty_night_commits_when_a_setting_says_it_is_normal(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.batches("b.csv", "B1,RETRO-CLOCK,10,")
    monkeypatch.setenv("ALLOCATION_EMPTY_NIGHT_OK", "true")

    summary = site.run(NIGHT)

    assert {c["check"]: c["result"] for c in summary["checks"]}["order_files"] == "skipped"


def test_a_manifest_with_a_renamed_eta_column_stops_instead_of_putting_all_in_stock(
    site: Site,
) -> None:
    """The reader rejects such a manifest whole (its own rule): the night stops on it."""
    site.batches("b.csv", "B1,RETRO-CLOCK,10,2026-12-24", header="reference,sku,qty,eta_date")
    site.orders("o.csv", "o1,RETRO-CLOCK,3")

    assert "files_rejected 1" in str(stopped(site, NIGHT))
    assert_nothing_committed(site, NIGHT)


def test_a_manifest_whose_etas_moved_to_another_column_stops(site: Site) -> None:
    """Every eta blank (in stock now) and the dates in an ignored column: a wrong export."""
    # (A column named like an eta, `arrival` or `ETA Date`, rejects the file at the door and
    # stops the night as files_rejected; this one has a name the door cannot tell.)
    site.batches("b.csv", "B1,RETRO-CLOCK,10,,2026-12-24", header="reference,sku,qty,eta,delivery")
    site.orders("o.csv", "o1,RETRO-CLOCK,3")

    stop = stopped(site, NIGHT)

    assert "manifest_without_eta 1 (fails above 0)" in str(stop)
    assert "batches/b.csv" in str(stop)
    assert_nothing_committed(site, NIGHT)
    # Accepted, the batch is in stock now, as the file says.
    assert site.run(NIGHT, accept="manifest_without_eta")["allocated"] == 1


def test_a_manifest_with_a_renamed_qty_column_stops(site: Site) -> None:
    site.batches("b.csv", "B1,RETRO-CLOCK,10,", header="reference,sku,quantity,eta")
    site.orders("o.csv", "o1,RETRO-CLOCK,3")

    assert "files_rejected 1" in str(stopped(site, NIGHT))


def test_a_check_set_to_warn_lets_the_night_commit_and_keeps_the_failure(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATION_CHECKS", "files_rejected=warn")
    ordinary(site)
    site.orders("late.csv", "o9,RETRO-CLOCK", header="orderid,sku")

    summary = site.run(NIGHT)

    [found] = [c for c in summary["checks"] if c["check"] == "files_rejected"]
    assert (found["level"], found["result"]) == ("warn", "failed")


def test_a_bad_checks_setting_is_refused_before_anything_is_read(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from allocation.settings import ParameterError

    monkeypatch.setenv("ALLOCATION_CHECKS", "files_rejected=loud")
    ordinary(site)
    with pytest.raises(ParameterError, match="ALLOCATION_CHECKS="):
        site.run(NIGHT)
    assert not state_db(site.params(NIGHT)).exists()


def test_a_stopped_night_left_alone_stops_the_next_night_until_it_is_run_again(
    site: Site,
) -> None:
    ordinary(site)
    site.run(NIGHT)
    site.clear_inbox()
    ordinary(site, "x")
    site.orders("broken.csv", "o9,RETRO-CLOCK", header="orderid,sku")
    stopped(site, NEXT)  # files_rejected; the operator does nothing
    ordinary(site, "y")  # the next night's files arrive beside the stopped night's

    stop = stopped(site, AFTER)

    assert f"earlier night(s) not committed: {NEXT} (stopped by files_rejected)" in str(stop)
    assert_nothing_committed(site, AFTER)
    # The stopped date first, accepting its check; then the next night commits as usual.
    site.run(NEXT, accept="files_rejected")
    site.clear_inbox()
    ordinary(site, "z")
    summary = site.run(AFTER)
    assert {c["check"]: c["result"] for c in summary["checks"]}["earlier_night_stopped"] == "passed"


def test_accepting_the_stopped_earlier_night_takes_its_files_in_under_the_later_date(
    site: Site,
) -> None:
    ordinary(site)
    site.run(NIGHT)
    site.clear_inbox()
    ordinary(site, "x")
    site.orders("broken.csv", "o9,RETRO-CLOCK", header="orderid,sku")
    stopped(site, NEXT)
    (site.inbox / "orders" / "broken.csv").unlink()  # the operator removes the broken file

    summary = site.run(AFTER, accept="earlier_night_stopped")

    assert {c["check"]: c["result"] for c in summary["checks"]}["earlier_night_stopped"] == (
        "accepted"
    )
    assert site.query(
        "SELECT DISTINCT first_seen::VARCHAR FROM order_lines WHERE orderid LIKE 'ox%'"
    ) == [(AFTER,)]
    site.clear_inbox()
    ordinary(site, "z")
    site.run("2026-11-28")  # the stop is dealt with: later nights are not stopped by it


def test_a_dry_run_reports_what_would_stop_and_never_stops(site: Site) -> None:
    ordinary(site)
    site.orders("late.csv", "o9,RETRO-CLOCK", header="orderid,sku")

    summary = site.run(NIGHT, dry_run=True)

    [found] = [c for c in summary["checks"] if c["check"] == "files_rejected"]
    assert found["result"] == "failed"
    assert Path(summary["outbox_folder"]).name == "dry-run"
    # Nothing kept: a dry run's transaction is rolled back (here even the new state's tables).
    assert state(
        site, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'night_checks'"
    ) == [(0,)]


def test_an_out_of_stock_jump_only_warns_and_the_trend_shows_the_nights(site: Site) -> None:
    site.batches("b.csv", "B1,RETRO-CLOCK,30,")
    site.orders("o.csv", *(f"o{n},RETRO-CLOCK,1" for n in range(20)))
    site.run(NIGHT)
    site.clear_inbox()
    site.orders("o2.csv", *(f"p{n},RETRO-CLOCK,1" for n in range(25)))  # 10 left in stock

    summary = site.run(NEXT)

    [jump] = [c for c in summary["checks"] if c["check"] == "out_of_stock_jump"]
    assert (jump["level"], jump["result"]) == ("warn", "failed")
    assert jump["figure"] == pytest.approx(15 / 25)
    assert summary["trend"] == [
        {"business_date": NIGHT, "received": 20, "accepted": 20, "rejected": 0, "allocated": 20,
         "out_of_stock": 0, "lines_waiting": 0, "oldest_wait_days": None},
        {"business_date": NEXT, "received": 25, "accepted": 25, "rejected": 0, "allocated": 10,
         "out_of_stock": 15, "lines_waiting": 0, "oldest_wait_days": 0},
    ]  # fmt: skip
    site.clear_inbox()
    site.batches("b2.csv", "B2,RETRO-CLOCK,5,")
    site.orders("o3.csv", "q1,SMALL-TABLE,1")
    site.run(AFTER, accept="order_volume")
    assert site.query(
        "SELECT business_date::VARCHAR, lines_waiting, oldest_wait_days, checks_warned "
        "FROM nightly_trend ORDER BY 1"
    ) == [(NIGHT, 0, None, 0), (NEXT, 0, 0, 1), (AFTER, 10, 1, 0)]
