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
from collections import Counter
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.io.reason_codes import CODES, OTHER, REASON_CODES, code_of, code_sql
from conftest import Site

DAY0 = dt.date(2026, 11, 25)
SKUS = ("RETRO-CLOCK", "GOLD-LAMP", "OAK-SHELF")


def rows(site: Site, sql: str, params: list[object] | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(site.warehouse), read_only=True)
    try:
        rel = con.sql(sql, params=params or [])
        return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    finally:
        con.close()


# -- nights drawn at random: orders, new batches, quantity cuts and cancellations -------------
night_plan = st.fixed_dictionaries(
    {
        "orders": st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(1, 6)), min_size=0, max_size=6
        ),
        "batches": st.lists(
            st.tuples(st.sampled_from(SKUS), st.integers(0, 12), st.sampled_from([None, 3, 9])),
            max_size=2,
        ),
        "cuts": st.lists(st.tuples(st.integers(0, 9), st.integers(0, 4)), max_size=2),
    }
)


def run_nights(site: Site, plans: list[dict[str, Any]]) -> dict[dt.date, dict[str, Any]]:
    """Runs the nights; returns what each night showed right after it (the independent side)."""
    seen: dict[dt.date, dict[str, Any]] = {}
    references: list[tuple[str, str]] = []
    order_no = 0
    for night, plan in enumerate(plans):
        day = DAY0 + dt.timedelta(days=night)
        site.clear_inbox()
        batch_rows = []
        for sku, qty, eta_in in plan["batches"]:
            reference = f"b{len(references)}"
            references.append((reference, sku))
            eta = "" if eta_in is None else (day + dt.timedelta(days=eta_in)).isoformat()
            batch_rows.append(f"{reference},{sku},{qty},{eta}")
        for index, new_qty in plan["cuts"]:
            if references:
                reference, sku = references[index % len(references)]
                batch_rows.append(f"{reference},{sku},{new_qty},")
        if batch_rows:
            site.batches(f"{day}-manifest.csv", *batch_rows)
        order_rows = []
        for sku, qty in plan["orders"]:
            order_no += 1
            order_rows.append(f"o{order_no},{sku},{qty}")
        if order_rows:
            site.orders(f"{day}-orders.csv", *order_rows)
        site.run(day.isoformat())
        open_now = rows(site, "SELECT orderid, sku, qty FROM out_of_stock")
        placed = site.report(day.isoformat(), "allocations")
        seen[day] = {
            "open": {(r["orderid"], r["sku"], r["qty"]) for r in open_now},
            "placed": [(r["orderid"], r["sku"], r["qty"], r["eta"]) for r in placed],
        }
    return seen


@settings(max_examples=6)
@given(plans=st.lists(night_plan, min_size=1, max_size=4))
def test_backlog_and_kpis_match_what_each_night_showed(
    tmp_path_factory: pytest.TempPathFactory, plans: list[dict[str, Any]]
) -> None:
    site = Site(tmp_path_factory.mktemp("answers"))
    seen = run_nights(site, plans)
    kpis = {r["business_date"]: r for r in rows(site, "SELECT * FROM nightly_kpis")}
    assert sorted(kpis) == sorted(seen)
    for day, shown in seen.items():
        asof = rows(site, "SELECT orderid, sku, qty FROM open_lines_asof(?)", [day])
        assert {(r["orderid"], r["sku"], r["qty"]) for r in asof} == shown["open"], day
        kpi = kpis[day]
        assert kpi["lines_open"] == len(shown["open"])
        assert kpi["units_open"] == sum(qty for _o, _s, qty in shown["open"])
        assert kpi["lines_placed"] == len(shown["placed"])
        assert kpi["units_placed"] == sum(p[2] for p in shown["placed"])
        assert kpi["lines_placed_from_stock"] == sum(p[3] is None for p in shown["placed"])
        assert kpi["lines_eligible"] == kpi["lines_placed"] + kpi["lines_open"]
        if kpi["lines_eligible"]:
            expected = round(kpi["lines_placed"] / kpi["lines_eligible"], 4)
            assert kpi["line_fill_rate"] == pytest.approx(expected)
        else:
            assert kpi["line_fill_rate"] is None


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
        "m1.csv", "b1,GOLD-LAMP,3,", "b2,GOLD-LAMP,4,2026-11-20", "b3,OAK-SHELF,9,2027-01-05"
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
    assert (skus["RETRO-CLOCK"]["batches"], skus["RETRO-CLOCK"]["open_units"]) == (0, 1)
    assert (skus["OAK-SHELF"]["open_lines"], skus["OAK-SHELF"]["incoming_free_units"]) == (1, 7)


def test_the_old_names_and_the_new_ones_agree(site: Site) -> None:
    site.batches("m1.csv", "b1,GOLD-LAMP,3,", "b2,GOLD-LAMP,4,2026-12-20")
    site.orders("o1.csv", "o1,GOLD-LAMP,6", "o2,OAK-SHELF,1")
    site.run("2026-11-25")
    for row in rows(site, "SELECT * FROM out_of_stock"):
        assert row["sku_free_units"] == row["available"]
        assert row["best_batch_shortfall"] == row["shortfall"]
        assert row["next_whole_line_eta"] == row["next_eta"]
    for row in rows(site, "SELECT * FROM stock_position"):
        assert row["free_units"] == row["available"]
        assert row["demand_over_free_units"] == row["shortfall"]
        assert row["next_free_eta"] == row["next_eta"]


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
