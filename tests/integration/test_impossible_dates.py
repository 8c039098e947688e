"""Issue 23 item 3: a batch whose eta no night can hold (year 0) is rejected at the door, whatever
the file format, and a warehouse that already holds one (accepted by an earlier release) is
repaired on open: no stored value stops every night."""

from __future__ import annotations

import datetime as dt
import json
import logging

import duckdb
import polars as pl
import pytest

from allocation.service.state import state_db
from conftest import Site
from old_releases import install


@pytest.fixture(autouse=True)
def _manifest_only_nights_are_normal_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """These nights send manifests without orders on purpose: the check of the night that stops
    a night without an order file (issue 25) is told such a night is normal."""
    monkeypatch.setenv("ALLOCATION_EMPTY_NIGHT_OK", "true")


YEAR_0 = -719_528  # 0000-01-01 as days since 1970-01-01 (Parquet's and polars' dates)
REASON = "eta '{}' is outside the accepted dates 1900-01-01 to 2999-12-31: a typo?"


def write_manifest(site: Site, fmt: str, eta: str | int) -> None:
    rows = [("B-RADIO-0", "RADIO", 5, eta), ("B-RADIO-1", "RADIO", 3, None)]
    if fmt == "csv":
        site.batches("m1.csv", *[f"{r},{s},{q},{e or ''}" for r, s, q, e in rows])
    elif fmt == "jsonl":
        text = "".join(
            json.dumps({"reference": r, "sku": s, "qty": q, "eta": e}) + "\n" for r, s, q, e in rows
        )
        site.write("batches/m1.jsonl", text)
    else:
        frame = pl.DataFrame(
            {
                "reference": [r[0] for r in rows],
                "sku": [r[1] for r in rows],
                "qty": [r[2] for r in rows],
                "eta": pl.Series([r[3] for r in rows], dtype=pl.Int32).cast(pl.Date),
            }
        )
        frame.write_parquet(site.inbox / "batches" / "m1.parquet")


@pytest.mark.parametrize(
    ("fmt", "eta", "shown"),
    [
        ("csv", "0000-01-01", "0000-01-01"),
        ("csv", "0202-11-20", "0202-11-20"),
        ("jsonl", "0000-01-01", "0000-01-01"),
        ("parquet", YEAR_0, "0000-01-01"),
        ("parquet", -800_000, "-0221-09-04"),
        ("parquet", 3_000_000, "+10183-09-21"),
    ],
)
def test_a_batch_with_an_eta_no_night_can_hold_is_rejected_and_later_nights_run(
    site: Site, fmt: str, eta: str | int, shown: str
) -> None:
    write_manifest(site, fmt, eta)
    site.orders("o1.csv", "o1,RADIO,2")
    summary = site.run("2026-11-01")
    assert summary["batches"]["rejected"] == 1
    rejected = site.query("SELECT reason FROM rejected_rows WHERE kind = 'batches'")
    assert rejected == [(REASON.format(shown),)]
    assert site.query("SELECT reference FROM batches") == [("B-RADIO-1",)]

    site.orders("o2.csv", "o2,RADIO,1")  # an order for its sku: the night that used to crash
    site.run("2026-11-02")
    assert site.query("SELECT orderid, batchref FROM order_lines ORDER BY 1") == [
        ("o1", "B-RADIO-1"),
        ("o2", "B-RADIO-1"),
    ]


def test_a_warehouse_already_holding_a_year_0_batch_is_repaired_on_open(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """The version-4 release accepted B-RADIO-0 with eta 0000-01-01 (tests/old_releases): every
    night with a RADIO order crashed. The upgrade quarantines the batch, with a log line."""
    install(4, state_db(site.params("2026-11-04")))
    site.orders("o5.csv", "o5,RADIO,2")
    site.batches("m4.csv", "B-RADIO-1,RADIO,4,")
    with caplog.at_level(logging.WARNING):
        site.run("2026-11-04")
    warned = [r.getMessage() for r in caplog.records if "B-RADIO-0" in r.getMessage()]
    assert warned and "quarantined_batches" in warned[0], warned
    assert site.query("SELECT count(*) FROM batches WHERE reference = 'B-RADIO-0'") == [(0,)]
    assert site.query(
        "SELECT reference, sku, purchased, eta::VARCHAR, first_seen, source_file, source_line, "
        "reason FROM quarantined_batches"
    ) == [
        (
            "B-RADIO-0",
            "RADIO",
            5,
            "0001-01-01 (BC)",  # how DuckDB writes year 0
            dt.date(2026, 11, 3),
            "batches/m3.csv",
            1,
            "eta 0001-01-01 (BC) is outside the accepted dates 1900-01-01 to 2999-12-31",
        )
    ]
    assert site.query("SELECT orderid, batchref FROM order_lines WHERE sku = 'RADIO'") == [
        ("o5", "B-RADIO-1")
    ]

    # The supplier sends the batch again with a real eta: it is a batch like any other now.
    site.batches("m5.csv", "B-RADIO-0,RADIO,5,2026-12-01")
    site.run("2026-11-05")
    assert site.query("SELECT purchased, eta FROM batches WHERE reference = 'B-RADIO-0'") == [
        (5, dt.date(2026, 12, 1))
    ]


def test_an_impossible_eta_a_manifest_update_set_goes_back_to_the_eta_before_it(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """A version-4 warehouse where a manifest update moved a batch holding allocations to year
    0 (the door let it through): the batch keeps its lines and gets its earlier eta back."""
    site.batches("m1.csv", "B-RADIO-1,RADIO,5,2026-12-01")
    site.orders("o1.csv", "o1,RADIO,2")
    site.run("2026-11-01")
    con = duckdb.connect(str(state_db(site.params("2026-11-01"))))
    try:  # what the version-4 code left after `B-RADIO-1,RADIO,5,0000-01-01` in m2.csv
        con.execute("UPDATE batches SET eta = DATE '0001-01-01' - INTERVAL 1 YEAR")
        con.execute(
            "INSERT INTO batch_changes SELECT reference, sku, 'eta', 5, 5, DATE '2026-12-01', "
            "eta, DATE '2026-11-02', 'a-v4-run', 'batches/m2.csv', 1 FROM batches"
        )
        con.execute("DROP TABLE quarantined_batches")
        con.execute("DROP VIEW nightly_trend")  # schema version 6
        con.execute("DROP TABLE night_checks")
        con.execute("ALTER TABLE runs DROP COLUMN lines_waiting")
        con.execute("ALTER TABLE runs DROP COLUMN oldest_wait_days")
        con.execute("DELETE FROM schema_version WHERE version > 4")
    finally:
        con.close()
    site.orders("o2.csv", "o2,RADIO,1")
    with caplog.at_level(logging.WARNING):
        site.run("2026-11-03")
    assert any("got back its earlier eta (2026-12-01)" in r.getMessage() for r in caplog.records)
    assert site.query("SELECT eta, allocated FROM batches") == [(dt.date(2026, 12, 1), 3)]
    [(reason,)] = site.query("SELECT reason FROM quarantined_batches")
    assert reason.endswith("the batch got back the eta it had before (2026-12-01)"), reason
