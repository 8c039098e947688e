"""Every entry of the inbox is read or reported: misnamed folders, stray files, hidden files,
uploads still being written (issue 23, items 2 and 10). Real files, real nights."""

from __future__ import annotations

import csv
import logging
import os
import time
from pathlib import Path

import pytest

from allocation.io.readers import find_inbox_files, list_inbox
from allocation.service.loading import INBOX_COUNTS
from conftest import Site

DAY = "2026-11-26"
ORDERS = "orderid,sku,qty\n"
BATCHES = "reference,sku,qty,eta\n"


def rejected_csv(site: Site, day: str = DAY) -> list[dict[str, str]]:
    with (site.outbox / day / "rejected.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def age(path: Path, seconds: float) -> None:
    """Makes `path` look last written `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


# ---------------------------------------------------------------- misnamed and stray entries


def test_misnamed_folders_and_stray_files_are_each_named_with_where_they_belong(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site.batches("m1.csv", "B-LAMP,LAMP,10,")
    site.write("Orders/o1.csv", ORDERS + "o1,LAMP,2\n")
    site.write("Batches/m2.csv", BATCHES + "B-CHAIR,CHAIR,5,\n")
    site.write("orders.csv", ORDERS + "o2,LAMP,1\n")
    site.write("orders/.late.csv", ORDERS + "o3,LAMP,1\n")
    site.write("archive/old.csv", ORDERS)
    site.write("notes.txt", "call the supplier")

    with caplog.at_level(logging.WARNING, logger="allocation"):
        result = site.run(DAY)

    reported = {row["source_file"]: row for row in rejected_csv(site)}
    assert set(reported) == {
        "Orders/",
        "Batches/",
        "orders.csv",
        "orders/.late.csv",
        "archive/",
        "notes.txt",
    }
    assert "rename it to orders/" in reported["Orders/"]["reason"]
    assert "rename it to batches/" in reported["Batches/"]["reason"]
    assert reported["orders.csv"]["reason"].endswith("move it into orders/")
    assert "hidden" in reported["orders/.late.csv"]["reason"]
    assert {row["kind"] for name, row in reported.items() if "/" not in name[:-1]} == {"file"}
    assert reported["orders/.late.csv"]["kind"] == "orders"
    assert all(row["line"] == "" for row in reported.values())
    for name in reported:
        assert any(name in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    # Nothing of them was read: the one order file is missing, and the night says so loudly.
    assert result["orders"]["received"] == 0
    assert result["files"]["ignored"] == 6
    assert {entry["file"] for entry in result["files"]["not_read"]} == set(reported)
    assert any("no order file was read" in warning for warning in result["warnings"])
    assert any("No order file tonight" in r.getMessage() for r in caplog.records)


def test_a_folder_named_in_another_case_is_refused_on_every_file_system(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "ORDERS").mkdir(parents=True)
    (inbox / "ORDERS" / "o1.csv").write_text(ORDERS + "o1,LAMP,1\n")

    listing = list_inbox(inbox)

    # Looked up by its exact name in the folder's listing, never by opening inbox/orders, which
    # a case-insensitive file system (macOS, Windows shares) would resolve to ORDERS/.
    assert listing.files == []
    [entry] = listing.not_read
    assert (entry.source_file, entry.status) == ("ORDERS/", "ignored")


def test_a_rerun_of_the_date_reports_an_ignored_entry_once(site: Site) -> None:
    site.orders("o1.csv", "o1,LAMP,1")
    site.write("orders.csv", ORDERS + "o2,LAMP,1\n")

    site.run(DAY)
    again = site.run(DAY)

    assert [row["source_file"] for row in rejected_csv(site)] == ["orders.csv"]
    assert again["files"]["ignored"] == 1


def test_the_night_exposes_how_many_entries_it_saw_read_and_left(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP,LAMP,10,")
    site.orders("o1.csv", "o1,LAMP,1")
    site.orders("o2.csv.part", "o2,LAMP,1")
    site.orders("o3.xlsx", "binary")
    site.write("stray.csv", ORDERS)
    params = site.params(DAY)

    from allocation.service.night import NightRun, NightSteps

    night, steps = NightRun.start(params), NightSteps.plain()
    inbox = steps.load(params, night.run_id, steps.already_ingested(params))
    outcome = steps.allocate(params, inbox, night.run_id, night.started)

    counts = {name: outcome.counts[name] for name in INBOX_COUNTS}
    assert counts == {
        "files_seen": 5,
        "files_read": 2,
        "files_waiting": 1,
        "files_ignored": 1,
        "order_files_read": 1,
        "batch_files_read": 1,
    }
    assert outcome.counts["files_rejected"] == 1  # o3.xlsx: in orders/, not a type it reads


def test_a_night_without_any_order_file_says_so_in_the_summary(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP,LAMP,10,")

    result = site.run(DAY)

    assert result["files"]["order_files_read"] == 0
    assert result["warnings"][0].startswith("no order file was read for this date")


def test_a_night_with_an_order_file_has_no_warning(site: Site) -> None:
    site.orders("o1.csv", "o1,LAMP,1")

    assert site.run(DAY)["warnings"] == []


# ----------------------------------------------------------- files still being written


@pytest.mark.parametrize("name", ["o1.csv.part", "o1.csv.PARTIAL", "o1.csv.tmp", "o1.csv.filepart"])
def test_a_file_under_an_upload_s_temporary_name_waits_for_its_final_name(
    site: Site, name: str
) -> None:
    site.orders(name, "o1,LAMP,2")

    first = site.run(DAY)
    (site.inbox / "orders" / name).rename(site.inbox / "orders" / "o1.csv")
    second = site.run("2026-11-27")

    assert first["orders"]["received"] == 0
    [entry] = first["files"]["not_read"]
    assert entry["status"] == "waiting"
    assert "orders/o1.csv" in entry["reason"]
    assert second["orders"]["received"] == 1


def test_an_upload_renamed_and_read_by_a_rerun_of_the_date_is_no_longer_said_to_wait(
    site: Site,
) -> None:
    """The date's summary adds up its runs: once a rerun read `o1.csv`, the `o1.csv.part` the
    first run left waiting is that same delivery, read; saying "still being written" about it
    sent the operator looking for a file that had arrived."""
    site.orders("o1.csv.part", "o1,LAMP,2")
    site.run(DAY)
    (site.inbox / "orders" / "o1.csv.part").rename(site.inbox / "orders" / "o1.csv")

    again = site.run(DAY)

    assert again["orders"]["received"] == 1
    assert again["files"]["waiting"] == 0
    assert again["files"]["not_read"] == []
    assert again["warnings"] == []
    assert rejected_csv(site) == []


def test_a_file_changed_within_the_settle_time_is_left_for_the_next_run(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ALLOCATION_INBOX_SETTLE_SECONDS", "300")
    site.batches("m1.csv", "B-LAMP,LAMP,10,")
    age(site.inbox / "batches" / "m1.csv", 3600)
    site.orders("o1.csv", "o1,LAMP,2")  # an upload writing in place, e.g. cp or FTP: now
    (site.inbox / "orders" / "o1.csv").write_text(ORDERS + "o1,LAMP,2\no2,LAMP,2")  # cut line

    with caplog.at_level(logging.WARNING, logger="allocation"):
        first = site.run(DAY)

    assert first["batches"]["received"] == 1
    assert first["orders"]["received"] == 0
    [entry] = first["files"]["not_read"]
    assert (entry["file"], entry["status"]) == ("orders/o1.csv", "waiting")
    assert "ALLOCATION_INBOX_SETTLE_SECONDS" in entry["reason"]
    assert any("Left for a later run: orders/o1.csv" in r.getMessage() for r in caplog.records)
    # Never recorded as read: once complete and quiet, the same date's next run reads it whole.
    (site.inbox / "orders" / "o1.csv").write_text(ORDERS + "o1,LAMP,2\no2,LAMP,20\n")
    age(site.inbox / "orders" / "o1.csv", 600)
    second = site.run(DAY)
    assert second["orders"]["received"] == 2
    assert second["files"]["not_read"] == []
    assert site.query("SELECT orderid, qty FROM order_lines ORDER BY 1") == [
        ("o1", 2),
        ("o2", 20),
    ]


def test_the_settle_time_reads_a_quiet_file_and_a_file_dated_far_in_the_future(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "orders").mkdir(parents=True)
    for name, seconds_ago in [("old.csv", 301), ("fresh.csv", 10), ("future.csv", -86_400)]:
        (inbox / "orders" / name).write_text(ORDERS)
        age(inbox / "orders" / name, seconds_ago)

    files, rejections = find_inbox_files(inbox, settle_seconds=300)

    # A clock a day ahead is not a write in progress: waiting for it would wait for ever.
    assert [f.source_file for f in files] == ["orders/future.csv", "orders/old.csv"]
    assert rejections["source_file"].to_list() == ["orders/fresh.csv"]


def test_a_file_that_grows_while_it_is_hashed_is_left_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "orders").mkdir(parents=True)
    path = inbox / "orders" / "o1.csv"
    path.write_text(ORDERS + "o1,LAMP,2\n")
    import hashlib

    from allocation.io.readers import discovery

    real = hashlib.file_digest

    def appending_digest(handle, digest):  # type: ignore[no-untyped-def]
        with path.open("a") as writer:  # the uploader writes on while the night hashes
            writer.write("o2,LAMP,2")
        return real(handle, digest)

    monkeypatch.setattr(discovery.hashlib, "file_digest", appending_digest)

    listing = list_inbox(inbox)

    assert listing.files == []
    [entry] = listing.not_read
    assert entry.status == "waiting"
    assert "changed while the night read it" in entry.reason


def test_a_backup_copy_is_reported_not_read(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "orders").mkdir(parents=True)
    (inbox / "orders" / "o1.csv~").write_text(ORDERS + "o1,LAMP,1\n")

    [entry] = list_inbox(inbox).not_read

    assert (entry.source_file, entry.status) == ("orders/o1.csv~", "ignored")
    assert "backup" in entry.reason


def test_a_folder_with_an_upload_s_temporary_name_is_a_folder_not_a_waiting_file(
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "orders" / "o1.csv.part").mkdir(parents=True)

    [entry] = list_inbox(inbox).not_read

    assert (entry.status, entry.reason) == (
        "rejected",
        "is a directory; only files directly inside orders/ are read",
    )
