"""Issue: re-reading an inbox must not replay manifest rows already received.

The rule (README, inbox contract): a manifest row is a duplicate when a file of the same name
already delivered it (the same reference, sku, qty and eta, that many times); a row that file name
never delivered is applied, even when it sets a value the batch had before (a supplier reverting).
"""

from __future__ import annotations

from collections.abc import Callable

from allocation.io.unit_of_work import connect
from allocation.io.warehouse_schema import SCHEMA_VERSION
from allocation.service.state import state_db
from conftest import Site


def placements(site: Site) -> dict[str, str | None]:
    return dict(site.query("SELECT orderid, batchref FROM order_lines ORDER BY orderid"))


def purchased(site: Site, reference: str) -> int:
    [(qty,)] = site.query("SELECT purchased FROM batches WHERE reference = ?", [reference])
    return int(qty)


def changes(site: Site) -> list[tuple[str, str, int, int, str]]:
    return site.query(
        "SELECT business_date::VARCHAR, change, old_qty, new_qty, source_file FROM batch_changes "
        "ORDER BY business_date, source_file, source_line"
    )


def test_rereading_a_manifest_that_changed_a_reference_twice_changes_nothing(
    site: Site, day: Callable[[int], str]
) -> None:
    # Night 1: X is announced with 1, then raised to 4 in the same file. W (5) cannot fit; L (4)
    # takes X.
    site.batches("m1.csv", "X,LAMP,1,", "X,LAMP,4,")
    site.orders("o1.csv", "W,LAMP,5", "L,LAMP,4")
    site.run(day(0))
    assert placements(site) == {"L": "X", "W": None}

    # Night 2: the same inbox, plus a new manifest raising X to 5. m1.csv is not replayed (X does
    # not drop back to 1, L is not released): only m2.csv's row is applied.
    site.batches("m2.csv", "X,LAMP,5,")
    night2 = site.run(day(1))
    assert purchased(site, "X") == 5
    assert placements(site) == {"L": "X", "W": None}
    assert night2["lines_released"] == 0
    assert night2["batches"]["duplicate"] == 2
    assert night2["batches"]["updated"] == {"eta": 0, "qty_up": 1, "qty_down": 0, "cancelled": 0}
    assert site.report(day(1), "reallocations") == []

    # Night 3: the same inbox again, plus a supplier reverting X to 4 (a value it had before) in
    # a file never received: that row is an update; nothing else is.
    site.batches("m3.csv", "X,LAMP,4,")
    night3 = site.run(day(2))
    assert purchased(site, "X") == 4
    assert placements(site) == {"L": "X", "W": None}
    assert night3["batches"]["duplicate"] == 3
    assert night3["batches"]["updated"] == {"eta": 0, "qty_up": 0, "qty_down": 1, "cancelled": 0}
    assert changes(site) == [
        (day(0), "qty_up", 1, 4, "batches/m1.csv"),
        (day(1), "qty_up", 4, 5, "batches/m2.csv"),
        (day(2), "qty_down", 5, 4, "batches/m3.csv"),
    ]

    # Night 4: nothing new at all: nothing changes, nothing is logged as a change.
    night4 = site.run(day(3))
    assert night4["batches"]["duplicate"] == 4
    assert night4["batches"]["updated"] == {"eta": 0, "qty_up": 0, "qty_down": 0, "cancelled": 0}
    assert len(changes(site)) == 3 and purchased(site, "X") == 4


def test_a_revert_that_releases_a_line_is_applied(site: Site, day: Callable[[int], str]) -> None:
    site.batches("m1.csv", "X,LAMP,1,")
    site.orders("o1.csv", "L,LAMP,4")
    site.run(day(0))
    assert placements(site) == {"L": None}

    site.batches("m2.csv", "X,LAMP,4,")
    site.run(day(1))
    assert placements(site) == {"L": "X"}

    # The supplier goes back to 1 in a new file: X shrinks again and gives L back.
    site.batches("m3.csv", "X,LAMP,1,")
    night3 = site.run(day(2))
    assert purchased(site, "X") == 1
    assert placements(site) == {"L": None}
    assert night3["lines_released"] == 1
    assert [(r["orderid"], r["from_batchref"]) for r in site.report(day(2), "reallocations")] == [
        ("L", "X")
    ]


def test_a_file_grown_by_appended_rows_applies_only_the_new_rows(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("feed.csv", "X,LAMP,1,", "X,LAMP,4,")
    site.run(day(0))
    # The supplier re-sends feed.csv with one more row that goes back to 1 (an earlier value):
    # rows 1 and 2 were delivered already, row 3 is new.
    site.batches("feed.csv", "X,LAMP,1,", "X,LAMP,4,", "X,LAMP,1,")
    night2 = site.run(day(1))
    assert purchased(site, "X") == 1
    assert night2["batches"]["duplicate"] == 2
    assert night2["batches"]["updated"]["qty_down"] == 1


def test_a_redelivered_copy_under_another_name_is_a_new_file(
    site: Site, day: Callable[[int], str]
) -> None:
    # Identity is the file's name: a small manifest can repeat an older one byte for byte and
    # still be the supplier's latest word (here: back to 1 after 4).
    site.batches("2026-11-25.csv", "X,LAMP,1,")
    site.run(day(0))
    site.batches("2026-11-26.csv", "X,LAMP,4,")
    site.run(day(1))
    site.batches("2026-11-27.csv", "X,LAMP,1,")
    site.run(day(2))
    assert purchased(site, "X") == 1


def test_a_warehouse_from_before_the_rule_does_not_replay_files_it_already_read(
    site: Site, day: Callable[[int], str]
) -> None:
    """A warehouse written before manifest rows were remembered (schema version 3) knows its
    files by name and checksum: re-reading those, unchanged, after the upgrade changes nothing."""
    site.batches("m1.csv", "X,LAMP,1,", "X,LAMP,4,")
    site.orders("o1.csv", "W,LAMP,5", "L,LAMP,4")
    site.run(day(0))
    state = state_db(site.params(day(0)))
    con = connect(state)
    try:  # back to what a version-3 pipeline left
        con.execute("DROP TABLE manifest_rows")
        con.execute("DROP TABLE quarantined_batches")  # schema version 5
        con.execute("DROP VIEW nightly_trend")  # schema version 6
        con.execute("DROP TABLE night_checks")
        con.execute("ALTER TABLE runs DROP COLUMN lines_waiting")
        con.execute("ALTER TABLE runs DROP COLUMN oldest_wait_days")
        con.execute("DELETE FROM schema_version WHERE version > 3")
        con.execute("CHECKPOINT")
    finally:
        con.close()

    site.batches("m2.csv", "X,LAMP,5,")
    site.run(day(1))
    assert purchased(site, "X") == 5
    assert placements(site) == {"L": "X", "W": None}
    assert site.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]
