"""Issue "Analysts' questions answered directly": every new view, macro and column is checked
against an independent computation from what the nights showed at the time.

The independent side is taken while the nights run: after each night, the `out_of_stock` view
(lines by their current status) and the night's reports say what was open and placed. The views
under test rebuild the same answers afterwards from the history alone (events summed night by
night, allocations as of a date), so a mistake in either shows as a difference.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.io.reason_codes import CODES, OTHER, REASON_CODES, code_sql
from conftest import Site


def code_of(reason: str) -> str:
    """The code of one reason by Python's ``re``: what the stored SQL (``code_sql``) must agree
    with."""
    for code, pattern, _meaning in REASON_CODES:
        if re.search(pattern, reason):
            return code
    return OTHER


DAY0 = dt.date(2026, 11, 25)
SKUS = ("RETRO-CLOCK", "GOLD-LAMP", "OAK-SHELF")


def rows(site: Site, sql: str, params: list[object] | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(site.warehouse), read_only=True)
    try:
        rel = con.sql(sql, params=params or [])
        return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    finally:
        con.close()


# -- nights drawn at random: orders (some resent, some rejected), new batches, cuts ----------
night_plan = st.fixed_dictionaries(
    {
        "orders": st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(1, 6)), min_size=0, max_size=6
        ),
        "batches": st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(0, 12), st.sampled_from([None, 1, 3])),
            max_size=2,
        ),
        "cuts": st.lists(st.tuples(st.integers(0, 9), st.integers(0, 4)), max_size=2),
        # Order rows sent again as they were (duplicates), and rows with a bad qty (rejected).
        "resent": st.lists(st.integers(0, 20), max_size=2),
        "bad": st.integers(0, 1),
    }
)
# A few examples in `make test` (each runs up to four real nights, about a second each); many
# with `make fuzz`.
EXAMPLES = 6 if os.environ.get("HYPOTHESIS_PROFILE", "default") == "default" else 200


@dataclass
class Given:
    """What the nights were given, and what each night's own reports said (the independent
    side): the views are rebuilt from the warehouse's history afterwards."""

    #: (orderid, sku) -> (qty, arrival night)
    lines: dict[tuple[str, str], tuple[int, dt.date]] = field(default_factory=dict)
    #: reference -> [sku, purchased, eta], as the latest manifest row said
    batches: dict[str, list[Any]] = field(default_factory=dict)
    new: dict[dt.date, list[int]] = field(default_factory=dict)
    resent: dict[dt.date, int] = field(default_factory=dict)
    bad: dict[dt.date, int] = field(default_factory=dict)
    shown: dict[dt.date, dict[str, Any]] = field(default_factory=dict)
    #: (orderid, sku) -> [(night, batchref)] placements, in order
    placements: dict[tuple[str, str], list[tuple[dt.date, str]]] = field(default_factory=dict)


