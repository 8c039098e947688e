"""Issue 3 through whole nights: bad input never breaks a night and never loses a row.

Every case runs a complete night through the service layer (``site.run``) on real files and a
real DuckDB warehouse, then reads what a person would read: ``rejected.csv``, the published
``rejected_rows`` table, ``summary.json``, the reports and the log. The corpus is built here by
fixtures and helpers, never committed as blobs. The reader and the validator have their own
unit-level tests (``test_inbox.py``, ``test_validation.py``); this file proves the night.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from allocation.io.readers import InboxError
from conftest import Site

DAY = "2026-11-25"
NEXT_DAY = "2026-11-26"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
EVIL_SKU = "x'); DROP TABLE batches; --"

#: These nights are fed bad files and rows on purpose, to see them rejected while the rest loads:
#: the checks of the night (issue 25) would stop them, by design (tests/integration/
#: test_night_checks.py shows that). Here those checks only warn, as an operator who expects bad
#: input sets them.
BAD_INPUT_CHECKS = (
    "files_rejected=warn,order_rows_rejected=warn,manifest_rows_rejected=warn,"
    "manifest_without_eta=warn"
)


@pytest.fixture(autouse=True)
def _bad_input_only_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOCATION_CHECKS", BAD_INPUT_CHECKS)


Raw = dict[str, Any] | list[Any] | None
Rejection = tuple[str, str, int | None, str, Raw]  # kind, source_file, line, reason, raw


# --------------------------------------------------------------------------------------------
# Reading what the night produced
# --------------------------------------------------------------------------------------------


def rejected_csv_rows(site: Site, day: str) -> list[dict[str, str]]:
    with open(site.outbox / day / "rejected.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def rejections(site: Site, day: str = DAY) -> list[Rejection]:
    """The night's rejections as ``rejected.csv`` shows them, checked against the published
    ``rejected_rows`` table (same rows, same order-independent content)."""
    from_csv: list[Rejection] = [
        (
            row["kind"],
            row["source_file"],
            int(row["line"]) if row["line"] else None,
            row["reason"],
            json.loads(row["raw"]) if row["raw"] else None,
        )
        for row in rejected_csv_rows(site, day)
    ]
    from_table: list[Rejection] = [
        (kind, source_file, line, reason, json.loads(raw) if raw is not None else None)
        for kind, source_file, line, reason, raw in site.query(
            "SELECT kind, source_file, line, reason, raw FROM rejected_rows "
            "WHERE business_date = ?",
            [day],
        )
    ]
    assert sorted(from_csv, key=repr) == sorted(from_table, key=repr)
    return from_csv


def summary(site: Site, day: str = DAY) -> dict[str, Any]:
    """``summary.json`` of the night, after checking that its counts add up."""
    result: dict[str, Any] = json.loads((site.outbox / day / "summary.json").read_text("utf-8"))
    for kind in ("orders", "batches"):
        counts = result[kind]
        assert counts["received"] == (
            counts["accepted"] + counts["duplicate"] + counts["rejected"]
        ), (kind, counts)
    files = result["files"]
    assert files["rejected"] == len(files["rejected_files"])
    table = site.query(
        "SELECT count(*) FROM rejected_rows WHERE business_date = ? AND line IS NULL", [day]
    )
    assert table == [(files["rejected"],)]
    for kind in ("orders", "batches"):
        rows = site.query(
            "SELECT count(*) FROM rejected_rows WHERE business_date = ? AND kind = ? "
            "AND line IS NOT NULL",
            [day, kind],
        )
        assert rows == [(result[kind]["rejected"],)]
    return result


def counts(result: dict[str, Any], kind: str) -> tuple[int, int, int, int]:
    c = result[kind]
    return (c["received"], c["accepted"], c["duplicate"], c["rejected"])


def rejected_files(result: dict[str, Any]) -> dict[str, str]:
    return {f["file"]: f["reason"] for f in result["files"]["rejected_files"]}


def allocated(site: Site, day: str = DAY) -> list[tuple[str, str, int, str]]:
    return [
        (r["orderid"], r["sku"], r["qty"], r["batchref"]) for r in site.report(day, "allocations")
    ]


def waiting(site: Site, day: str = DAY) -> list[tuple[str, str, int]]:
    return [(r["orderid"], r["sku"], r["qty"]) for r in site.report(day, "out_of_stock")]


def csv_cells(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --------------------------------------------------------------------------------------------
# Writing inbox files
# --------------------------------------------------------------------------------------------


def put(site: Site, relative: str, content: bytes | str) -> Path:
    path = site.inbox / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)


def stock(site: Site, *rows: str) -> None:
    """A manifest with plenty of LAMP and DESK in stock (and whatever ``rows`` add)."""
    site.batches("00-stock.csv", "B-LAMP,LAMP,1000,", "B-DESK,DESK,1000,", *rows)


# --------------------------------------------------------------------------------------------
# Row level: the bad row is rejected with its line, reason and raw values; the rest loads
# --------------------------------------------------------------------------------------------

ORDER_ROW_CASES = [
    pytest.param("bad,LAMP,ten", "qty 'ten' is not a whole number", id="qty-word"),
    pytest.param("bad,LAMP,1.5", "qty '1.5' is not a whole number", id="qty-decimal"),
    pytest.param("bad,LAMP,", "qty is empty", id="qty-empty"),
    pytest.param("bad,LAMP,0", "qty 0 must be at least 1", id="qty-zero"),
    pytest.param("bad,LAMP,-2", "qty -2 must be at least 1", id="qty-negative"),
    pytest.param(
        "bad,LAMP,9223372036854775808",
        "qty '9223372036854775808' is out of range",
        id="qty-above-int64",
    ),
    pytest.param(
        "bad,LAMP,-9223372036854775809",
        "qty '-9223372036854775809' is out of range",
        id="qty-below-int64",
    ),
    pytest.param(",LAMP,1", "orderid is empty", id="orderid-empty"),
    pytest.param("   ,LAMP,1", "orderid is empty", id="orderid-whitespace"),
    pytest.param("bad,,1", "sku is empty", id="sku-empty"),
    pytest.param("bad,\t ,1", "sku is empty", id="sku-whitespace"),
]


@pytest.mark.parametrize(("row", "reason"), ORDER_ROW_CASES)
def test_a_bad_order_row_is_rejected_and_the_rest_of_its_file_is_allocated(
    site: Site, row: str, reason: str
) -> None:
    stock(site)
    site.orders("a.csv", "first,LAMP,1", row, "last,DESK,2")

    result = site.run(DAY)

    orderid, sku, qty = row.split(",")
    assert rejections(site) == [
        ("orders", "orders/a.csv", 2, reason, {"orderid": orderid, "sku": sku, "qty": qty})
    ]
    assert counts(summary(site), "orders") == (3, 2, 0, 1)
    assert result["files"]["rejected"] == 0
    assert allocated(site) == [("first", "LAMP", 1, "B-LAMP"), ("last", "DESK", 2, "B-DESK")]


BATCH_ROW_CASES = [
    pytest.param(",LAMP,5,", "reference is empty", id="reference-empty"),
    pytest.param("  ,LAMP,5,", "reference is empty", id="reference-whitespace"),
    pytest.param("B-BAD,,5,", "sku is empty", id="sku-empty"),
    pytest.param("B-BAD, ,5,", "sku is empty", id="sku-whitespace"),
    pytest.param("B-BAD,LAMP,ten,", "qty 'ten' is not a whole number", id="qty-word"),
    pytest.param("B-BAD,LAMP,1.5,", "qty '1.5' is not a whole number", id="qty-decimal"),
    pytest.param("B-BAD,LAMP,,", "qty is empty", id="qty-empty"),
    pytest.param("B-BAD,LAMP,-1,", "qty -1 must not be negative", id="qty-negative"),
    pytest.param(
        "B-BAD,LAMP,18446744073709551616,",
        "qty '18446744073709551616' is out of range",
        id="qty-out-of-range",
    ),
    pytest.param(
        "B-BAD,LAMP,5,2026-13-45",
        "eta '2026-13-45' is not a date (expected YYYY-MM-DD)",
        id="eta-impossible",
    ),
    pytest.param(
        "B-BAD,LAMP,5,tomorrow",
        "eta 'tomorrow' is not a date (expected YYYY-MM-DD)",
        id="eta-word",
    ),
]


@pytest.mark.parametrize(("row", "reason"), BATCH_ROW_CASES)
def test_a_bad_batch_row_is_rejected_and_the_rest_of_its_manifest_loads(
    site: Site, row: str, reason: str
) -> None:
    site.batches("m.csv", "B-FIRST,LAMP,1,", row, "B-LAST,LAMP,5,2026-12-01")
    site.orders("a.csv", "o1,LAMP,1", "o2,LAMP,5")

    site.run(DAY)

    reference, sku, qty, eta = row.split(",")
    raw = {"reference": reference, "sku": sku, "qty": qty, "eta": eta}
    assert rejections(site) == [("batches", "batches/m.csv", 2, reason, raw)]
    assert counts(summary(site), "batches") == (3, 2, 0, 1)
    assert allocated(site) == [("o1", "LAMP", 1, "B-FIRST"), ("o2", "LAMP", 5, "B-LAST")]
    assert site.query("SELECT reference FROM batches ORDER BY reference") == [
        ("B-FIRST",),
        ("B-LAST",),
    ]


@pytest.mark.parametrize(
    ("kind", "row", "reason", "raw"),
    [
        pytest.param(
            "orders", "bad,LAMP,1,oops", "row has 4 fields, header has 3",
            ["bad", "LAMP", "1", "oops"], id="orders-too-many",
        ),
        pytest.param(
            "orders", "bad,LAMP", "row has 2 fields, header has 3", ["bad", "LAMP"],
            id="orders-too-few",
        ),
        pytest.param(
            "batches", "B-BAD,LAMP,5,,surplus,more", "row has 6 fields, header has 4",
            ["B-BAD", "LAMP", "5", "", "surplus", "more"], id="batches-too-many",
        ),
        pytest.param(
            "batches", "B-BAD", "row has 1 field, header has 4", ["B-BAD"],
            id="batches-too-few",
        ),
    ],
)  # fmt: skip
def test_a_ragged_row_is_rejected_not_its_file(
    site: Site, kind: str, row: str, reason: str, raw: list[str]
) -> None:
    if kind == "orders":
        stock(site)
        site.orders("r.csv", "first,LAMP,1", row, "last,LAMP,2")
    else:
        site.batches("r.csv", "B-FIRST,LAMP,1,", row, "B-LAST,LAMP,5,")
        site.orders("a.csv", "first,LAMP,1", "last,LAMP,2")

    site.run(DAY)

    # raw is always a JSON object: a ragged row's fields as received, under "fields".
    assert rejections(site) == [(kind, f"{kind}/r.csv", 2, reason, {"fields": raw})]
    assert counts(summary(site), kind) == (3, 2, 0, 1)
    assert [line[0] for line in allocated(site)] == ["first", "last"]


def test_every_bad_row_of_a_file_is_rejected_on_its_own_line_and_none_is_lost(site: Site) -> None:
    stock(site)
    rows = ["ok1,LAMP,1", "bad,LAMP,ten", "ok2,LAMP,1", ",,", "ok3,DESK,1", "bad,LAMP,1,x"]
    site.orders("a.csv", *rows)

    site.run(DAY)

    assert [(line, reason) for _, _, line, reason, _ in rejections(site)] == [
        (2, "qty 'ten' is not a whole number"),
        (4, "orderid is empty; sku is empty; qty is empty"),
        (6, "row has 4 fields, header has 3"),
    ]
    assert counts(summary(site), "orders") == (6, 3, 0, 3)
    assert [line[0] for line in allocated(site)] == ["ok1", "ok2", "ok3"]


# --------------------------------------------------------------------------------------------
# Duplicates and conflicts: in one file, across files of one night, against an earlier night
# --------------------------------------------------------------------------------------------


def test_order_duplicates_and_conflicts_within_one_file(site: Site) -> None:
    stock(site)
    site.orders("a.csv", "o1,LAMP,2", "o1,LAMP,2", "o1,LAMP,5", "o2,LAMP,1")

    site.run(DAY)

    assert rejections(site) == [
        (
            "orders",
            "orders/a.csv",
            3,
            "order o1 sku LAMP with qty 5 conflicts with the line received in "
            "orders/a.csv line 1 with qty 2",
            {"orderid": "o1", "sku": "LAMP", "qty": "5"},
        )
    ]
    assert counts(summary(site), "orders") == (4, 2, 1, 1)
    assert allocated(site) == [("o1", "LAMP", 2, "B-LAMP"), ("o2", "LAMP", 1, "B-LAMP")]


def test_order_duplicates_and_conflicts_across_files_of_one_night(site: Site) -> None:
    stock(site)
    site.orders("a.csv", "o1,LAMP,2")
    site.orders("b.csv", "o2,DESK,1", "o1,LAMP,2", "o1,LAMP,9")

    site.run(DAY)

    assert rejections(site) == [
        (
            "orders",
            "orders/b.csv",
            3,
            "order o1 sku LAMP with qty 9 conflicts with the line received in "
            "orders/a.csv line 1 with qty 2",
            {"orderid": "o1", "sku": "LAMP", "qty": "9"},
        )
    ]
    assert counts(summary(site), "orders") == (4, 2, 1, 1)
    assert allocated(site) == [("o1", "LAMP", 2, "B-LAMP"), ("o2", "DESK", 1, "B-DESK")]


def test_order_duplicates_and_conflicts_against_an_earlier_night(site: Site) -> None:
    stock(site)
    site.orders("a.csv", "o1,LAMP,2")
    site.run(DAY)
    site.clear_inbox()
    site.orders("b.csv", "o1,LAMP,2", "o1,LAMP,7", "o2,LAMP,1")

    site.run(NEXT_DAY)

    assert rejections(site, NEXT_DAY) == [
        (
            "orders",
            "orders/b.csv",
            2,
            f"order o1 sku LAMP with qty 7 conflicts with the line received on {DAY} "
            "(orders/a.csv line 1) with qty 2",
            {"orderid": "o1", "sku": "LAMP", "qty": "7"},
        )
    ]
    assert counts(summary(site, NEXT_DAY), "orders") == (3, 1, 1, 1)
    assert allocated(site, NEXT_DAY) == [("o2", "LAMP", 1, "B-LAMP")]
    assert site.query("SELECT orderid, qty FROM order_lines ORDER BY orderid") == [
        ("o1", 2),
        ("o2", 1),
    ]


# For batches, a known reference with another qty or eta is a manifest update (see
# test_manifest_updates.py), not a conflict: the conflict left is a reference with another sku.


def test_batch_duplicates_and_conflicts_within_one_file(site: Site) -> None:
    site.batches("m.csv", "B1,LAMP,10,", "B1,LAMP,10,", "B1,DESK,10,")
    site.orders("a.csv", "o1,LAMP,10", "o2,DESK,1")

    site.run(DAY)

    assert rejections(site) == [
        (
            "batches",
            "batches/m.csv",
            3,
            "batch B1 has sku LAMP (received in batches/m.csv line 1); "
            "a batch cannot change sku (got DESK)",
            {"reference": "B1", "sku": "DESK", "qty": "10", "eta": ""},
        )
    ]
    assert counts(summary(site), "batches") == (3, 1, 1, 1)
    assert allocated(site) == [("o1", "LAMP", 10, "B1")]
    assert waiting(site) == [("o2", "DESK", 1)]


def test_batch_duplicates_and_conflicts_across_files_of_one_night(site: Site) -> None:
    site.batches("m1.csv", "B1,LAMP,10,2026-12-01")
    site.batches("m2.csv", "B1,LAMP,10,2026-12-01", "B1,DESK,10,2026-12-01")
    site.orders("a.csv", "o1,LAMP,10")

    site.run(DAY)

    assert rejections(site) == [
        (
            "batches",
            "batches/m2.csv",
            2,
            "batch B1 has sku LAMP (received in batches/m1.csv line 1); "
            "a batch cannot change sku (got DESK)",
            {"reference": "B1", "sku": "DESK", "qty": "10", "eta": "2026-12-01"},
        )
    ]
    assert counts(summary(site), "batches") == (3, 1, 1, 1)
    assert allocated(site) == [("o1", "LAMP", 10, "B1")]


def test_batch_duplicates_and_conflicts_against_an_earlier_night(site: Site) -> None:
    site.batches("m1.csv", "B1,LAMP,10,")
    site.run(DAY)
    site.clear_inbox()
    site.batches("m2.csv", "B1,LAMP,10,", "B1,DESK,10,")
    site.orders("a.csv", "o1,LAMP,3", "o2,DESK,1")

    site.run(NEXT_DAY)

    assert rejections(site, NEXT_DAY) == [
        (
            "batches",
            "batches/m2.csv",
            2,
            f"batch B1 has sku LAMP (received on {DAY} (batches/m1.csv line 1)); "
            "a batch cannot change sku (got DESK)",
            {"reference": "B1", "sku": "DESK", "qty": "10", "eta": ""},
        )
    ]
    assert counts(summary(site, NEXT_DAY), "batches") == (2, 0, 1, 1)
    assert allocated(site, NEXT_DAY) == [("o1", "LAMP", 3, "B1")]
    assert waiting(site, NEXT_DAY) == [("o2", "DESK", 1)]
    assert site.query("SELECT reference, sku, purchased FROM batches") == [("B1", "LAMP", 10)]


# --------------------------------------------------------------------------------------------
# File level: the file is rejected as a whole (no line, no raw), the night goes on
# --------------------------------------------------------------------------------------------

ORDERS_THAT_WOULD_MATTER = "orderid,sku,qty\nthief,LAMP,999\n"


def _outside_symlink(site: Site) -> str:
    outside = site.root / "elsewhere" / "orders.csv"
    outside.parent.mkdir()
    outside.write_text(ORDERS_THAT_WOULD_MATTER, encoding="utf-8")
    (site.inbox / "orders" / "bad.csv").symlink_to(outside)
    return "orders/bad.csv"


def _truncated_parquet(site: Site) -> str:
    buffer = io.BytesIO()
    pl.DataFrame({"orderid": ["thief"], "sku": ["LAMP"], "qty": [999]}).write_parquet(buffer)
    put(site, "orders/bad.parquet", buffer.getvalue()[:-20])
    return "orders/bad.parquet"


FILE_CASES: list[Any] = [
    pytest.param(
        lambda s: put(s, "orders/bad.csv", b""), "orders/bad.csv",
        "empty file: no header row", id="empty",
    ),
    pytest.param(
        lambda s: put(s, "orders/bad.csv", b"\r\n \n"), "orders/bad.csv",
        "empty file: no header row", id="blank-lines-only",
    ),
    pytest.param(
        lambda s: put(s, "orders/bad.csv", b"orderid,qty\nthief,999\n"), "orders/bad.csv",
        "missing required column(s): sku; columns found: orderid, qty", id="missing-column",
    ),
    pytest.param(
        lambda s: put(s, "batches/bad.csv", b"ref,sku,eta\nB-X,LAMP,\n"), "batches/bad.csv",
        "missing required column(s): qty; columns found: ref, sku, eta",
        id="batches-missing-column",
    ),
    pytest.param(
        lambda s: put(s, "orders/bad.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        "orders/bad.csv", "not a text file (binary content at byte 8)", id="binary",
    ),
    pytest.param(
        # Latin-1 "é": byte 23 is 0xE9, which is not UTF-8. The row must never load as "L?MP".
        lambda s: put(s, "orders/bad.csv", "orderid,sku,qty\nthief,LéMP,9\n".encode("latin-1")),
        "orders/bad.csv", "not valid UTF-8 at byte offset 23: re-export the file as UTF-8",
        id="not-utf8",
    ),
    pytest.param(
        lambda s: put(s, "orders/bad.parquet", b"PAR1 this is not a parquet file PAR1"),
        "orders/bad.parquet", re.compile(r"cannot read Parquet: \S.*"), id="parquet-garbage",
    ),
    pytest.param(
        _truncated_parquet, "orders/bad.parquet", re.compile(r"cannot read Parquet: \S.*"),
        id="parquet-truncated",
    ),
    pytest.param(
        lambda s: put(s, "orders/bad.jsonl", b"orderid,sku,qty\n{thief: LAMP}\n"),
        "orders/bad.jsonl", re.compile(r"cannot parse as JSON Lines: line 1: \S.*"),
        id="jsonl-garbage",
    ),
    pytest.param(
        lambda s: put(s, "orders/bad.xlsx", b"PK\x03\x04 a spreadsheet"), "orders/bad.xlsx",
        "unsupported file type '.xlsx': expected .csv, .parquet or .jsonl", id="xlsx",
    ),
    pytest.param(
        lambda s: put(s, "batches/notes", b"call the supplier"), "batches/notes",
        "unsupported file type (no extension): expected .csv, .parquet or .jsonl",
        id="no-extension",
    ),
    pytest.param(
        _outside_symlink, "orders/bad.csv",
        re.compile(r"symlink points outside the inbox \(.*elsewhere/orders\.csv\): .*"),
        id="symlink-outside",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("make", "source_file", "reason"), FILE_CASES)
def test_a_bad_file_is_rejected_whole_and_the_night_goes_on(
    site: Site,
    make: Callable[[Site], object],
    source_file: str,
    reason: str | re.Pattern[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stock(site)
    site.orders("good.csv", "o1,LAMP,3")
    make(site)

    with caplog.at_level(logging.INFO, logger="allocation"):
        site.run(DAY)

    [(kind, file, line, said, raw)] = rejections(site)
    assert (kind, file, line, raw) == (source_file.split("/")[0], source_file, None, None)
    if isinstance(reason, str):
        assert said == reason
    else:
        assert reason.fullmatch(said), said
    [csv_row] = rejected_csv_rows(site, DAY)
    assert (csv_row["line"], csv_row["raw"]) == ("", "")

    result = summary(site)
    assert rejected_files(result) == {source_file: said}
    files = result["files"]
    assert {key: files[key] for key in ("received", "rejected", "skipped_already_ingested")} == {
        "received": 3,
        "rejected": 1,
        "skipped_already_ingested": 0,
    }
    assert files["rejected_files"] == [{"file": source_file, "reason": said}]
    assert (files["ignored"], files["waiting"], files["not_read"]) == (0, 0, [])
    assert counts(result, "orders") == (1, 1, 0, 0)
    assert allocated(site) == [("o1", "LAMP", 3, "B-LAMP")]
    named = [r for r in caplog.records if source_file in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in named] == [
        (logging.WARNING, f"Rejected file {source_file}: {said}")
    ]


def test_several_bad_files_are_each_counted_and_listed(site: Site) -> None:
    stock(site)
    put(site, "orders/a.csv", b"")
    put(site, "orders/b.xlsx", b"PK")
    put(site, "batches/c.parquet", b"nope")
    site.orders("d.csv", "o1,DESK,1")

    result = site.run(DAY)

    assert sorted(rejected_files(summary(site))) == [
        "batches/c.parquet",
        "orders/a.csv",
        "orders/b.xlsx",
    ]
    assert (result["files"]["received"], result["files"]["rejected"]) == (5, 3)
    assert allocated(site) == [("o1", "DESK", 1, "B-DESK")]


# --------------------------------------------------------------------------------------------
# Valid things that must just work
# --------------------------------------------------------------------------------------------


def test_a_bom_and_crlf_line_endings_load_cleanly(site: Site) -> None:
    put(site, "batches/m.csv", b"\xef\xbb\xbfreference,sku,qty,eta\r\nB1,LAMP,5,2026-12-01\r\n")
    put(site, "orders/a.csv", b"\xef\xbb\xbforderid,sku,qty\r\no1,LAMP,2\r\no2,LAMP,3\r\n")

    site.run(DAY)

    assert rejections(site) == []
    assert allocated(site) == [("o1", "LAMP", 2, "B1"), ("o2", "LAMP", 3, "B1")]
    assert site.query("SELECT reference, sku, eta::VARCHAR FROM batches") == [
        ("B1", "LAMP", "2026-12-01")
    ]
    assert counts(summary(site), "orders") == (2, 2, 0, 0)


def test_header_only_files_are_fine_and_hold_nothing(site: Site) -> None:
    site.batches("m.csv")
    site.orders("a.csv")
    put(site, "orders/b.csv", b"\xef\xbb\xbforderid,sku,qty\r\n")

    site.run(DAY)

    result = summary(site)
    assert rejections(site) == []
    assert counts(result, "orders") == (0, 0, 0, 0)
    assert counts(result, "batches") == (0, 0, 0, 0)
    assert (result["files"]["received"], result["files"]["rejected"]) == (3, 0)


def test_quoted_fields_with_commas_and_quotes_are_values(site: Site) -> None:
    site.batches("m.csv", '"B1, east","LAMP, ""brass""",5,')
    site.orders("a.csv", '"o1, urgent","LAMP, ""brass""",2')

    site.run(DAY)

    assert rejections(site) == []
    assert allocated(site) == [("o1, urgent", 'LAMP, "brass"', 2, "B1, east")]
    assert site.query("SELECT orderid, sku FROM order_lines") == [("o1, urgent", 'LAMP, "brass"')]


