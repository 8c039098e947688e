"""Every step that rejects something builds its frame with ``allocation.io.rejections.build``.

The frames of discovery, the readers, validation and ingestion are concatenated into one
``rejected_rows`` table and one rejected report: built in one place, their columns, order and
dtypes cannot drift apart. Each case below runs one producer with ``build`` swapped for a
recording one and checks that the frame it hands on is the very frame ``build`` made.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from allocation.io import ingest, readers, rejections
from allocation.io.readers.discovery import InboxFile
from allocation.io.schemas import REJECTION_SCHEMA
from allocation.io.validation import validate_batches, validate_orders

Producer = Callable[[Path], pl.DataFrame]


def inbox_with(tmp_path: Path, files: dict[str, bytes]) -> Path:
    inbox = tmp_path / "inbox"
    for kind in ("orders", "batches"):
        (inbox / kind).mkdir(parents=True)
    for name, content in files.items():
        (inbox / name).write_bytes(content)
    return inbox


def only_file(tmp_path: Path, name: str, content: bytes) -> InboxFile:
    files, rejected = readers.find_inbox_files(inbox_with(tmp_path, {name: content}))
    assert rejected.height == 0, rejected
    [file] = files
    return file


def parquet_bytes(tmp_path: Path) -> bytes:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "made.parquet"
    pl.DataFrame({"orderid": ["o1"], "sku": ["RETRO-CLOCK"], "qty": ["2"]}).write_parquet(path)
    return path.read_bytes()


def order_rows(*qty: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source_file": ["orders/a.csv"] * len(qty),
            "line": list(range(1, len(qty) + 1)),
            "orderid": [f"o{i}" for i in range(len(qty))],
            "sku": ["RETRO-CLOCK"] * len(qty),
            "qty": list(qty),
            "raw": [None] * len(qty),
        },
        schema={
            "source_file": pl.String,
            "line": pl.Int64,
            "orderid": pl.String,
            "sku": pl.String,
            "qty": pl.String,
            "raw": pl.String,
        },
    )


def discovery_rejecting_a_file(tmp_path: Path) -> pl.DataFrame:
    inbox = inbox_with(tmp_path, {"orders/notes.txt": b"hello"})
    return readers.find_inbox_files(inbox)[1]


def discovery_rejecting_nothing(tmp_path: Path) -> pl.DataFrame:
    inbox = inbox_with(tmp_path, {"orders/a.csv": b"orderid,sku,qty\no1,RETRO-CLOCK,2\n"})
    return readers.find_inbox_files(inbox)[1]


def plain_csv(tmp_path: Path) -> pl.DataFrame:
    file = only_file(tmp_path, "orders/a.csv", b"orderid,sku,qty\no1,RETRO-CLOCK,2\n")
    return readers.read_inbox_file(file).rejected


def csv_with_a_ragged_row(tmp_path: Path) -> pl.DataFrame:
    content = b'orderid,sku,qty\n"o1",RETRO-CLOCK,2\no2,RETRO-CLOCK\n'
    return readers.read_inbox_file(only_file(tmp_path, "orders/a.csv", content)).rejected


def empty_csv_file(tmp_path: Path) -> pl.DataFrame:
    return readers.read_inbox_file(only_file(tmp_path, "orders/a.csv", b"")).rejected


def jsonl_with_a_bad_line(tmp_path: Path) -> pl.DataFrame:
    content = b'{"orderid":"o1","sku":"RETRO-CLOCK","qty":"2"}\n{not json\n'
    return readers.read_inbox_file(only_file(tmp_path, "orders/a.jsonl", content)).rejected


def good_parquet(tmp_path: Path) -> pl.DataFrame:
    file = only_file(tmp_path, "orders/a.parquet", parquet_bytes(tmp_path))
    return readers.read_inbox_file(file).rejected


def corrupt_parquet(tmp_path: Path) -> pl.DataFrame:
    file = only_file(tmp_path, "orders/a.parquet", b"PAR1 not really parquet PAR1")
    return readers.read_inbox_file(file).rejected


def validation_rejecting_a_row(tmp_path: Path) -> pl.DataFrame:
    return validate_orders(order_rows("2", "0")).rejected


def validation_rejecting_nothing(tmp_path: Path) -> pl.DataFrame:
    return validate_orders(order_rows("2")).rejected


def batch_validation_rejecting_a_row(tmp_path: Path) -> pl.DataFrame:
    rows = pl.DataFrame(
        {
            "source_file": ["batches/a.csv"],
            "line": [1],
            "reference": ["b1"],
            "sku": ["RETRO-CLOCK"],
            "qty": ["-1"],
            "eta": ["soon"],
            "raw": [None],
        },
        schema_overrides={"raw": pl.String},
    )
    return validate_batches(rows).rejected


def ingestion_rejecting_a_conflict(tmp_path: Path) -> pl.DataFrame:
    valid = validate_orders(order_rows("2")).valid
    return ingest._rejections("orders", valid, pl.lit("conflicts with an earlier line"))


PRODUCERS: dict[str, Producer] = {
    "discovery, a file rejected": discovery_rejecting_a_file,
    "discovery, nothing rejected": discovery_rejecting_nothing,
    "CSV fast path": plain_csv,
    "CSV general path, a ragged row": csv_with_a_ragged_row,
    "an empty file": empty_csv_file,
    "JSON Lines, a bad line": jsonl_with_a_bad_line,
    "Parquet": good_parquet,
    "Parquet, unreadable": corrupt_parquet,
    "validation of orders, a row rejected": validation_rejecting_a_row,
    "validation of orders, nothing rejected": validation_rejecting_nothing,
    "validation of batches, a row rejected": batch_validation_rejecting_a_row,
    "ingestion, a conflicting line": ingestion_rejecting_a_conflict,
}


@pytest.mark.parametrize("producer", PRODUCERS.values(), ids=list(PRODUCERS))
def test_every_rejection_frame_is_made_by_the_one_builder(
    producer: Producer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[pl.DataFrame] = []
    real = rejections.build

    def recording(**columns: Any) -> pl.DataFrame:
        frame = real(**columns)
        made.append(frame)
        return frame

    monkeypatch.setattr(rejections, "build", recording)

    frame = producer(tmp_path)

    assert any(frame is built for built in made), "built by hand, not by rejections.build"
    assert frame.schema == REJECTION_SCHEMA


def test_the_cases_reject_something_and_nothing_as_their_names_say(tmp_path: Path) -> None:
    heights = {
        name: producer(tmp_path / str(number)).height
        for number, (name, producer) in enumerate(PRODUCERS.items())
    }

    assert [name for name, height in heights.items() if height == 0] == [
        "discovery, nothing rejected",
        "CSV fast path",
        "Parquet",
        "validation of orders, nothing rejected",
    ]


def test_a_single_value_repeats_for_every_row_and_none_for_no_rows() -> None:
    rows = pl.DataFrame({"source_file": ["orders/a.csv"] * 2, "line": [3, 4], "raw": ["{}"] * 2})

    two = rejections.build(
        rows=rows,
        kind="orders",
        source_file=pl.col("source_file"),
        line=pl.col("line"),
        reason="sku is empty",
        raw=pl.col("raw"),
    )
    none = rejections.build(
        rows=rows.clear(),
        kind="orders",
        source_file="orders/a.csv",
        line=None,
        reason="sku is empty",
        raw=None,
    )

    assert two.rows() == [
        ("orders", "orders/a.csv", 3, "sku is empty", "{}"),
        ("orders", "orders/a.csv", 4, "sku is empty", "{}"),
    ]
    assert none.height == 0
    assert none.schema == REJECTION_SCHEMA


def test_a_file_rejected_whole_is_one_row_with_line_and_raw_null() -> None:
    frame = rejections.build(
        kind="batches", source_file="batches/m.csv", line=None, reason="not UTF-8", raw=None
    )

    assert frame.rows() == [("batches", "batches/m.csv", None, "not UTF-8", None)]
    assert frame.schema == REJECTION_SCHEMA
