"""Issue 23 item 6: upgrading a warehouse made by an older release (schema 2 or 3, or one the
version-4 upgrade already opened) keeps every manifest row it received from applying again.

The warehouses are real: built by those releases' own code (tests/old_releases/README.md), after
the nights in `old_releases.HISTORY`: m1.csv made B-LAMP-1 (4), B-LAMP-2 (10, 2026-11-20) and
B-CLOCK-1; m2.csv raised B-LAMP-1 to 10 (o3 got it) and cut B-LAMP-2 to 6, eta 2026-11-25.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from allocation.service.state import state_db
from conftest import Site
from old_releases import HISTORY, install


@pytest.fixture(autouse=True)
def _manifest_only_nights_are_normal_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """These nights send manifests without orders on purpose: the check of the night that stops
    a night without an order file (issue 25) is told such a night is normal."""
    monkeypatch.setenv("ALLOCATION_EMPTY_NIGHT_OK", "true")


M1_ROWS = HISTORY[0][1]["batches/m1.csv"]
M2_ROWS = HISTORY[1][1]["batches/m2.csv"]


def upgraded_site(site: Site, version: int) -> str:
    """Installs the old release's working state; returns the next business date to run."""
    install(version, state_db(site.params("2026-11-10")))
    return "2026-11-04" if version == 4 else "2026-11-03"


def lamp_state(site: Site) -> dict[str, Any]:
    return {
        "batches": site.query(
            "SELECT reference, purchased, eta, allocated FROM batches WHERE sku = 'LAMP' "
            "ORDER BY reference"
        ),
        "lines": site.query(
            "SELECT orderid, status, batchref FROM order_lines WHERE sku = 'LAMP' ORDER BY 1"
        ),
    }


AS_BEFORE = {
    "batches": [("B-LAMP-1", 10, None, 9), ("B-LAMP-2", 6, dt.date(2026, 11, 25), 0)],
    "lines": [("o1", "allocated", "B-LAMP-1"), ("o3", "allocated", "B-LAMP-1")],
}


@pytest.mark.parametrize("version", [2, 3, 4])
def test_a_manifest_re_sent_with_a_row_appended_after_an_upgrade_applies_only_that_row(
    site: Site, version: int
) -> None:
    night = upgraded_site(site, version)
    site.batches("m1.csv", *M1_ROWS, "B-DESK-9,DESK,3,")
    site.orders("o9.csv", "o9,DESK,3")
    summary = site.run(night)

    assert lamp_state(site) == AS_BEFORE, "the old rows of m1.csv were applied again"
    assert summary["batches"]["duplicate"] == len(M1_ROWS)
    assert site.query("SELECT count(*) FROM batch_changes WHERE business_date = ?", [night]) == [
        (0,)
    ]
    assert site.query("SELECT count(*) FROM reallocations") == [(0,)]
    assert site.query("SELECT orderid, batchref FROM order_lines WHERE sku = 'DESK'")[-1] == (
        "o9",
        "B-DESK-9",
    )


@pytest.mark.parametrize("version", [2, 3])
def test_the_upgrade_remembers_every_manifest_row_the_history_shows(
    site: Site, version: int
) -> None:
    upgraded_site(site, version)
    site.run("2026-11-03")  # an empty night: opens and upgrades the warehouse
    rows = site.query(
        "SELECT source_file, line, reference, qty, eta, business_date FROM manifest_rows "
        "ORDER BY source_file, line"
    )
    assert rows == [
        ("batches/m1.csv", 1, "B-LAMP-1", 4, None, dt.date(2026, 11, 1)),
        ("batches/m1.csv", 2, "B-LAMP-2", 10, dt.date(2026, 11, 20), dt.date(2026, 11, 1)),
        ("batches/m1.csv", 3, "B-CLOCK-1", 5, None, dt.date(2026, 11, 1)),
        ("batches/m2.csv", 1, "B-LAMP-1", 10, None, dt.date(2026, 11, 2)),
        ("batches/m2.csv", 2, "B-LAMP-2", 6, dt.date(2026, 11, 25), dt.date(2026, 11, 2)),
    ]
    runs = site.query("SELECT DISTINCT m.run_id IN (SELECT run_id FROM runs) FROM manifest_rows m")
    assert runs == [(True,)], "each remembered row names the old run that received it"


@pytest.mark.parametrize("version", [2, 3, 4])
def test_after_an_upgrade_a_supplier_revert_in_a_new_file_still_applies(
    site: Site, version: int
) -> None:
    night = upgraded_site(site, version)
    site.batches("m1.csv", *M1_ROWS)  # the old file again: nothing
    site.batches("m2.csv", *M2_ROWS, "B-CLOCK-1,CLOCK,5,")  # grown by a duplicate: nothing
    site.batches("m9.csv", "B-LAMP-1,LAMP,4,")  # a new file says 4 again: applied
    site.run(night)
    assert site.query(
        "SELECT reference, change, old_qty, new_qty, source_file FROM batch_changes "
        "WHERE business_date = ?",
        [night],
    ) == [("B-LAMP-1", "qty_down", 10, 4, "batches/m9.csv")]
    assert site.query("SELECT orderid, from_batchref, to_batchref FROM reallocations") == [
        ("o3", "B-LAMP-1", "B-LAMP-2")  # released by the cut, placed in the other batch
    ]


def test_upgrading_twice_remembers_each_row_once(site: Site) -> None:
    """A warehouse the faulty version-4 upgrade opened, where a version-4 night then received
    m1.csv again (recording its rows itself), gets no second copy of those rows."""
    install(3, state_db(site.params("2026-11-10")))
    import duckdb

    from allocation.io.warehouse_schema import migrate

    con = duckdb.connect(str(state_db(site.params("2026-11-10"))))
    try:
        con.execute("BEGIN TRANSACTION")
        migrate(con, target=4)  # what the version-4 code did: an empty ledger
        con.execute(
            "INSERT INTO manifest_rows SELECT 'batches/m1.csv', 1, 'B-LAMP-1', 'LAMP', 4, NULL, "
            "DATE '2026-11-03', 'a-v4-night'"
        )
        con.execute("COMMIT")
    finally:
        con.close()
    site.run("2026-11-04")
    assert site.query(
        "SELECT count(*) FROM manifest_rows WHERE source_file = 'batches/m1.csv' AND line = 1"
    ) == [(1,)]
    assert site.query("SELECT count(*) FROM manifest_rows") == [(5,)]
