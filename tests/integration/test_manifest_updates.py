"""Manifest updates over three nights: the warehouse follows the manifest, lines move as the rule says."""

from __future__ import annotations

from collections.abc import Callable

from conftest import Site


def placements(site: Site) -> dict[str, str | None]:
    return dict(site.query("SELECT orderid, batchref FROM order_lines ORDER BY orderid"))


def moves(site: Site, day: str) -> list[tuple[str, str, str | None]]:
    return [
        (r["orderid"], r["from_batchref"], r["to_batchref"])
        for r in site.report(day, "reallocations")
    ]


def test_three_nights_of_manifest_changes(site: Site, day: Callable[[int], str]) -> None:
    # Night 1: two batches of RETRO-CLOCK, four lines.
    site.batches("n1.csv", "early,RETRO-CLOCK,10,2026-12-01", "late,RETRO-CLOCK,10,2026-12-10")
    site.orders(
        "n1.csv", "o1,RETRO-CLOCK,4", "o2,RETRO-CLOCK,4", "o3,RETRO-CLOCK,4", "o4,RETRO-CLOCK,4"
    )
    site.run(day(0))
    assert placements(site) == {"o1": "early", "o2": "early", "o3": "late", "o4": "late"}

    # Night 2: `late` now comes before `early` (eta change), and `early` shrinks to 5: it gives
    # back its newest line (o2), which is tried again tonight, before the newer o5.
    site.clear_inbox()
    site.batches("n2.csv", "late,RETRO-CLOCK,10,2026-11-28", "early,RETRO-CLOCK,5,2026-12-01")
    site.orders("n2.csv", "o5,RETRO-CLOCK,2")
    summary = site.run(day(1))
    assert summary["batches"]["updated"] == {"eta": 1, "qty_up": 0, "qty_down": 1, "cancelled": 0}
    assert (summary["lines_released"], summary["lines_replaced"]) == (1, 0)
    # Lines already allocated stay put (o3, o4 on `late`). o2 needs 4: `late` has 2 free, `early`
    # 1, so o2 waits; o5 (2) fits on `late`, now the earliest batch.
    assert placements(site) == {"o1": "early", "o2": None, "o3": "late", "o4": "late", "o5": "late"}
    assert moves(site, day(1)) == [("o2", "early", None)]
    [open_line] = site.report(day(1), "out_of_stock")
    assert (open_line["orderid"], str(open_line["first_seen"])) == ("o2", day(0))

    # Night 3: `late` grows to 14 (4 free) and `early` is cancelled, releasing o1. o1 is older
    # than the waiting o2, so o1 takes the 4 and o2 keeps waiting.
    site.clear_inbox()
    site.batches("n3.csv", "late,RETRO-CLOCK,14,2026-11-28", "early,RETRO-CLOCK,0,2026-12-01")
    summary = site.run(day(2), accept="order_files")  # a manifest-only night
    assert summary["batches"]["updated"] == {"eta": 0, "qty_up": 1, "qty_down": 0, "cancelled": 1}
    assert placements(site) == {"o1": "late", "o2": None, "o3": "late", "o4": "late", "o5": "late"}
    assert moves(site, day(2)) == [("o1", "early", "late")]
    assert [(r["orderid"], r["batchref"]) for r in site.report(day(2), "allocations")] == [
        ("o1", "late")
    ]
    assert site.query(
        "SELECT reference, purchased, allocated, available FROM batches ORDER BY 1"
    ) == [
        ("early", 0, 0, 0),
        ("late", 14, 14, 0),
    ]

    # The warehouse keeps every placement, with when each was undone.
    history = site.query(
        "SELECT orderid, batchref, business_date::VARCHAR, released_on::VARCHAR FROM allocations "
        "WHERE orderid IN ('o1', 'o2') ORDER BY orderid, business_date"
    )
    assert history == [
        ("o1", "early", day(0), day(2)),
        ("o1", "late", day(2), None),
        ("o2", "early", day(0), day(1)),
    ]
    changes = site.query(
        "SELECT reference, change FROM batch_changes ORDER BY business_date, reference"
    )
    assert changes == [
        ("early", "qty_down"),
        ("late", "eta"),
        ("early", "cancelled"),
        ("late", "qty_up"),
    ]


def test_a_released_line_keeps_its_place_in_the_arrival_order(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("n1.csv", "a,SMALL-TABLE,5,", "b,SMALL-TABLE,5,2026-12-01")
    site.orders("n1.csv", "old,SMALL-TABLE,5", "mid,SMALL-TABLE,5")
    site.run(day(0))
    assert placements(site) == {"mid": "b", "old": "a"}

    site.clear_inbox()
    # `a` is cancelled: `old` comes back and, being older than tonight's `new`, gets the new stock.
    site.batches("n2.csv", "a,SMALL-TABLE,0,", "c,SMALL-TABLE,5,2026-12-05")
    site.orders("n2.csv", "new,SMALL-TABLE,5")
    site.run(day(1))
    assert placements(site) == {"mid": "b", "new": None, "old": "c"}
    assert moves(site, day(1)) == [("old", "a", "c")]


def test_the_same_manifest_twice_is_a_duplicate(site: Site, day: Callable[[int], str]) -> None:
    site.batches("n1.csv", "b1,RETRO-CLOCK,5,2026-12-01")
    site.run(day(0))
    summary = site.run(day(1))
    assert summary["batches"]["duplicate"] == 1
    assert summary["batches"]["updated"] == {"eta": 0, "qty_up": 0, "qty_down": 0, "cancelled": 0}


def test_changes_within_one_night_apply_in_arrival_order(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("1.csv", "b1,RETRO-CLOCK,5,")
    site.batches("2.csv", "b1,RETRO-CLOCK,8,", "b1,RETRO-CLOCK,8,")
    site.batches("3.csv", "b1,RETRO-CLOCK,6,2026-12-24")
    summary = site.run(day(0))
    assert summary["batches"]["duplicate"] == 1
    assert summary["batches"]["updated"] == {"eta": 1, "qty_up": 1, "qty_down": 1, "cancelled": 0}
    assert site.query("SELECT purchased, eta::VARCHAR FROM batches") == [(6, "2026-12-24")]
