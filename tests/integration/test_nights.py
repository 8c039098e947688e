"""State across nights, against real DuckDB files and real report files."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import duckdb
import pytest

from allocation.service import night_records
from allocation.service.state import state_db
from conftest import Site


def allocations(site: Site, day: str) -> list[tuple[str, str, int, str]]:
    return [
        (r["orderid"], r["sku"], r["qty"], r["batchref"]) for r in site.report(day, "allocations")
    ]


def open_lines(site: Site, day: str) -> list[tuple[str, str, int]]:
    return [(r["orderid"], r["sku"], r["qty"]) for r in site.report(day, "out_of_stock")]


def test_allocates_to_in_stock_batches_before_shipments(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b.csv", "shipment,RETRO-CLOCK,100,2026-12-01", "in-stock,RETRO-CLOCK,100,")
    site.orders("o.csv", "o1,RETRO-CLOCK,10")
    site.run(day(0))
    assert allocations(site, day(0)) == [("o1", "RETRO-CLOCK", 10, "in-stock")]


def test_lines_are_allocated_in_arrival_order_and_go_out_of_stock_whole(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b.csv", "b1,SMALL-TABLE,10,")
    site.orders("1.csv", "first,SMALL-TABLE,6")
    site.orders("2.csv", "second,SMALL-TABLE,6", "third,SMALL-TABLE,4")
    summary = site.run(day(0))
    assert allocations(site, day(0)) == [
        ("first", "SMALL-TABLE", 6, "b1"),
        ("third", "SMALL-TABLE", 4, "b1"),
    ]
    assert open_lines(site, day(0)) == [("second", "SMALL-TABLE", 6)]
    assert (summary["allocated"], summary["out_of_stock"]) == (2, 1)


def test_backorders_are_allocated_first_when_stock_arrives(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b1.csv", "b1,BLUE-CUSHION,5,")
    site.orders("n1.csv", "early,BLUE-CUSHION,5", "waiting,BLUE-CUSHION,5")
    site.run(day(0))
    assert open_lines(site, day(0)) == [("waiting", "BLUE-CUSHION", 5)]

    site.clear_inbox()
    site.batches("b2.csv", "b2,BLUE-CUSHION,5,2026-12-01")
    site.orders("n2.csv", "late,BLUE-CUSHION,5")
    site.run(day(1))
    assert allocations(site, day(1)) == [("waiting", "BLUE-CUSHION", 5, "b2")]
    out = site.report(day(1), "out_of_stock")
    assert [(r["orderid"], str(r["first_seen"])) for r in out] == [("late", day(1))]

    site.clear_inbox()
    site.batches("b3.csv", "b3,BLUE-CUSHION,5,")
    site.run(day(2), accept="order_files")  # a night of stock only: no order file arrived
    assert allocations(site, day(2)) == [("late", "BLUE-CUSHION", 5, "b3")]
    assert open_lines(site, day(2)) == []
    assert site.query("SELECT count(*) FROM order_lines WHERE status = 'allocated'") == [(3,)]


def test_a_waiting_line_too_large_for_any_batch_stays_counted_and_reported_unread(
    site: Site, day: Callable[[int], str], caplog: pytest.LogCaptureFixture
) -> None:
    """A waiting line larger than every batch's room of its sku cannot be placed, so the night
    does not read it; it is still out of stock in the summary, the report and the warehouse."""
    site.batches("b1.csv", "b1,RETRO-CLOCK,5,")
    site.orders("n1.csv", "big,RETRO-CLOCK,8", "small,RETRO-CLOCK,1")
    site.run(day(0))
    assert open_lines(site, day(0)) == [("big", "RETRO-CLOCK", 8)]

    site.clear_inbox()
    site.batches("b2.csv", "b2,RETRO-CLOCK,2,2026-12-01")  # room 4 and 2: still not 8
    site.orders("n2.csv", "late,RETRO-CLOCK,3")
    with caplog.at_level(logging.INFO, logger="allocation"):
        summary = site.run(day(1))
    assert allocations(site, day(1)) == [("late", "RETRO-CLOCK", 3, "b1")]
    assert open_lines(site, day(1)) == [("big", "RETRO-CLOCK", 8)]
    assert (summary["allocated"], summary["out_of_stock"]) == (1, 1)
    assert any(
        "1 waiting line(s) larger than any batch's room tonight not read" in r.getMessage()
        for r in caplog.records
    )
    assert site.query("SELECT count(*) FROM order_lines WHERE status = 'out_of_stock'") == [(1,)]
    # the night's own figures, which the trend and the checks read, count it too
    assert site.query(
        "SELECT allocated, out_of_stock FROM runs WHERE business_date = ?::DATE", [day(1)]
    ) == [(1, 1)]

    site.clear_inbox()
    site.batches("b3.csv", "b3,RETRO-CLOCK,8,2026-12-02")
    site.orders("n3.csv", "later,RETRO-CLOCK,1")
    summary = site.run(day(2))
    assert allocations(site, day(2)) == [
        ("big", "RETRO-CLOCK", 8, "b3"),
        ("later", "RETRO-CLOCK", 1, "b1"),
    ]
    assert (summary["allocated"], summary["out_of_stock"]) == (2, 0)


def test_a_line_for_an_unknown_sku_waits_and_is_reported(
    site: Site, day: Callable[[int], str]
) -> None:
    site.orders("o.csv", "o1,OAK-SHELF,2")
    summary = site.run(day(0))
    [line] = site.report(day(0), "out_of_stock")
    assert (line["orderid"], line["available"], line["shortfall"], line["next_eta"]) == (
        "o1",
        0,
        2,
        None,
    )
    assert summary["out_of_stock"] == 1


def test_out_of_stock_report_names_the_next_batch_that_could_cover_the_line(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches(
        "b.csv", "small,GOLD-LAMP,1,2026-12-01", "big,GOLD-LAMP,9,2026-12-09", "now,GOLD-LAMP,0,"
    )
    site.orders("o.csv", "o1,GOLD-LAMP,5", "o2,GOLD-LAMP,5")
    site.run(day(0))
    [line] = site.report(day(0), "out_of_stock")
    assert line["orderid"] == "o2"
    assert line["available"] == 5  # 1 + 4 left
    assert line["next_eta"] is None  # no batch can take 5 whole any more


def test_duplicates_within_a_night_and_across_nights_are_counted_not_applied(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b.csv", "b1,RETRO-CLOCK,100,")
    site.orders("a.csv", "o1,RETRO-CLOCK,1", "o1,RETRO-CLOCK,1")
    site.orders("b.csv", "o1,RETRO-CLOCK,1")
    first = site.run(day(0))
    assert first["orders"] == {"received": 3, "accepted": 1, "duplicate": 2, "rejected": 0}

    site.run(day(1))  # same inbox, next night
    second = json.loads((site.outbox / day(1) / "summary.json").read_text())
    assert second["orders"] == {"received": 3, "accepted": 0, "duplicate": 3, "rejected": 0}
    assert second["batches"]["duplicate"] == 1
    assert allocations(site, day(1)) == []
    assert site.query("SELECT sum(allocated) FROM batches") == [(1,)]


def test_summary_json_adds_up_every_run_of_the_date(site: Site, day: Callable[[int], str]) -> None:
    site.batches("b.csv", "b1,RETRO-CLOCK,3,")
    site.orders("a.csv", "o1,RETRO-CLOCK,1", "o1,RETRO-CLOCK,1", "bad,RETRO-CLOCK,zero")
    first = site.run(day(0))
    # Later that night, new files arrive and the same date runs again.
    site.batches("c.csv", "b2,RETRO-CLOCK,5,", "b1,RETRO-CLOCK,3,")
    site.orders("d.csv", "o2,RETRO-CLOCK,4", "o1,RETRO-CLOCK,9", "o2,RETRO-CLOCK,4")
    second = site.run(day(0))

    summary = json.loads((site.outbox / day(0) / "summary.json").read_text())
    assert summary["runs"] == [first["run_id"], second["run_id"]]
    assert summary["run_id"] == second["run_id"] != first["run_id"]
    # First run: orders 3 received (1 accepted, 1 duplicate, 1 rejected), batches 1 accepted.
    # Second: orders 3 (1 accepted, 1 duplicate, 1 conflicting), batches 2 (1 new, 1 repeat).
    assert summary["orders"] == {"received": 6, "accepted": 2, "duplicate": 2, "rejected": 2}
    batches = {k: summary["batches"][k] for k in ("received", "accepted", "duplicate", "rejected")}
    assert batches == {"received": 3, "accepted": 2, "duplicate": 1, "rejected": 0}
    assert summary["files"]["received"] == 4
    assert summary["files"]["skipped_already_ingested"] == 2
    assert summary["allocated"] == 2  # o1 from the first run, o2 from the second
    assert allocations(site, day(0)) == [
        ("o1", "RETRO-CLOCK", 1, "b1"),
        ("o2", "RETRO-CLOCK", 4, "b2"),
    ]


def test_the_same_inbox_on_a_later_date_allocates_nothing(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b.csv", "b1,RETRO-CLOCK,3,")
    site.orders("a.csv", "o1,RETRO-CLOCK,1")
    site.run(day(0))
    summary = site.run(day(1))
    assert summary["allocated"] == 0
    assert (site.outbox / day(1) / "allocations.csv").read_text().splitlines() == [
        "orderid,sku,qty,batchref,eta,business_date,run_id"
    ]
    assert (site.outbox / "latest").resolve() == (site.outbox / day(1)).resolve()


def test_a_failure_mid_run_leaves_no_trace(
    site: Site, day: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site.batches("b.csv", "b1,RETRO-CLOCK,3,")
    site.orders("a.csv", "o1,RETRO-CLOCK,1")
    site.run(day(0))
    site.clear_inbox()
    site.batches("b2.csv", "b2,RETRO-CLOCK,3,")
    site.orders("b.csv", "o2,RETRO-CLOCK,1")

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full while recording the run")

    monkeypatch.setattr(night_records, "record_run", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        site.run(day(1))

    state = duckdb.connect(str(state_db(site.params(day(1)))), read_only=True)
    try:
        assert state.sql("SELECT count(*) FROM batches").fetchall() == [(1,)]
        assert state.sql("SELECT count(*) FROM order_lines").fetchall() == [(1,)]
        assert state.sql("SELECT count(*) FROM ingested_files").fetchall() == [(2,)]
        assert state.sql("SELECT count(*) FROM runs").fetchall() == [(1,)]
    finally:
        state.close()
    assert not (site.outbox / day(1)).exists()

    monkeypatch.undo()
    summary = site.run(day(1))
    assert allocations(site, day(1)) == [("o2", "RETRO-CLOCK", 1, "b1")]
    assert summary["orders"]["accepted"] == 1


def test_a_dry_run_writes_reports_but_commits_and_publishes_nothing(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b.csv", "b1,RETRO-CLOCK,3,")
    site.orders("a.csv", "o1,RETRO-CLOCK,1")
    site.run(day(0))
    published_before = site.warehouse.read_bytes()
    site.clear_inbox()
    site.orders("b.csv", "o2,RETRO-CLOCK,2")

    summary = site.run(day(1), dry_run=True)

    assert summary["allocated"] == 1
    dry = site.outbox / day(1) / "dry-run"
    assert (dry / "allocations.csv").read_text().splitlines()[1].startswith("o2,RETRO-CLOCK,2,b1")
    assert site.warehouse.read_bytes() == published_before
    assert site.query("SELECT count(*) FROM order_lines") == [(1,)]
    real = site.run(day(1))
    assert real["orders"]["accepted"] == 1


def _set_line_keys(site: Site, day: str, expression: str) -> None:
    """Sets every kept line key to `expression` in the working state, as a tool that does not
    know the column (NULL) or an upgraded DuckDB whose hash function changed would leave it."""
    con = duckdb.connect(str(state_db(site.params(day))))
    try:
        con.execute(f"UPDATE order_lines SET line_key = {expression}")  # noqa: S608
    finally:
        con.close()


@pytest.mark.parametrize(
    "kept", ["NULL", "line_key + 1"], ids=["keys-missing", "hash-function-changed"]
)
def test_repeats_are_found_whatever_became_of_the_kept_line_keys(
    site: Site, day: Callable[[int], str], kept: str
) -> None:
    """Repeats are looked up by the hash each line keeps, not by hashing every earlier line:
    a line kept without its hash, or with a hash this DuckDB no longer computes, is still
    recognised (the keys are put right), never taken for a new line and allocated twice."""
    site.batches("b.csv", "b1,RETRO-CLOCK,100,")
    site.orders("a.csv", "o1,RETRO-CLOCK,1", "o2,RETRO-CLOCK,2")
    site.run(day(0))
    _set_line_keys(site, day(0), kept)

    site.clear_inbox()
    site.orders("b.csv", "o1,RETRO-CLOCK,1", "o2,RETRO-CLOCK,5", "o3,RETRO-CLOCK,1")
    summary = site.run(day(1))

    assert summary["orders"] == {"received": 3, "accepted": 1, "duplicate": 1, "rejected": 1}
    assert site.query("SELECT count(*) FROM order_lines") == [(3,)]
    assert site.query("SELECT sum(allocated) FROM batches") == [(4,)]
    assert site.query(
        "SELECT count(*) FROM order_lines WHERE line_key IS DISTINCT FROM hash(orderid, sku)"
    ) == [(0,)]