def run_nights(site: Site, plans: list[dict[str, Any]]) -> Given:
    """Runs the nights; returns what they were given and what each showed right after it."""
    given = Given()
    sent: list[str] = []
    order_no = 0
    for night, plan in enumerate(plans):
        day = DAY0 + dt.timedelta(days=night)
        site.clear_inbox()
        batch_rows = []
        for sku, qty, eta_in in plan["batches"]:
            reference = f"b{len(given.batches)}"
            eta = None if eta_in is None else day + dt.timedelta(days=eta_in)
            given.batches[reference] = [sku, qty, eta]
            batch_rows.append(f"{reference},{sku},{qty},{eta or ''}")
        for index, new_qty in plan["cuts"]:
            if given.batches:
                reference = sorted(given.batches)[index % len(given.batches)]
                given.batches[reference][1:] = [new_qty, None]
                batch_rows.append(f"{reference},{given.batches[reference][0]},{new_qty},")
        if batch_rows:
            site.batches(f"{day}-manifest.csv", *batch_rows)
        # Orders of two lines at most, never the same sku twice in one order.
        order_rows, order_skus = [], set()
        for sku, qty in plan["orders"]:
            if sku in order_skus or len(order_skus) == 2:
                order_no, order_skus = order_no + 1, set()
            order_skus.add(sku)
            given.lines[(f"o{order_no}", sku)] = (qty, day)
            order_rows.append(f"o{order_no},{sku},{qty}")
        order_no += 1
        given.new[day] = [int(row.rsplit(",", 1)[1]) for row in order_rows]
        again = [sent[i % len(sent)] for i in plan["resent"]] if sent else []
        given.resent[day] = len(again)
        given.bad[day] = plan["bad"]
        sent += order_rows
        order_rows += again + [f"bad{night}-{i},GOLD-LAMP,x" for i in range(plan["bad"])]
        if order_rows:
            site.orders(f"{day}-orders.csv", *order_rows)
        site.run(day.isoformat())
        open_now = rows(site, "SELECT orderid, sku, qty FROM out_of_stock")
        placed = site.report(day.isoformat(), "allocations")
        for r in placed:
            given.placements.setdefault((r["orderid"], r["sku"]), []).append((day, r["batchref"]))
        given.shown[day] = {
            "open": {(r["orderid"], r["sku"], r["qty"]) for r in open_now},
            "placed": [(r["orderid"], r["sku"], r["qty"], r["eta"]) for r in placed],
            "released": site.report(day.isoformat(), "reallocations"),
        }
    return given


def expected_views(given: Given) -> dict[str, dict[Any, dict[str, Any]]]:
    """orders, skus and line_waits after the last night, computed in Python from what the
    nights were given and what their reports said."""
    last = max(given.shown)
    open_keys = {(o, s) for o, s, _q in given.shown[last]["open"]}
    waits: dict[Any, dict[str, Any]] = {}
    in_batch: Counter[str] = Counter()
    for key, (qty, first_seen) in given.lines.items():
        placed = given.placements.get(key, [])
        first = placed[0][0] if placed else None
        current = None if key in open_keys else placed[-1]
        if current:
            in_batch[current[1]] += qty
        waits[key] = {
            "qty": qty,
            "first_seen": first_seen,
            "first_allocated_on": first,
            "days_to_first_allocation": None if first is None else (first - first_seen).days,
            "status": "out_of_stock" if key in open_keys else "allocated",
            "allocated_on": current[0] if current else None,
        }
    orders: dict[Any, dict[str, Any]] = {}
    for (orderid, _sku), w in waits.items():
        o = orders.setdefault(
            orderid,
            {"lines": 0, "units": 0, "lines_allocated": 0, "lines_open": 0, "units_open": 0,
             "first_seen": w["first_seen"], "last_allocated_on": None},
        )  # fmt: skip
        o["lines"] += 1
        o["units"] += w["qty"]
        is_open = w["status"] == "out_of_stock"
        o["lines_open"] += is_open
        o["lines_allocated"] += not is_open
        o["units_open"] += w["qty"] if is_open else 0
        o["first_seen"] = min(o["first_seen"], w["first_seen"])
        if w["allocated_on"] and (o["last_allocated_on"] or w["allocated_on"]) <= w["allocated_on"]:
            o["last_allocated_on"] = w["allocated_on"]
    for o in orders.values():
        o["order_status"] = (
            "fully allocated"
            if o["lines_open"] == 0
            else "not allocated"
            if o["lines_allocated"] == 0
            else "partly allocated"
        )
    skus: dict[Any, dict[str, Any]] = {}
    blank = {"batches": 0, "on_hand_free_units": 0, "incoming_free_units": 0,
             "overdue_free_units": 0, "next_free_eta": None, "open_lines": 0, "open_units": 0,
             "oldest_open_first_seen": None}  # fmt: skip
    for reference, (sku, purchased, eta) in given.batches.items():
        s = skus.setdefault(sku, dict(blank))
        free = purchased - in_batch[reference]
        s["batches"] += 1
        if eta is None:
            s["on_hand_free_units"] += free
        else:
            s["incoming_free_units"] += free
            s["overdue_free_units"] += free if eta <= last else 0
            if free > 0 and (s["next_free_eta"] is None or eta < s["next_free_eta"]):
                s["next_free_eta"] = eta
    for (_orderid, sku), w in waits.items():
        if w["status"] == "out_of_stock":
            s = skus.setdefault(sku, dict(blank))
            s["open_lines"] += 1
            s["open_units"] += w["qty"]
            oldest = s["oldest_open_first_seen"]
            s["oldest_open_first_seen"] = min(oldest or w["first_seen"], w["first_seen"])
    return {"orders": orders, "skus": skus, "line_waits": waits}


