"""Two identifiers that print alike are one identifier (issue 23, item 5): every orderid, sku and
reference is stored in NFC, in every input format, and a warehouse from before is normalised
once on upgrade. Real files, real nights."""

from __future__ import annotations

import json
import unicodedata

import polars as pl

from allocation.io.unit_of_work import connect
from allocation.io.warehouse_schema import SCHEMA_VERSION
from allocation.service.state import state_db
from conftest import Site

DAY_1, DAY_2 = "2026-11-25", "2026-11-26"
NFC = "ÉTAGÈRE"
NFD = unicodedata.normalize("NFD", NFC)  # E + U+0301 ...: prints as NFC, other bytes
KELVIN_SIGN = "\u212a"


def placements(site: Site) -> list[tuple[str, str, str | None]]:
    return site.query("SELECT orderid, sku, batchref FROM order_lines ORDER BY orderid")


def test_a_manifest_in_nfd_and_an_order_in_nfc_meet(site: Site) -> None:
    site.batches("m1.csv", f"B-{NFD},{NFD},10,")
    site.orders("o1.csv", f"o1,{NFC},2")

    result = site.run(DAY_1)

    assert placements(site) == [("o1", NFC, f"B-{NFC}")]
    assert result["orders"]["rejected"] == 0
    assert site.query("SELECT reference, sku FROM batches") == [(f"B-{NFC}", NFC)]


def test_the_kelvin_sign_is_the_letter_k(site: Site) -> None:
    site.batches("m1.csv", "B-KELVIN,KELVIN-PROBE,10,")
    site.orders("o1.csv", f"o1,{KELVIN_SIGN}ELVIN-PROBE,2")

    site.run(DAY_1)

    assert placements(site) == [("o1", "KELVIN-PROBE", "B-KELVIN")]


def test_every_format_stores_the_nfc_spelling_and_keeps_what_was_received_in_raw(
    site: Site,
) -> None:
    site.batches("m1.csv", f"B-1,{NFC},10,")
    site.write("orders/o1.jsonl", json.dumps({"orderid": f"o-{NFD}", "sku": NFD, "qty": 1}) + "\n")
    (site.inbox / "orders").mkdir(exist_ok=True)
    pl.DataFrame({"orderid": [f"p-{NFD}"], "sku": [NFD], "qty": [1]}).write_parquet(
        site.inbox / "orders" / "o2.parquet"
    )

    site.run(DAY_1)

    assert placements(site) == [(f"o-{NFC}", NFC, "B-1"), (f"p-{NFC}", NFC, "B-1")]


def test_an_order_repeated_in_the_other_spelling_is_a_duplicate_not_a_second_line(
    site: Site,
) -> None:
    site.batches("m1.csv", f"B-1,{NFC},10,")
    site.orders("o1.csv", f"o1,{NFC},2")
    site.orders("o2.csv", f"o1,{NFD},2")

    result = site.run(DAY_1)

    assert result["orders"]["duplicate"] == 1
    assert placements(site) == [("o1", NFC, "B-1")]


def test_a_fullwidth_sku_is_rejected_naming_the_plain_spelling(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP,LAMP,10,")
    site.orders("o1.csv", "o1,ＬＡＭＰ,2", "o2,LAMP,1")

    result = site.run(DAY_1)

    assert result["orders"]["rejected"] == 1
    [(reason,)] = site.query("SELECT reason FROM rejected_rows")
    assert reason.startswith("sku 'ＬＡＭＰ' holds a compatibility character")
    assert reason.endswith("send it as 'LAMP'")
    assert placements(site) == [("o2", "LAMP", "B-LAMP")]


def test_a_warehouse_from_before_holds_nfd_and_meets_tonight_s_nfc(site: Site) -> None:
    """Nights before the door normalised stored identifiers as received: the upgrade
    normalises them once, so tonight's NFC repeat of an old line is a duplicate and tonight's
    NFC order finds the old NFD batch."""
    site.batches("m1.csv", f"B-{NFC},{NFC},10,")
    site.orders("o1.csv", f"o1-{NFC},{NFC},2")
    site.run(DAY_1)
    con = connect(state_db(site.params(DAY_1)))
    try:  # back to what a pipeline before version 10 stored from NFD files
        for table, columns in {
            "batches": ["reference", "sku"],
            "order_lines": ["orderid", "sku", "batchref"],
            "allocations": ["orderid", "sku", "batchref"],
            "manifest_rows": ["reference", "sku"],
        }.items():
            sets = ", ".join(f"{c} = replace({c}, ?, ?)" for c in columns)
            con.execute(f"UPDATE {table} SET {sets}", [NFC, NFD] * len(columns))  # noqa: S608
        con.execute("DELETE FROM schema_version WHERE version >= 10")  # before identifiers in NFC
        con.execute("CHECKPOINT")
    finally:
        con.close()
    site.clear_inbox()
    site.orders("o1.csv", f"o1-{NFC},{NFC},2", f"o2,{NFC},3")

    result = site.run(DAY_2)

    assert result["orders"]["duplicate"] == 1
    assert placements(site) == [(f"o1-{NFC}", NFC, f"B-{NFC}"), ("o2", NFC, f"B-{NFC}")]
    assert site.query("SELECT available FROM batches") == [(5,)]
    assert site.query("SELECT DISTINCT sku FROM allocations") == [(NFC,)]
    assert site.query("SELECT max(version) FROM schema_version") == [(SCHEMA_VERSION,)]


def test_the_upgrade_leaves_both_spellings_of_a_batch_it_cannot_merge(site: Site) -> None:
    site.batches("m1.csv", "B-1,LAMP,10,", "B-2,LAMP,5,")
    site.run(DAY_1)
    con = connect(state_db(site.params(DAY_1)))
    try:  # two batches whose references print alike, both received before the upgrade
        con.execute("UPDATE batches SET reference = ? WHERE reference = 'B-1'", [f"B-{NFC}"])
        con.execute("UPDATE batches SET reference = ? WHERE reference = 'B-2'", [f"B-{NFD}"])
        con.execute("DELETE FROM schema_version WHERE version >= 10")  # before identifiers in NFC
        con.execute("CHECKPOINT")
    finally:
        con.close()
    site.clear_inbox()

    site.run(DAY_2)

    # Merging them would change what was bought: both stay, the log names the one left.
    assert sorted(site.query("SELECT reference, purchased FROM batches")) == sorted(
        [(f"B-{NFC}", 10), (f"B-{NFD}", 5)]
    )
