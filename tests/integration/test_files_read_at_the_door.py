"""Issue 23 (items 1, 2, 4) and issue 24 (item 4): how a file is read at the door.

A file changed while the night reads it, a file still being written (a cut last line), a renamed
optional column, and a file read in slices: each through whole nights on real files and a real
warehouse, checked where a person would look (``rejected.csv``, ``summary.json``, the warehouse).
The supplier's moves are real file writes made at the moment the night is between two steps:
``readers.list_inbox`` (the night's listing and hashing of the inbox) and the read stream
are wrapped to make them then.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from allocation.io import readers
from allocation.io.readers import source
from allocation.io.readers.source import CUT_LAST_LINE
from conftest import Site

DAY = "2026-11-25"
NEXT_DAY = "2026-11-26"


def summary(site: Site, day: str = DAY) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((site.outbox / day / "summary.json").read_text("utf-8"))
    for kind in ("orders", "batches"):
        c = result[kind]
        assert c["received"] == c["accepted"] + c["duplicate"] + c["rejected"], (kind, c)
    return result


def rejected(site: Site, day: str = DAY) -> list[tuple[str, int | None, str]]:
    return [
        (r["source_file"], r["line"], r["reason"])
        for r in pl.read_csv(site.outbox / day / "rejected.csv", infer_schema=False)
        .with_columns(pl.col("line").cast(pl.Int64))
        .to_dicts()
    ]


def batches(site: Site) -> dict[str, tuple[int, Any]]:
    return {r: (q, e) for r, q, e in site.query("SELECT reference, purchased, eta FROM batches")}


def after_listing(monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """``change()`` runs once the night has listed and hashed the inbox, before it reads a file
    (an upload by ``cp`` or FTP that starts then)."""
    listed = readers.list_inbox

    def listing_then_change(inbox: Path, settle_seconds: float) -> Any:
        found = listed(inbox, settle_seconds)
        change()
        return found

    monkeypatch.setattr(readers, "list_inbox", listing_then_change)


def while_reading(
    monkeypatch: pytest.MonkeyPatch, name: str, change: Callable[[Path], None]
) -> None:
    """``change(path)`` runs after the night has read the first slice of the file ``name``."""
    stream_file = readers.stream_inbox_file

    class ChangedWhileRead:
        def __init__(self, stream: readers.FileStream) -> None:
            self.stream = stream

        def __iter__(self) -> Iterator[readers.FileSlice]:
            for number, part in enumerate(self.stream):
                if number == 0:
                    change(self.stream.file.path)
                yield part

        def __getattr__(self, attribute: str) -> Any:
            return getattr(self.stream, attribute)

    def stream(file: readers.InboxFile) -> Any:
        found = stream_file(file)
        return ChangedWhileRead(found) if file.path.name == name else found

    monkeypatch.setattr(readers, "stream_inbox_file", stream)
    monkeypatch.setattr(source, "CHUNK_BYTES", 32)  # a slice of a line or two


# -- item 1: a file changed while the night reads it -------------------------------------------


def test_a_manifest_rewritten_in_place_during_the_load_loses_no_batch(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's night: the manifest is hashed whole, then read while a ``cp`` rewrites it (one
    row in the file so far); the next night it is complete again. Recording the whole file's
    checksum against the half read made the next night take every row as received: B2 was
    never created and its order waited for ever."""
    manifest = site.batches("m1.csv", "B1,LAMP,10,", "B2,CLOCK,5,")
    complete = manifest.read_bytes()
    site.orders("o1.csv", "o1,CLOCK,2")
    after_listing(monkeypatch, lambda: manifest.write_bytes(complete[: complete.index(b"B2")]))

    site.run(DAY)
    monkeypatch.undo()
    manifest.write_bytes(complete)  # the copy finished
    site.run(NEXT_DAY)

    assert batches(site) == {"B1": (10, None), "B2": (5, None)}
    assert site.query("SELECT orderid, batchref FROM order_lines") == [("o1", "B2")]
    recorded = site.query(
        "SELECT sha256, rows FROM ingested_files WHERE file_name = 'batches/m1.csv'"
    )
    half = hashlib.sha256(complete[: complete.index(b"B2")]).hexdigest()
    assert (half, 1) in recorded, "the checksum recorded is the one of the bytes read"