def rounded_rate(placed: int, eligible: int) -> float:
    """placed / eligible to 4 places, a half rounded away from zero (a spreadsheet's ROUND)."""
    exact = Decimal(placed) / Decimal(eligible)
    return float(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


@pytest.mark.fuzz
@settings(max_examples=EXAMPLES)
@given(plans=st.lists(night_plan, min_size=1, max_size=4))
def test_backlog_and_kpis_match_what_each_night_showed(
    tmp_path_factory: pytest.TempPathFactory, plans: list[dict[str, Any]]
) -> None:
    site = Site(tmp_path_factory.mktemp("answers"))
    given = run_nights(site, plans)
    seen = given.shown
    kpis = {r["business_date"]: r for r in rows(site, "SELECT * FROM nightly_kpis")}
    trend = {r["business_date"]: r for r in rows(site, "SELECT * FROM nightly_trend")}
    assert sorted(kpis) == sorted(seen) == sorted(trend)
    for day, shown in seen.items():
        asof = rows(site, "SELECT orderid, sku, qty FROM open_lines_asof(?)", [day])
        assert {(r["orderid"], r["sku"], r["qty"]) for r in asof} == shown["open"], day
        kpi = kpis[day]
        assert kpi["lines_open"] == len(shown["open"])
        assert kpi["units_open"] == sum(qty for _o, _s, qty in shown["open"])
        assert kpi["lines_placed"] == len(shown["placed"])
        assert kpi["units_placed"] == sum(p[2] for p in shown["placed"])
        assert kpi["lines_placed_from_stock"] == sum(p[3] is None for p in shown["placed"])
        assert kpi["lines_placed_from_incoming"] == sum(p[3] is not None for p in shown["placed"])
        assert kpi["lines_received"] == len(given.new[day])
        assert kpi["units_received"] == sum(given.new[day])
        assert kpi["order_rows_duplicate"] == given.resent[day]
        assert kpi["order_rows_rejected"] == given.bad[day]
        assert kpi["lines_released"] == len(shown["released"])
        assert kpi["lines_replaced"] == sum(r["to_batchref"] is not None for r in shown["released"])
        assert kpi["lines_eligible"] == kpi["lines_placed"] + kpi["lines_open"]
        units_eligible = kpi["units_placed"] + kpi["units_open"]
        assert kpi["units_eligible"] == units_eligible
        for placed, eligible, rate in [
            (kpi["lines_placed"], kpi["lines_eligible"], kpi["line_fill_rate"]),
            (kpi["units_placed"], units_eligible, kpi["unit_fill_rate"]),
        ]:
            if eligible:
                assert rate == pytest.approx(rounded_rate(placed, eligible)), day
            else:
                assert rate is None
        for trend_column, kpi_column in TREND_AS_KPIS.items():
            assert trend[day][trend_column] == kpi[kpi_column], (day, trend_column)
    expected = expected_views(given)
    found = {
        "orders": {r.pop("orderid"): r for r in rows(site, "SELECT * FROM orders")},
        "skus": {r.pop("sku"): r for r in rows(site, "SELECT * FROM skus")},
        "line_waits": {
            (r.pop("orderid"), r.pop("sku")): r
            for r in rows(site, "SELECT * EXCLUDE (arrival_seq) FROM line_waits")
        },
    }
    assert found == expected


def test_a_line_released_and_placed_again_waits_from_its_first_placement(
    site: Site,
) -> None:
    site.batches("m1.csv", "b1,GOLD-LAMP,5,", "b2,GOLD-LAMP,5,2026-12-20")
    site.orders("o1.csv", "o1,GOLD-LAMP,5")
    site.run("2026-11-25")
    site.clear_inbox()
    site.batches("m1.csv", "b1,GOLD-LAMP,5,", "b2,GOLD-LAMP,5,2026-12-20", "b1,GOLD-LAMP,0,")
    site.run("2026-11-27")
    [line] = rows(site, "SELECT * FROM line_waits WHERE orderid = 'o1'")
    assert line["allocated_on"] == dt.date(2026, 11, 27)  # the current placement moved
    assert line["first_allocated_on"] == dt.date(2026, 11, 25)
    assert line["days_to_first_allocation"] == 0
    [moved] = rows(site, "SELECT * FROM reallocations")
    assert (moved["reason_code"], moved["change_source_file"], moved["change_source_line"]) == (
        "cancelled",
        "batches/m1.csv",
        3,
    )
    # The change it names is the batch_changes row of that file and line.
    [change] = rows(
        site,
        "SELECT change FROM batch_changes WHERE source_file = ? AND source_line = ?",
        [moved["change_source_file"], moved["change_source_line"]],
    )
    assert change["change"] == moved["reason_code"]


def test_orders_and_skus_add_up_from_the_lines_and_batches(site: Site) -> None:
    site.batches(
        "m1.csv",
        "b1,GOLD-LAMP,3,",
        "b2,GOLD-LAMP,4,2026-11-20",
        "b3,OAK-SHELF,9,2027-01-05",
        "b4,PINE-DESK,2,2026-11-25",  # due on the night itself: overdue too
    )
    site.orders("o1.csv", "o1,GOLD-LAMP,3", "o1,OAK-SHELF,20", "o2,OAK-SHELF,2", "o3,RETRO-CLOCK,1")
    site.run("2026-11-25")
    orders = {r["orderid"]: r for r in rows(site, "SELECT * FROM orders")}
    assert {k: v["order_status"] for k, v in orders.items()} == {
        "o1": "partly allocated",
        "o2": "fully allocated",
        "o3": "not allocated",
    }
    assert (orders["o1"]["lines"], orders["o1"]["units"], orders["o1"]["units_open"]) == (2, 23, 20)
    skus = {r["sku"]: r for r in rows(site, "SELECT * FROM skus")}
    assert skus["GOLD-LAMP"]["on_hand_free_units"] == 0  # b1's 3 went to o1
    # b2's ETA (2026-11-20) is before the night: incoming on paper, overdue in fact.
    assert skus["GOLD-LAMP"]["incoming_free_units"] == 4
    assert skus["GOLD-LAMP"]["overdue_free_units"] == 4
    assert skus["OAK-SHELF"]["overdue_free_units"] == 0
    assert (skus["PINE-DESK"]["incoming_free_units"], skus["PINE-DESK"]["overdue_free_units"]) == (
        2,
        2,
    )
    assert (skus["RETRO-CLOCK"]["batches"], skus["RETRO-CLOCK"]["open_units"]) == (0, 1)
    assert (skus["OAK-SHELF"]["open_lines"], skus["OAK-SHELF"]["incoming_free_units"]) == (1, 7)


def test_the_old_names_and_the_new_ones_agree(site: Site) -> None:
    """Each old name and its new one give the meaning docs/analysts.md ("One name, one
    meaning") says, computed here in Python from the base tables."""
    site.batches("m1.csv", "b1,GOLD-LAMP,3,", "b2,GOLD-LAMP,4,2026-12-20", "b3,GOLD-LAMP,2,")
    site.orders("o1.csv", "o1,GOLD-LAMP,6", "o2,OAK-SHELF,1", "o3,GOLD-LAMP,2", "o4,GOLD-LAMP,1")
    site.run("2026-11-25")
    site.batches("m2.csv", "b4,GOLD-LAMP,5,2026-11-30", "b3,GOLD-LAMP,1,")
    site.orders("o2.csv", "o5,GOLD-LAMP,4", "o6,GOLD-LAMP,9")
    site.run("2026-11-26")
    batches = rows(site, "SELECT sku, eta, purchased, allocated FROM batches")
    lines = rows(site, "SELECT orderid, sku, qty, status FROM order_lines")
    free: dict[str, list[tuple[int, dt.date | None]]] = {}
    for b in batches:
        free.setdefault(b["sku"], []).append((b["purchased"] - b["allocated"], b["eta"]))
    open_lines = [line for line in lines if line["status"] == "out_of_stock"]
    assert len(open_lines) >= 2
    for row in rows(site, "SELECT * FROM out_of_stock"):
        mine = free.get(row["sku"], [])
        sku_free = sum(units for units, _eta in mine)
        best = max((units for units, _eta in mine), default=0)
        whole = [eta for units, eta in mine if eta is not None and units >= row["qty"]]
        assert row["sku_free_units"] == row["available"] == sku_free
        assert row["best_batch_shortfall"] == row["shortfall"] == max(row["qty"] - best, 0)
        assert row["next_whole_line_eta"] == row["next_eta"] == min(whole, default=None)
    for row in rows(site, "SELECT * FROM stock_position"):
        mine = free.get(row["sku"], [])
        sku_free = sum(units for units, _eta in mine)
        demand = sum(x["qty"] for x in open_lines if x["sku"] == row["sku"])
        coming = [eta for units, eta in mine if eta is not None and units > 0]
        assert row["free_units"] == row["available"] == sku_free
        assert row["demand_over_free_units"] == row["shortfall"] == max(demand - sku_free, 0)
        assert row["next_free_eta"] == row["next_eta"] == min(coming, default=None)
        # stock_position.allocated counts units (the lines' quantities), not lines.
        placed = [x["qty"] for x in lines if x["sku"] == row["sku"] and x["status"] == "allocated"]
        assert row["allocated"] == sum(placed)
    # nightly_trend.allocated counts lines placed that night; out_of_stock the lines open after.
    placed_by_night = Counter(
        r["business_date"] for r in rows(site, "SELECT business_date FROM allocations")
    )
    trend = rows(site, "SELECT business_date, allocated, out_of_stock FROM nightly_trend")
    assert [r["allocated"] for r in trend] == [placed_by_night[r["business_date"]] for r in trend]
    assert trend[-1]["out_of_stock"] == len(open_lines)
    units_by_night = Counter[dt.date]()
    for r in rows(site, "SELECT business_date, qty FROM allocations"):
        units_by_night[r["business_date"]] += r["qty"]
    assert any(r["allocated"] != units_by_night[r["business_date"]] for r in trend)


# -- reason codes --------------------------------------------------------------------------
HOSTILE = {
    "orders/a.csv": (
        "orderid,sku,qty\n"
        "o1,LAMP,ten\n"  # not_whole_number
        "o2,LAMP,0\n"  # qty_below_one
        "o3,,2\n"  # empty_value
        "o4,LAMP\u200b,1\n"  # invisible_character
        "o5,LAMP,1,extra\n"  # field_count
        "o6,LAMP,99999999999999999999\n"  # out_of_range
        "o7,LAMP,3\n"
        "o7,LAMP,4\n"  # conflicting_line
    ),
    "orders/b.csv": "orderid,sku\no9,LAMP\n",  # missing_column
    "orders/c.jsonl": (
        '{"orderid":"o11","sku":"LAMP","qty":1}\n'
        '{"orderid":"o10","sku":"LAMP","qty":1,"qty":2}\n'  # key_twice
        "[1]\n"  # not_json_object
    ),
    "batches/m.csv": "reference,sku,qty,eta\nb1,LAMP,-1,\nb2,LAMP,4,2026-13-40\n",
}
EXPECTED_CODES = Counter(
    {
        "not_whole_number": 1,
        "qty_below_one": 1,
        "empty_value": 1,
        "invisible_character": 1,
        "field_count": 1,
        "out_of_range": 1,
        "conflicting_line": 1,
        "missing_column": 1,
        "key_twice": 1,
        "not_json_object": 1,
        "negative_qty": 1,
        "not_a_date": 1,
    }
)


def test_every_rejection_of_a_hostile_night_has_its_code(site: Site) -> None:
    for relative, text in HOSTILE.items():
        site.write(relative, text)
    site.run("2026-11-25")
    found = rows(site, "SELECT reason_code, reason FROM rejected_rows")
    assert all(r["reason_code"] != OTHER for r in found), found
    assert Counter(r["reason_code"] for r in found) == EXPECTED_CODES, found
    # raw has one shape: a JSON object (the fields of a ragged CSV row and an unreadable JSON
    # Lines row are kept under "fields" and "line"); NULL for a file rejected whole (no row).
    shapes = rows(
        site, "SELECT DISTINCT json_type(raw::JSON) AS t FROM rejected_rows WHERE line IS NOT NULL"
    )
    assert shapes == [{"t": "OBJECT"}]
    [ragged] = rows(site, "SELECT raw FROM rejected_rows WHERE reason_code = 'field_count'")
    assert json.loads(ragged["raw"]) == {"fields": ["o5", "LAMP", "1", "extra"]}
    [not_object] = rows(site, "SELECT raw FROM rejected_rows WHERE reason_code = 'not_json_object'")
    assert json.loads(not_object["raw"]) == {"line": "[1]"}
    # The code stored by SQL is the code Python gives the same words.
    assert all(r["reason_code"] == code_of(r["reason"]) for r in found)


def test_the_sql_and_python_codes_agree_on_every_documented_example() -> None:
    examples = [
        "file name is not valid UTF-8 (its bad bytes are shown as \\xNN): rename the file",
        "not valid UTF-8 at byte offset 12: re-export the file as UTF-8",
        "missing required column(s): qty; columns found: orderid, sku",
        "qty 'ten' is not a whole number",
        "sku is empty; qty is empty",
        "row has 2 fields, header has 3: the quote opening field 2 is not closed on its line",
        "a reason nobody has written yet",
    ]
    code, params = code_sql("reason")
    con = duckdb.connect()
    try:
        for example in examples:
            [(stored,)] = con.sql(
                f"SELECT {code} FROM (SELECT ? AS reason)",  # noqa: S608 (our constant text)
                params=[*params, example],
            ).fetchall()
            assert stored == code_of(example), example
    finally:
        con.close()
    assert code_of("sku is empty; qty is empty") == "empty_value"  # the first reason's code
    assert code_of("a reason nobody has written yet") == OTHER
    assert len(CODES) == len(set(CODES)) == len(REASON_CODES) + 1


def test_an_upgrade_codes_the_rejections_and_reallocations_already_stored(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from test_schema_upgrade import OLD_RUN, make_old_warehouse

    from allocation.io.unit_of_work import DuckDBUnitOfWork

    path = tmp_path_factory.mktemp("upgrade") / "state.duckdb"
    make_old_warehouse(path, 4)
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "INSERT INTO batch_changes VALUES "
            "('old-batch-1', 'LAMP', 'qty_down', 10, 2, NULL, NULL, DATE '2026-11-24', ?, "
            "'batches/cut.csv', 7)",
            [OLD_RUN],
        )
        con.execute(
            "INSERT INTO reallocations VALUES ('old-order-1', 'LAMP', 4, 'old-batch-1', NULL, "
            "'batch old-batch-1 quantity reduced from 10 to 2', DATE '2026-11-24', ?)",
            [OLD_RUN],
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with DuckDBUnitOfWork(path) as uow:
        uow.commit()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.sql("SELECT reason_code FROM rejected_rows").fetchall() == [
            ("not_whole_number",)
        ]
        assert con.sql(
            "SELECT reason_code, change_source_file, change_source_line FROM reallocations"
        ).fetchall() == [("qty_down", "batches/cut.csv", 7)]
    finally:
        con.close()


def test_the_documented_rule_adds_up_quantity_changes_once(site: Site) -> None:
    """One manifest row changing both ETA and quantity writes two batch_changes rows, each
    repeating both values: docs/analysts.md ("Traps") says to keep the quantity rows."""
    site.batches("m1.csv", "b1,GOLD-LAMP,10,2026-12-01")
    site.run("2026-11-25")
    site.batches("m2.csv", "b1,GOLD-LAMP,4,2026-12-09")
    site.run("2026-11-26")
    changes = rows(site, "SELECT change, old_qty, new_qty FROM batch_changes ORDER BY change")
    assert [c["change"] for c in changes] == ["eta", "qty_down"]
    [naive] = rows(site, "SELECT sum(new_qty - old_qty)::BIGINT AS d FROM batch_changes")
    [rule] = rows(
        site,
        "SELECT sum(new_qty - old_qty) FILTER (WHERE change <> 'eta')::BIGINT AS d "
        "FROM batch_changes",
    )
    assert (naive["d"], rule["d"]) == (-12, -6)
    [batch] = rows(site, "SELECT purchased FROM batches")
    assert batch["purchased"] - 10 == rule["d"]


# -- nightly_trend is a slice of nightly_kpis ----------------------------------------------
#: nightly_trend's columns (names kept for its users) and the nightly_kpis column each one is.
TREND_AS_KPIS = {
    "received": "order_rows_received",
    "accepted": "lines_received",
    "rejected": "order_rows_rejected",
    "allocated": "lines_placed",
    "out_of_stock": "lines_open",
    "lines_waiting": "lines_waiting",
    "oldest_wait_days": "oldest_wait_days",
    "runs": "runs",
}


def night_with_everything(site: Site) -> None:
    """Three nights: rejected rows, duplicate rows, a manifest cut that releases lines (some
    placed again, some left open), and a rerun of the last date."""
    site.batches("m1.csv", "b1,GOLD-LAMP,6,", "b2,GOLD-LAMP,2,2026-12-20", "b3,OAK-SHELF,1,")
    site.orders("o1.csv", "o1,GOLD-LAMP,3", "o2,GOLD-LAMP,3", "o3,OAK-SHELF,2", "o4,LAMP,ten")
    site.run("2026-11-25")
    site.clear_inbox()
    site.batches("m2.csv", "b1,GOLD-LAMP,3,")  # releases one of o1/o2; b2 too small for 3
    site.orders("o2.csv", "o1,GOLD-LAMP,3", "o5,GOLD-LAMP,2", "o6,OAK-SHELF,0")
    site.run("2026-11-26")
    site.clear_inbox()
    site.batches("m3.csv", "b4,OAK-SHELF,5,")
    site.orders("o3.csv", "o7,OAK-SHELF,1", "o7,OAK-SHELF,1")
    site.run("2026-11-27")
    site.orders("o4.csv", "o8,GOLD-LAMP,1")
    site.run("2026-11-27")


def test_nightly_trend_and_nightly_kpis_agree_on_every_night(site: Site) -> None:
    night_with_everything(site)
    kpis = {r["business_date"]: r for r in rows(site, "SELECT * FROM nightly_kpis")}
    trend = {r["business_date"]: r for r in rows(site, "SELECT * FROM nightly_trend")}
    assert sorted(trend) == sorted(kpis) and len(trend) == 3
    assert sum(k["lines_released"] for k in kpis.values()) >= 1
    assert sum(k["order_rows_rejected"] for k in kpis.values()) >= 2
    assert sum(k["order_rows_duplicate"] for k in kpis.values()) >= 2
    for day, row in trend.items():
        for trend_column, kpi_column in TREND_AS_KPIS.items():
            assert row[trend_column] == kpis[day][kpi_column], (day, trend_column)
    # Releases, from each night's own report: one left open, none placed again yet.
    for day, kpi in kpis.items():
        released = site.report(day.isoformat(), "reallocations")
        assert kpi["lines_released"] == len(released), day
        assert kpi["lines_replaced"] == sum(r["to_batchref"] is not None for r in released), day
    assert [k["lines_released"] - k["lines_replaced"] for k in kpis.values()] == [0, 1, 0]
    # The columns its users read keep their meaning: the runs' own counters of each date.
    by_date = {
        r["business_date"]: r
        for r in rows(
            site,
            "SELECT business_date, sum(orders_received)::BIGINT AS received, "
            "sum(orders_accepted)::BIGINT AS accepted, sum(orders_rejected)::BIGINT AS rejected, "
            "sum(allocated)::BIGINT AS allocated, arg_max(out_of_stock, finished_at) AS oos, "
            "arg_max(lines_waiting, finished_at) AS waiting, count(*)::BIGINT AS runs "
            "FROM runs GROUP BY business_date",
        )
    }
    for day, row in trend.items():
        counted = by_date[day]
        assert (row["received"], row["accepted"], row["rejected"], row["allocated"]) == (
            counted["received"],
            counted["accepted"],
            counted["rejected"],
            counted["allocated"],
        ), day
        assert (row["out_of_stock"], row["lines_waiting"], row["runs"]) == (
            counted["oos"],
            counted["waiting"],
            counted["runs"],
        ), day


def test_nightly_trend_is_read_from_nightly_kpis_not_defined_twice(site: Site) -> None:
    """Broken counters in `runs` would show in a second definition, not in a slice."""
    night_with_everything(site)
    con = duckdb.connect(str(site.warehouse))
    try:
        con.execute(
            "UPDATE runs SET allocated = allocated + 100, out_of_stock = out_of_stock + 100, "
            "orders_accepted = orders_accepted + 100"
        )
        [(sql,)] = con.sql(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'nightly_trend'"
        ).fetchall()
        assert "nightly_kpis" in sql
        rel = con.sql(
            "SELECT t.allocated = k.lines_placed AND t.out_of_stock = k.lines_open "
            "AND t.accepted = k.lines_received FROM nightly_trend t JOIN nightly_kpis k "
            "USING (business_date)"
        )
        assert all(row[0] for row in rel.fetchall())
    finally:
        con.close()


def test_a_fill_rate_half_way_between_two_figures_rounds_away_from_zero(site: Site) -> None:
    """3 of 160 lines placed is 0.01875: 0.0188, as a spreadsheet rounds it. Rounding the
    binary quotient gave 0.0187 here and 0.0313 for 1 of 32 (0.03125): halves went either way."""
    site.batches("m1.csv", "b1,GOLD-LAMP,3,")
    site.orders("o1.csv", *(f"o{n},GOLD-LAMP,1" for n in range(160)))
    site.run("2026-11-25")
    site.clear_inbox()
    site.batches("m2.csv", "b2,GOLD-LAMP,5,")
    site.run("2026-11-26")  # 5 of the 157 waiting lines: 0.031847 -> 0.0318

    assert site.query(
        "SELECT business_date, lines_placed, lines_eligible, line_fill_rate, unit_fill_rate "
        "FROM nightly_kpis ORDER BY business_date"
    ) == [
        (dt.date(2026, 11, 25), 3, 160, 0.0188, 0.0188),
        (dt.date(2026, 11, 26), 5, 157, 0.0318, 0.0318),
    ]