def test_non_ascii_skus_are_kept_exactly(site: Site) -> None:
    skus = ["ÉTAGÈRE-CHÊNE", "书架-北京", "LAMPE-🙂", "ШКАФ"]
    site.batches("m.csv", *(f"B{i},{sku},5," for i, sku in enumerate(skus)))
    site.orders("a.csv", *(f"o{i},{sku},1" for i, sku in enumerate(skus)), "o9,ШКАФ,99")

    site.run(DAY)

    assert rejections(site) == []
    assert [line[1] for line in allocated(site)] == skus
    assert waiting(site) == [("o9", "ШКАФ", 99)]
    assert site.query("SELECT sku FROM batches ORDER BY reference") == [(s,) for s in skus]
    text = (site.outbox / DAY / "allocations.csv").read_text(encoding="utf-8")
    assert all(sku in text for sku in skus)


def test_extra_columns_are_ignored_and_named_once_per_file_in_the_log(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.batches("m.csv", "B1,LAMP,50,,Acme,blue", header="reference,sku,qty,eta,supplier,colour")
    site.orders("a.csv", *[f"a{i},LAMP,1,gift" for i in range(5)], header="orderid,sku,qty,note")
    put(site, "orders/b.jsonl", jsonl({"orderid": "b1", "sku": "LAMP", "qty": 1, "channel": "web"}))
    pl.DataFrame(
        {"orderid": ["c1", "c2"], "sku": ["LAMP", "LAMP"], "qty": [1, 1], "store": [7, 8]}
    ).write_parquet(site.inbox / "orders" / "c.parquet")

    with caplog.at_level(logging.INFO, logger="allocation"):
        site.run(DAY)

    assert rejections(site) == []
    assert counts(summary(site), "orders") == (8, 8, 0, 0)
    assert len(allocated(site)) == 8
    extra = [r.getMessage() for r in caplog.records if "extra column" in r.getMessage()]
    assert sorted(extra) == [
        "batches/m.csv: ignored extra columns supplier, colour",
        "orders/a.csv: ignored extra columns note",
        "orders/b.jsonl: ignored extra columns channel",
        "orders/c.parquet: ignored extra columns store",
    ]


def test_parquet_and_json_lines_files_load_like_csv(site: Site) -> None:
    put(
        site,
        "batches/m.jsonl",
        jsonl(
            {"ref": "B-SHIP", "sku": "LAMP", "qty": 5, "eta": "2026-12-01"},
            {"ref": "B-STOCK", "sku": "LAMP", "qty": 2, "eta": None},
        ),
    )
    pl.DataFrame({"orderid": ["o1", "o2"], "sku": ["LAMP", "LAMP"], "qty": [2, 4]}).write_parquet(
        site.inbox / "orders" / "a.parquet"
    )
    put(site, "orders/b.jsonl", jsonl({"orderid": "o3", "sku": "LAMP", "qty": "1"}))

    site.run(DAY)

    assert rejections(site) == []
    assert allocated(site) == [
        ("o1", "LAMP", 2, "B-STOCK"),
        ("o2", "LAMP", 4, "B-SHIP"),
        ("o3", "LAMP", 1, "B-SHIP"),
    ]


def test_bad_rows_in_parquet_and_json_lines_files_are_rejected_by_line(site: Site) -> None:
    stock(site)
    pl.DataFrame(
        {"orderid": ["p1", "p2", "p3"], "sku": ["LAMP", "LAMP", ""], "qty": ["1", "ten", "1"]}
    ).write_parquet(site.inbox / "orders" / "a.parquet")
    put(
        site,
        "orders/b.jsonl",
        b'{"orderid": "j1", "sku": "LAMP", "qty": 1}\n[1, 2]\n{"orderid": "j2", "sku": "DESK"}\n',
    )

    site.run(DAY)

    assert [(file, line, reason) for _, file, line, reason, _ in rejections(site)] == [
        ("orders/a.parquet", 2, "qty 'ten' is not a whole number"),
        ("orders/a.parquet", 3, "sku is empty"),
        ("orders/b.jsonl", 2, "not a JSON object: found an array"),
        ("orders/b.jsonl", 3, "qty is empty"),  # a missing key is a missing value
    ]
    assert counts(summary(site), "orders") == (6, 2, 0, 4)
    assert allocated(site) == [("p1", "LAMP", 1, "B-LAMP"), ("j1", "LAMP", 1, "B-LAMP")]


@pytest.mark.parametrize(
    ("text", "raws"),
    [
        pytest.param("{}\n{}\n", [{}, {}], id="only-empty-objects"),
        pytest.param(
            '{}\n{"orderid": "o1", "sku": "LAMP", "qty": 1}\n{}\n',
            [{}, {}],  # raw is each row as received, not the keys other rows brought
            id="empty-objects-around-a-row",
        ),
    ],
)
def test_an_empty_json_object_is_a_row_with_every_value_missing(
    site: Site, text: str, raws: list[dict[str, Any]]
) -> None:
    stock(site)
    put(site, "orders/a.jsonl", text)

    site.run(DAY)

    empty = "orderid is empty; sku is empty; qty is empty"
    lines = [1, 2] if text == "{}\n{}\n" else [1, 3]
    assert rejections(site) == [
        ("orders", "orders/a.jsonl", line, empty, raw)
        for line, raw in zip(lines, raws, strict=True)
    ]
    received = text.count("\n")
    assert counts(summary(site), "orders") == (received, received - 2, 0, 2)


# --------------------------------------------------------------------------------------------
# Safety: values are data; spreadsheets get neutralised CSV, programs get exact values
# --------------------------------------------------------------------------------------------


def test_a_sql_looking_sku_is_stored_and_reported_like_any_other(site: Site) -> None:
    site.batches("m.csv", f'B1,"{EVIL_SKU}",3,')
    site.orders("a.csv", f'o1,"{EVIL_SKU}",2', f'o\'2,"{EVIL_SKU}",5', f'o3,"{EVIL_SKU}",lots')

    site.run(DAY)

    assert allocated(site) == [("o1", EVIL_SKU, 2, "B1")]
    assert waiting(site) == [("o'2", EVIL_SKU, 5)]
    assert rejections(site) == [
        (
            "orders",
            "orders/a.csv",
            3,
            "qty 'lots' is not a whole number",
            {"orderid": "o3", "sku": EVIL_SKU, "qty": "lots"},
        )
    ]
    assert site.query("SELECT reference, sku FROM batches") == [("B1", EVIL_SKU)]
    assert site.query("SELECT orderid FROM order_lines WHERE sku = ? ORDER BY orderid", [EVIL_SKU])
    assert [line[1] for line in csv_cells(site.outbox / DAY / "allocations.csv")[1:]] == [EVIL_SKU]
    assert [line[1] for line in csv_cells(site.outbox / DAY / "out_of_stock.csv")[1:]] == [EVIL_SKU]


def test_csv_reports_neutralise_formulas_while_parquet_and_warehouse_keep_exact_values(
    site: Site,
) -> None:
    site.batches("m.csv", "+B1,@SUM(A1),3,", "B2,=CMD|' /C calc'!A0,1,")
    site.orders(
        "a.csv",
        "=1+2,@SUM(A1),2",  # allocated
        "-5,@SUM(A1),9",  # waits: out of stock
        '"=HYPERLINK(""http://x"")",@SUM(A1),ten',  # rejected
        "@o4,=CMD|' /C calc'!A0,1",  # allocated
    )

    site.run(DAY)

    folder = site.outbox / DAY
    assert allocated(site) == [
        ("=1+2", "@SUM(A1)", 2, "+B1"),
        ("@o4", "=CMD|' /C calc'!A0", 1, "B2"),
    ]
    assert waiting(site) == [("-5", "@SUM(A1)", 9)]
    assert site.query("SELECT orderid, sku FROM order_lines ORDER BY arrival_seq") == [
        ("=1+2", "@SUM(A1)"),
        ("-5", "@SUM(A1)"),
        ("@o4", "=CMD|' /C calc'!A0"),
    ]
    assert site.query("SELECT reference FROM batches ORDER BY reference") == [("+B1",), ("B2",)]

    allocations_csv = csv_cells(folder / "allocations.csv")
    assert [row[:4] for row in allocations_csv[1:]] == [
        ["'=1+2", "'@SUM(A1)", "2", "'+B1"],
        ["'@o4", "'=CMD|' /C calc'!A0", "1", "B2"],
    ]
    assert [row[:3] for row in csv_cells(folder / "out_of_stock.csv")[1:]] == [
        ["'-5", "'@SUM(A1)", "9"]
    ]
    [rejected] = csv_cells(folder / "rejected.csv")[1:]
    assert json.loads(rejected[3]) == {
        "orderid": '=HYPERLINK("http://x")',
        "sku": "@SUM(A1)",
        "qty": "ten",
    }
    [(raw,)] = site.query("SELECT raw FROM rejected_rows")
    assert json.loads(raw)["orderid"] == '=HYPERLINK("http://x")'
    for name in ("allocations.csv", "out_of_stock.csv", "rejected.csv", "reallocations.csv"):
        for row in csv_cells(folder / name):
            assert not [cell for cell in row if cell.startswith(FORMULA_START)], (name, row)


# --------------------------------------------------------------------------------------------
# The log: files named, rows counted per file and reason, never one line per row
# --------------------------------------------------------------------------------------------

ROWS_REJECTED = re.compile(r"^(?P<file>\S+): (?P<count>\d+) row\(s\) rejected")


def test_500_bad_rows_give_a_few_log_lines_that_count_them_per_file(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    stock(site)
    rows = [f"neg{i},LAMP,-{i}" for i in range(1, 151)]  # "qty -i must be at least 1"
    rows += [f"word{i},LAMP,n{i}" for i in range(150)]  # "qty 'n<i>' is not a whole number"
    rows += [f"rag{i},LAMP,1,{i}" for i in range(100)]  # ragged
    rows += [f"dup{i},LAMP,1" for i in range(100)]  # good, then conflicting below
    rows += [f"dup{i},LAMP,2" for i in range(100)]  # "order dup<i> ... conflicts with ..."
    site.orders("flood.csv", *rows)
    site.orders("other.csv", "x,LAMP,zero", "y,LAMP,1")
    colours = ["RED", "BLUE", "GREEN", "AMBER", "BLACK", "WHITE", "PINK", "GREY"]
    site.orders("many.csv", *[f"k,{c},1" for c in colours], *[f"k,{c},2" for c in colours])
    put(site, "orders/zz.csv", b"")

    with caplog.at_level(logging.INFO, logger="allocation"):
        site.run(DAY)

    assert counts(summary(site), "orders") == (618, 109, 0, 509)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    checks = [m for m in warnings if m.startswith("Check failed")]  # one line per failed check
    warnings = [m for m in warnings if not m.startswith("Check failed")]
    assert len(checks) <= 2 and len(warnings) <= 12, warnings
    per_file: dict[str, int] = {}
    lines: dict[str, int] = {}
    for message in warnings:
        if match := ROWS_REJECTED.match(message):
            per_file[match["file"]] = per_file.get(match["file"], 0) + int(match["count"])
            lines[match["file"]] = lines.get(match["file"], 0) + 1
    assert per_file == {"orders/flood.csv": 500, "orders/other.csv": 1, "orders/many.csv": 8}
    assert lines == {"orders/flood.csv": 4, "orders/other.csv": 1, "orders/many.csv": 6}
    assert sorted(m.split(" (e.g.")[0] for m in warnings if m.startswith("orders/flood")) == [
        "orders/flood.csv: 100 row(s) rejected: order … sku LAMP with qty … conflicts with the "
        "line received in orders/flood.csv line … with qty …",
        "orders/flood.csv: 100 row(s) rejected: row has … fields, header has …",
        "orders/flood.csv: 150 row(s) rejected: qty '…' is not a whole number",
        "orders/flood.csv: 150 row(s) rejected: qty … must be at least …",
    ]
    assert "orders/other.csv: 1 row(s) rejected: qty 'zero' is not a whole number (line 1)" in (
        warnings
    )
    assert "orders/many.csv: 3 row(s) rejected for 3 other reason(s): see rejected.csv" in (
        warnings
    )
    assert "Rejected file orders/zz.csv: empty file: no header row" in warnings


def test_quantities_that_add_up_past_64_bits_do_not_break_the_night(site: Site) -> None:
    largest = 2**63 - 1
    site.batches("m.csv", f"B1,LAMP,{largest},", f"B2,LAMP,{largest},")
    site.orders("a.csv", "o1,LAMP,1", "o2,DESK,1")

    site.run(DAY)

    assert allocated(site) == [("o1", "LAMP", 1, "B1")]
    assert waiting(site) == [("o2", "DESK", 1)]


# --------------------------------------------------------------------------------------------
# What stops a night: only what a person must fix first
# --------------------------------------------------------------------------------------------


def test_a_missing_inbox_fails_the_run_with_an_inbox_error(tmp_path: Path) -> None:
    site = Site(tmp_path)
    for folder in ("orders", "batches"):
        (site.inbox / folder).rmdir()
    site.inbox.rmdir()

    with pytest.raises(InboxError, match="does not exist"):
        site.run(DAY)

    assert not site.outbox.exists()
    assert not site.warehouse.exists()
    assert not site.params(DAY).state_dir.exists(), "refused before anything was created"


# --------------------------------------------------------------------------------------------
# The key property: bad input changes nothing for the good rows
# --------------------------------------------------------------------------------------------

# The good rows of two nights, by file stem; the clean site gets them as plain CSV files, the
# dirty site in every accepted shape (BOM, CRLF, quotes, JSON Lines, Parquet, extra columns),
# interleaved with every kind of bad row, next to every kind of bad file. File names keep the
# same order in both sites, so the arrival order of the good rows is the same.
GoodRows = dict[str, list[tuple[str, ...]]]

NIGHT_1_BATCHES: GoodRows = {
    "01-stock": [
        ("B-LAMP-1", "LAMP", "10", ""),
        ("B-DESK-1", "DESK", "3", ""),
        ("B-SQL", EVIL_SKU, "2", ""),
    ],
    "02-ships": [
        ("B-LAMP-2", "LAMP", "6", "2026-12-01"),
        ("B-CHAIR", "CHAIR, OAK", "4", "2026-12-03"),
        ("B-UNI", "书架-北京", "2", ""),
        ("+B-FORMULA", "@SUM(A1)", "1", ""),
    ],
}
NIGHT_1_ORDERS: GoodRows = {
    "01-shop": [
        ("s1", "LAMP", "4"),
        ("s2", "DESK", "2"),
        ("s3", "LAMP", "5"),
        ("s4", "CHAIR, OAK", "3"),
        ("=s5", "@SUM(A1)", "1"),
    ],
    "02-web": [("w1", "LAMP", "4"), ("w2", "DESK", "2"), ("w3", EVIL_SKU, "2")],
    "03-app": [("a1", "书架-北京", "1"), ("a2", "LAMP", "2"), ("a3", "SOFA", "1")],
}
NIGHT_2_BATCHES: GoodRows = {"03-more": [("B-DESK-2", "DESK", "5", "2026-12-02")]}
NIGHT_2_ORDERS: GoodRows = {"04-shop": [("s6", "DESK", "1"), ("s7", "LAMP", "3")]}

BATCH_COLUMNS = ("reference", "sku", "qty", "eta")
ORDER_COLUMNS = ("orderid", "sku", "qty")


def csv_text(header: Iterable[str], rows: Iterable[Iterable[str]], newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_clean(site: Site, batches: GoodRows, orders: GoodRows) -> None:
    for stem, rows in batches.items():
        site.write(f"batches/{stem}.csv", csv_text(BATCH_COLUMNS, rows))
    for stem, rows in orders.items():
        site.write(f"orders/{stem}.csv", csv_text(ORDER_COLUMNS, rows))


def interleave(good: list[tuple[str, ...]], bad: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """A bad row before each good row (and the rest of the bad rows after them)."""
    mixed: list[tuple[str, ...]] = []
    for i, row in enumerate(good):
        mixed.extend(bad[i : i + 1])
        mixed.append(row)
    mixed.extend(bad[len(good) :])
    return mixed


def write_bad_files(site: Site, night: int) -> int:
    """Every kind of file-level rejection; returns how many files were written."""
    elsewhere = site.root / f"elsewhere-{night}"
    elsewhere.mkdir()
    (elsewhere / "orders.csv").write_text(ORDERS_THAT_WOULD_MATTER, encoding="utf-8")
    (elsewhere / "batches.csv").write_text("reference,sku,qty,eta\nB-FAKE,SOFA,99,\n", "utf-8")
    bad = {
        "orders/05-empty.csv": b"",
        "orders/05-missing.csv": b"orderid,qty\nthief,999\n",
        "orders/05-png.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "orders/05-latin1.csv": "orderid,sku,qty\nthief,LéMP,9\n".encode("latin-1"),
        "orders/05-broken.parquet": b"PAR1 not really PAR1",
        "orders/05-broken.jsonl": b"thief,LAMP,999\n",
        "orders/05-sheet.xlsx": b"PK\x03\x04",
        "batches/05-empty.csv": b"   \n",
        "batches/05-missing.csv": b"sku,qty\nSOFA,99\n",
        "batches/05-broken.parquet": b"\x00\x01\x02",
        "batches/05-notes.txt": b"B-FAKE,SOFA,99,",
    }
    for relative, content in bad.items():
        put(site, relative, content)
    (site.inbox / "orders" / "06-link.csv").symlink_to(elsewhere / "orders.csv")
    (site.inbox / "batches" / "06-link.csv").symlink_to(elsewhere / "batches.csv")
    return len(bad) + 2


def write_dirty_night_1(site: Site) -> dict[str, int]:
    """Night 1 of the dirty site; returns the bad rows planted, by kind and outcome."""
    stock_rows, ships = NIGHT_1_BATCHES["01-stock"], NIGHT_1_BATCHES["02-ships"]
    bad_batches = [
        ("", "LAMP", "50", ""),
        ("B-X1", "   ", "50", ""),
        ("B-X2", "LAMP", "-1", ""),
        ("B-X3", "LAMP", "fifty", ""),
        ("B-X4", "LAMP", "99999999999999999999", ""),
        ("B-X5", "LAMP", "50", "2026-13-45"),
        ("B-X6", "LAMP", "50", "tomorrow"),
        ("B-X7", "LAMP", "50", "", "surplus"),
        ("B-X8", "LAMP"),
        ("B-LAMP-1", "DESK", "10", ""),  # conflict with line 1 of this file: other sku
    ]
    # 01-stock.csv: BOM, CRLF, an extra column, bad rows in between, a duplicate at the end.
    rows = interleave([(*r, "note") for r in stock_rows], [(*r, "x") for r in bad_batches[:9]])
    rows += [(*bad_batches[9], "x"), (*stock_rows[0], "again")]
    text = csv_text((*BATCH_COLUMNS, "note"), rows, newline="\r\n")
    put(site, "batches/01-stock.csv", b"\xef\xbb\xbf" + text.encode())
    # 02-ships.jsonl: `ref` spelling, an extra key, null eta, lines that are not objects.
    lines = [
        {"ref": r, "sku": s, "qty": int(q), "eta": e or None, "vendor": "Acme"}
        for r, s, q, e in ships
    ]
    mixed: list[object] = []
    for i, obj in enumerate(lines):
        mixed += [["not", "an", "object"], obj] if i % 2 else [obj]
    mixed.append({"ref": "B-LAMP-2", "sku": "LAMP", "qty": 6, "eta": "2026-12-01"})  # duplicate
    put(site, "batches/02-ships.jsonl", jsonl(*mixed))

    shop, web, app = NIGHT_1_ORDERS["01-shop"], NIGHT_1_ORDERS["02-web"], NIGHT_1_ORDERS["03-app"]
    bad_orders = [
        ("x1", "LAMP", "ten"),
        ("x2", "LAMP", "1.5"),
        ("x3", "LAMP", ""),
        ("x4", "LAMP", "0"),
        ("x5", "LAMP", "-4"),
        ("x6", "LAMP", "9223372036854775808"),
        ("", "LAMP", "1"),
        ("  ", "LAMP", "1"),
        ("x7", "", "1"),
        ("x8", " ", "1"),
        ("x9", "LAMP", "1", "surplus"),
        ("x10", "LAMP"),
        ("s1", "LAMP", "40"),  # conflicts with s1 above (same file)
        ("s1", "LAMP", "4"),  # duplicate (same file)
    ]
    # 01-shop.csv: quoted commas, a formula-looking orderid, every bad row kind.
    site.write("orders/01-shop.csv", csv_text(ORDER_COLUMNS, interleave(shop, bad_orders)))
    # 02-web.parquet: an extra column, a row duplicating 01-shop, a bad row.
    web_rows = [*web, ("s2", "DESK", "2"), ("w1", "LAMP", "44"), ("w9", "LAMP", "many")]
    pl.DataFrame(
        {
            "orderid": [r[0] for r in web_rows],
            "sku": [r[1] for r in web_rows],
            "qty": [r[2] for r in web_rows],
            "channel": ["web"] * len(web_rows),
        }
    ).write_parquet(site.inbox / "orders" / "02-web.parquet")
    # 03-app.jsonl: non-ASCII sku, missing keys, a line that is not JSON.
    app_lines: list[object] = [dict(zip(ORDER_COLUMNS, r, strict=True)) for r in app]
    app_lines.insert(1, {"orderid": "j1", "sku": "LAMP"})
    app_lines.insert(2, "just a string")
    put(site, "orders/03-app.jsonl", jsonl(*app_lines) + "{oops\n")
    # 04-empty.csv: header only.
    put(site, "orders/04-empty.csv", b"orderid,sku,qty\r\n")
    write_bad_files(site, 1)
    return {
        "batches_rejected": 10 + 2,
        "batches_duplicate": 2,
        "orders_rejected": 13 + 2 + 3,
        "orders_duplicate": 2,
    }


def write_dirty_night_2(site: Site) -> dict[str, int]:
    more = NIGHT_2_BATCHES["03-more"]
    site.write(
        "batches/03-more.csv",
        csv_text(
            BATCH_COLUMNS,
            [
                *more,
                ("B-LAMP-1", "LAMP", "10", ""),  # duplicate of night 1
                ("B-DESK-1", "CHAIR, OAK", "3", ""),  # conflict with night 1: other sku
                ("B-X9", "DESK", "1", "2026-02-30"),
            ],
        ),
    )
    shop = NIGHT_2_ORDERS["04-shop"]
    rows = [
        ("s1", "LAMP", "4"),  # duplicate of night 1
        shop[0],
        ("s2", "DESK", "20"),  # conflict with night 1
        ("w3", EVIL_SKU, "2"),  # duplicate of night 1
        shop[1],
        ("x11", "LAMP", "1e3"),
    ]
    site.write("orders/04-shop.csv", csv_text(ORDER_COLUMNS, rows))
    write_bad_files(site, 2)
    return {
        "batches_rejected": 2,
        "batches_duplicate": 1,
        "orders_rejected": 2,
        "orders_duplicate": 2,
    }


def report_rows(site: Site, day: str, name: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "run_id"} for row in site.report(day, name)]


def test_a_night_full_of_bad_input_allocates_the_good_rows_exactly_as_a_clean_night(
    tmp_path: Path,
) -> None:
    clean, dirty = Site(tmp_path / "clean"), Site(tmp_path / "dirty")
    nights = [
        (DAY, NIGHT_1_BATCHES, NIGHT_1_ORDERS, write_dirty_night_1, 13),
        (NEXT_DAY, NIGHT_2_BATCHES, NIGHT_2_ORDERS, write_dirty_night_2, 13),
    ]
    for day, batches, orders, write_dirty, bad_files in nights:
        clean.clear_inbox()
        dirty.clear_inbox()
        write_clean(clean, batches, orders)
        planted = write_dirty(dirty)

        clean.run(day)
        dirty.run(day)  # no exception: only input was bad

        for name in ("allocations", "out_of_stock"):
            assert report_rows(dirty, day, name) == report_rows(clean, day, name), (day, name)
        state = "SELECT reference, sku, eta, purchased, allocated FROM batches ORDER BY reference"
        assert dirty.query(state) == clean.query(state)
        good, bad = summary(clean, day), summary(dirty, day)
        assert rejections(clean, day) == []
        assert (good["allocated"], good["out_of_stock"]) == (bad["allocated"], bad["out_of_stock"])
        for kind in ("orders", "batches"):
            received, accepted, duplicate, rejected = counts(bad, kind)
            assert accepted == counts(good, kind)[1]
            assert duplicate == planted[f"{kind}_duplicate"], kind
            assert rejected == planted[f"{kind}_rejected"], kind
            assert received == counts(good, kind)[0] + duplicate + rejected
        assert bad["files"]["rejected"] == bad_files
        assert bad["files"]["received"] == good["files"]["received"] + bad_files + (
            1 if day == DAY else 0  # the header-only orders file
        )
    assert len(dirty.report(DAY, "allocations")) > 5  # the property is not about empty reports
    assert dirty.report(DAY, "out_of_stock")