def test_a_file_appended_to_while_it_is_read_is_not_loaded_and_is_read_again(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    orders = site.orders("o1.csv", "o1,LAMP,1", "o2,LAMP,2", "o3,LAMP,3")
    site.batches("m1.csv", "B1,LAMP,100,")
    while_reading(
        monkeypatch, "o1.csv", lambda path: path.write_bytes(path.read_bytes() + b"o4,LAMP,4\n")
    )

    site.run(DAY)

    night = summary(site)
    assert night["orders"]["received"] == 0
    [(name, line, reason)] = rejected(site)
    assert (name, line) == ("orders/o1.csv", None)
    assert reason.startswith("the file changed while it was read (its size went from")
    assert "the next run reads it again" in reason
    assert site.query("SELECT count(*) FROM order_lines") == [(0,)]
    assert site.query(
        "SELECT sha256, status FROM ingested_files WHERE file_name = 'orders/o1.csv'"
    ) == [("", "rejected")]

    monkeypatch.undo()
    site.run(DAY)  # a rerun of the date reads it: it was not recorded as received
    assert sorted(site.query("SELECT orderid FROM order_lines")) == [
        ("o1",),
        ("o2",),
        ("o3",),
        ("o4",),
    ]
    assert orders.exists()


def test_a_file_replaced_by_another_of_the_same_size_while_read_is_not_loaded(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.orders("o1.csv", "o1,LAMP,1", "o2,LAMP,2")
    site.batches("m1.csv", "B1,LAMP,100,")

    def replace(path: Path) -> None:
        other = path.with_name(".upload.tmp")
        other.write_bytes(path.read_bytes().replace(b"o2,LAMP,2", b"o9,LAMP,9"))
        other.replace(path)  # a rename over it: same size, another file

    while_reading(monkeypatch, "o1.csv", replace)
    site.run(DAY)

    [(_, line, reason)] = rejected(site)
    assert line is None
    assert reason.startswith("the file changed while it was read (it was replaced by another file)")
    assert site.query("SELECT count(*) FROM order_lines") == [(0,)]


def test_a_file_truncated_while_read_is_not_loaded(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.orders("o1.csv", "o1,LAMP,1", "o2,LAMP,2", "o3,LAMP,3")
    while_reading(monkeypatch, "o1.csv", lambda path: path.write_bytes(b""))

    site.run(DAY)

    [(_, line, reason)] = rejected(site)
    assert line is None and "its size went from" in reason
    assert summary(site)["orders"]["received"] == 0


# -- item 2: a cut last line is a rejection, never a value ------------------------------------


def test_an_order_file_cut_while_written_rejects_its_last_line_and_the_complete_file_fixes_it(
    site: Site,
) -> None:
    site.batches("m1.csv", "B1,LAMP,100,")
    site.write("orders/o1.csv", "orderid,sku,qty\no1,LAMP,20\no2,LAMP,2")  # was o2,LAMP,20

    site.run(DAY)

    assert rejected(site) == [("orders/o1.csv", 2, CUT_LAST_LINE)]
    assert site.query("SELECT orderid, qty FROM order_lines") == [("o1", 20)]
    assert summary(site)["orders"] == {"received": 2, "accepted": 1, "duplicate": 0, "rejected": 1}

    site.orders("o1.csv", "o1,LAMP,20", "o2,LAMP,20")  # sent again, complete
    site.run(NEXT_DAY)

    assert sorted(site.query("SELECT orderid, qty FROM order_lines")) == [("o1", 20), ("o2", 20)]
    assert summary(site, NEXT_DAY)["orders"] == {
        "received": 2,
        "accepted": 1,
        "duplicate": 1,
        "rejected": 0,
    }


def test_a_manifest_cut_after_its_eta_comma_does_not_put_a_batch_in_stock(site: Site) -> None:
    site.write("batches/m1.csv", "reference,sku,qty,eta\nB1,LAMP,10,\nB3,LAMP,50,")
    site.orders("o1.csv", "o1,LAMP,40")

    site.run(DAY)

    assert batches(site) == {"B1": (10, None)}
    assert rejected(site) == [("batches/m1.csv", 2, CUT_LAST_LINE)]
    assert site.query("SELECT batchref FROM order_lines") == [(None,)]

    site.batches("m1.csv", "B1,LAMP,10,", "B3,LAMP,50,2026-11-20")  # complete
    site.run(NEXT_DAY)

    assert batches(site) == {"B1": (10, None), "B3": (50, dt.date(2026, 11, 20))}
    assert {
        k: summary(site, NEXT_DAY)["batches"][k]
        for k in ("received", "accepted", "duplicate", "rejected")
    } == {
        "received": 2,
        "accepted": 1,
        "duplicate": 1,
        "rejected": 0,
    }


def test_a_file_cut_inside_a_character_rejects_its_last_line_not_the_whole_file(
    site: Site,
) -> None:
    """A cut can fall inside a UTF-8 character: that is a cut last line, not a file in another
    encoding (which is rejected whole, and told to re-export)."""
    whole = "orderid,sku,qty\no1,ÉTAGÈRE,2\no2,ÉTAGÈRE,2\n".encode()
    (site.inbox / "orders" / "o1.csv").write_bytes(whole[: whole.rindex("È".encode()) + 1])

    site.run(DAY)

    assert site.query("SELECT orderid, sku FROM order_lines") == [("o1", "ÉTAGÈRE")]
    [(name, line, reason)] = rejected(site)
    assert (name, line) == ("orders/o1.csv", 2)
    assert reason.startswith(CUT_LAST_LINE)


def test_a_cut_last_line_of_a_quoted_csv_is_rejected_too(site: Site) -> None:
    site.write("orders/o1.csv", 'orderid,sku,qty\n"o1","LAMP",2\n"o2","LAMP",2')

    site.run(DAY)

    assert rejected(site) == [("orders/o1.csv", 2, CUT_LAST_LINE)]


def test_json_lines_keep_a_complete_last_object_and_reject_a_cut_one(site: Site) -> None:
    site.write(
        "orders/complete.jsonl",
        '{"orderid":"o1","sku":"LAMP","qty":2}\n{"orderid":"o2","sku":"LAMP","qty":2}',
    )
    site.write(
        "orders/cut.jsonl",
        '{"orderid":"o3","sku":"LAMP","qty":2}\n{"orderid":"o4","sku":"LAMP","qty":2',
    )

    site.run(DAY)

    assert sorted(site.query("SELECT orderid FROM order_lines")) == [("o1",), ("o2",), ("o3",)]
    [(name, line, reason)] = rejected(site)
    assert (name, line) == ("orders/cut.jsonl", 2)
    assert reason.startswith(CUT_LAST_LINE + "; not a JSON object")


def test_a_cut_parquet_file_is_rejected_whole_saying_it_may_have_been_cut(site: Site) -> None:
    whole = site.inbox / "batches" / "m1.parquet"
    pl.DataFrame({"reference": ["B1"], "sku": ["LAMP"], "qty": [10]}).write_parquet(whole)
    whole.write_bytes(whole.read_bytes()[:-7])

    site.run(DAY)

    [(name, line, reason)] = rejected(site)
    assert (name, line) == ("batches/m1.parquet", None)
    assert "may have been cut while it was being written" in reason


# -- item 4: a renamed optional column -----------------------------------------------------------


def test_a_renamed_eta_column_rejects_the_manifest_instead_of_putting_stock_in_hand(
    site: Site,
) -> None:
    site.batches("m1.csv", "B1,LAMP,10,2026-12-01", header="reference,sku,qty,ETA Date")
    site.orders("o1.csv", "o1,LAMP,1")

    site.run(DAY)

    assert batches(site) == {}
    [(name, line, reason)] = rejected(site)
    assert (name, line) == ("batches/m1.csv", None)
    assert reason.startswith(
        "column 'ETA Date' looks like the optional column eta under another name"
    )
    assert summary(site)["files"]["rejected_files"] == [
        {"file": "batches/m1.csv", "reason": reason}
    ]


@pytest.mark.parametrize("header", ["reference,sku,qty,ETA", "reference,sku,qty, Eta "])
def test_an_eta_column_spelled_in_another_case_is_the_eta(site: Site, header: str) -> None:
    site.batches("m1.csv", "B1,LAMP,10,2026-12-01", header=header)

    site.run(DAY)

    assert batches(site) == {"B1": (10, dt.date(2026, 12, 1))}


def test_a_json_lines_row_with_a_renamed_eta_key_is_rejected(site: Site) -> None:
    site.write(
        "batches/m1.jsonl",
        '{"reference":"B1","sku":"LAMP","qty":10,"eta_date":"2026-12-01"}\n'
        '{"reference":"B2","sku":"LAMP","qty":10}\n',
    )

    site.run(DAY)

    assert batches(site) == {"B2": (10, None)}
    [(_, line, reason)] = rejected(site)
    assert line == 1 and "looks like the optional column eta" in reason


# -- issue 24 item 4: a file read in slices ------------------------------------------------------


def test_a_file_read_in_many_slices_gives_every_row_its_line_across_slices(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [f"o{i},LAMP,1" for i in range(1, 41)]
    rows[4] = "o5,LAMP"  # ragged, in an early slice
    rows[17] = 'o18,"LAMP\nGREEN",1'  # a quoted line break: the csv module from here (and no sku)
    rows[30] = "o31,LAMP,zero"  # fails validation, in a late slice
    site.orders("o1.csv", *rows)
    site.batches("m1.csv", "B1,LAMP,100,")
    monkeypatch.setattr(source, "CHUNK_BYTES", 40)

    site.run(DAY)

    assert [(line, reason.split(":")[0]) for _, line, reason in rejected(site)] == [
        (5, "row has 2 fields, header has 3"),
        (18, "sku 'LAMP<?>GREEN' holds an invisible or control character (shown as <?>)"),
        (31, "qty 'zero' is not a whole number"),
    ]
    lines = dict(site.query("SELECT orderid, source_line FROM order_lines"))
    assert len(lines) == 37
    assert lines["o40"] == 40 and lines["o19"] == 19 and lines["o6"] == 6
    assert summary(site)["orders"] == {
        "received": 40,
        "accepted": 37,
        "duplicate": 0,
        "rejected": 3,
    }


def test_a_file_rejected_whole_late_in_its_read_stages_none_of_its_earlier_slices(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = "orderid,sku,qty\n" + "".join(f"o{i},LAMP,1\n" for i in range(1, 30))
    site.write("orders/o1.csv", "")
    (site.inbox / "orders" / "o1.csv").write_bytes(content.encode() + b"o99,LAMP,\xff\n")
    site.orders("o2.csv", "p1,LAMP,1")
    monkeypatch.setattr(source, "CHUNK_BYTES", 40)

    site.run(DAY)

    assert site.query("SELECT orderid FROM order_lines") == [("p1",)]
    [(name, line, reason)] = rejected(site)
    assert (name, line) == ("orders/o1.csv", None)
    assert reason.startswith(f"not valid UTF-8 at byte offset {len(content) + 9}")
    assert summary(site)["orders"] == {"received": 1, "accepted": 1, "duplicate": 0, "rejected": 0}


def test_a_line_longer_than_the_limit_rejects_the_file_without_holding_it(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(source, "READ_BLOCK", 100)
    site.write("orders/o1.csv", "orderid,sku,qty\no1,LAMP,1\no2," + "L" * 5000 + ",1\n")

    site.run(DAY)

    [(_, line, reason)] = rejected(site)
    assert line is None
    assert reason.startswith("a line starting at byte 26 is over 1,000 bytes long")


def test_a_parquet_file_read_in_slices_turns_a_column_into_text_alike_in_every_slice(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from allocation.io.readers import parquet

    path = site.inbox / "batches" / "m1.parquet"
    pl.DataFrame(
        {
            "reference": ["B1", "B2", "B3"],
            "sku": ["LAMP"] * 3,
            "qty": [1, 2, 3],
            "eta": [
                dt.datetime(2026, 12, 1),
                dt.datetime(2026, 12, 2),
                dt.datetime(2026, 12, 3, 9),
            ],
        }
    ).write_parquet(path, row_group_size=1)
    monkeypatch.setattr(parquet, "SLICE_ROWS", 1)
    file = next(f for f in readers.find_inbox_files(site.inbox)[0])

    read = readers.read_inbox_file(file)

    assert read.rows["line"].to_list() == [1, 2, 3]
    assert read.rows["eta"].to_list() == [
        "2026-12-01 00:00:00.000000",
        "2026-12-02 00:00:00.000000",
        "2026-12-03 09:00:00.000000",
    ]


def test_a_parquet_file_written_as_one_row_group_is_read_a_buffer_at_a_time(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daily export written as one row group (pandas with an older pyarrow: 64Mi rows a group)
    is read a buffer at a time (or a page, when one is larger), never a whole column of the
    row group at once: pyarrow's pre-buffering did (13.6 MB here; 53 MiB at once for 30M lines,
    which then took 472 MiB to read against 389 MiB a buffer at a time)."""
    from allocation.io.readers import parquet

    lines = 200_000
    path = site.inbox / "orders" / "o1.parquet"
    pl.DataFrame(
        {
            "orderid": [hashlib.sha256(str(n).encode()).hexdigest() for n in range(lines)],
            "sku": ["RETRO-CLOCK"] * lines,
            "qty": [1] * lines,
        }
    ).write_parquet(path, row_group_size=lines, compression="uncompressed")
    reads: list[int] = []
    real = source.FileSource.file_object

    class Recorded:
        """The open file, noting the size of every read pyarrow asks of it."""

        def __init__(self, handle: Any) -> None:
            self._handle = handle

        def read(self, size: int = -1) -> bytes:
            data: bytes = self._handle.read(size)
            reads.append(len(data))
            return data

        def __getattr__(self, name: str) -> Any:
            return getattr(self._handle, name)

    monkeypatch.setattr(
        source.FileSource, "file_object", property(lambda self: Recorded(real.fget(self)))
    )
    file = next(f for f in readers.find_inbox_files(site.inbox)[0])

    read = readers.read_inbox_file(file)

    assert read.rows.height == lines
    assert path.stat().st_size > 4 * parquet.READ_BUFFER_BYTES, "a column chunk spans buffers"
    assert max(reads) <= 2 * parquet.READ_BUFFER_BYTES  # a buffer, or a page a little larger
