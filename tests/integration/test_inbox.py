"""The inbox reader on real files: every row is either loaded or rejected with a reason."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import polars as pl
import pytest

from allocation.io.readers import FileRead, InboxError, find_inbox_files, read_inbox_file
from allocation.io.schemas import REJECTION_SCHEMA, raw_text, rows_schema
from allocation.io.validation import leave_out_plain_raw, validate_batches, validate_orders
from allocation.service.preflight import check_inbox

ORDERS_HEADER = "orderid,sku,qty\n"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    root = tmp_path / "inbox"
    (root / "orders").mkdir(parents=True)
    (root / "batches").mkdir()
    return root


def put(inbox: Path, source_file: str, content: str | bytes) -> Path:
    path = inbox / source_file
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def read(inbox: Path, source_file: str) -> FileRead:
    files, rejections = find_inbox_files(inbox)
    assert rejections.is_empty(), rejections.to_dicts()
    [file] = [f for f in files if f.source_file == source_file]
    result = read_inbox_file(file)
    assert result.rows.schema == rows_schema(file.kind)
    assert result.rejected.schema == REJECTION_SCHEMA
    return result


def raw_of(result: FileRead) -> list[str]:
    """Each row's raw text: as the reader wrote it, or worded by `raw_text` where it left it out."""
    kind = result.file.kind
    return result.rows.select(pl.coalesce("raw", raw_text(kind)))["raw"].to_list()


def row_lines(result: FileRead) -> list[int]:
    """Lines of loaded and row-rejected rows together, sorted (must be exactly 1..N)."""
    rejected = result.rejected["line"].drop_nulls().to_list()
    return sorted(result.rows["line"].to_list() + rejected)


def file_reason(result: FileRead) -> str:
    assert result.file_rejected
    assert result.rows.is_empty()
    [reason] = result.rejected["reason"].to_list()
    assert result.rejected["line"].to_list() == [None]
    return str(reason)


def write_parquet(inbox: Path, source_file: str, frame: pl.DataFrame) -> None:
    frame.write_parquet(inbox / source_file)


# ------------------------------------------------------------------------------------- CSV


def test_a_csv_with_a_byte_order_mark_reads_its_first_column_name_cleanly(inbox: Path) -> None:
    put(inbox, "orders/a.csv", b"\xef\xbb\xbf" + b"orderid,sku,qty\nA1,LAMP,3\n")

    result = read(inbox, "orders/a.csv")

    assert result.rows.select("orderid", "sku", "qty").rows() == [("A1", "LAMP", "3")]
    assert json.loads(raw_of(result)[0]) == {"orderid": "A1", "sku": "LAMP", "qty": "3"}
    assert result.rejected.is_empty()


def test_a_csv_with_windows_line_endings_loads_without_carriage_returns(inbox: Path) -> None:
    put(inbox, "orders/a.csv", "orderid,sku,qty\r\nA1,LAMP,3\r\nA2,DESK,1\r\n")

    result = read(inbox, "orders/a.csv")

    assert result.rows.select("orderid", "sku", "qty").rows() == [
        ("A1", "LAMP", "3"),
        ("A2", "DESK", "1"),
    ]
    assert result.rows["line"].to_list() == [1, 2]


def test_a_header_only_csv_gives_zero_rows_with_the_contract_types(inbox: Path) -> None:
    put(inbox, "batches/a.csv", "reference,sku,qty,eta\n")

    result = read(inbox, "batches/a.csv")

    assert result.rows.height == 0
    assert result.rows.columns == ["source_file", "line", "reference", "sku", "qty", "eta", "raw"]
    assert not result.file_rejected
    assert result.rejected.is_empty()


def test_quoted_fields_keep_their_commas_quotes_and_newlines(inbox: Path) -> None:
    put(inbox, "orders/a.csv", ORDERS_HEADER + 'A1,"LAMP, RED",3\n"A""2","DESK\nOAK",1\n')

    result = read(inbox, "orders/a.csv")

    assert result.rows.select("orderid", "sku").rows() == [
        ("A1", "LAMP, RED"),
        ('A"2', "DESK\nOAK"),
    ]
    assert result.rows["line"].to_list() == [1, 2]
    assert json.loads(raw_of(result)[1])["sku"] == "DESK\nOAK"


def test_a_non_ascii_sku_is_kept_exactly_also_in_raw(inbox: Path) -> None:
    put(inbox, "orders/a.csv", ORDERS_HEADER + "A1,ÉTAGÈRE-Ø,2\n")

    result = read(inbox, "orders/a.csv")

    assert result.rows["sku"].to_list() == ["ÉTAGÈRE-Ø"]
    assert "ÉTAGÈRE-Ø" in raw_of(result)[0]  # not \\u-escaped
    assert json.loads(raw_of(result)[0])["sku"] == "ÉTAGÈRE-Ø"


def test_extra_columns_are_ignored_reported_and_kept_in_raw(inbox: Path) -> None:
    put(inbox, "orders/a.csv", " OrderID ,SKU,Qty,Note,colour\nA1,LAMP,3,rush,red\n")

    result = read(inbox, "orders/a.csv")

    assert result.extra_columns == ("Note", "colour")
    assert result.rows.columns == ["source_file", "line", "orderid", "sku", "qty", "raw"]
    assert result.rows.select("orderid", "sku", "qty").rows() == [("A1", "LAMP", "3")]
    assert json.loads(result.rows["raw"][0]) == {
        " OrderID ": "A1",
        "SKU": "LAMP",
        "Qty": "3",
        "Note": "rush",
        "colour": "red",
    }


def test_a_ref_column_is_read_as_the_batch_reference(inbox: Path) -> None:
    put(inbox, "batches/a.csv", "Ref,sku,qty,eta\nB1,LAMP,10,2026-12-01\nB2,LAMP,5,\n")

    result = read(inbox, "batches/a.csv")

    assert result.rows.select("reference", "sku", "qty", "eta").rows() == [
        ("B1", "LAMP", "10", "2026-12-01"),
        ("B2", "LAMP", "5", ""),  # empty as received: validation decides
    ]
    assert result.extra_columns == ()
    assert json.loads(result.rows["raw"][0])["Ref"] == "B1"


def test_a_batches_csv_without_an_eta_column_has_every_eta_null(inbox: Path) -> None:
    put(inbox, "batches/a.csv", "reference,sku,qty\nB1,LAMP,10\nB2,DESK,5\n")

    result = read(inbox, "batches/a.csv")

    assert result.rows["eta"].to_list() == [None, None]
    assert result.rows["eta"].dtype == pl.String
    assert result.rejected.is_empty()


def test_ragged_rows_are_rejected_and_the_rest_of_the_file_loads(inbox: Path) -> None:
    put(
        inbox,
        "orders/a.csv",
        ORDERS_HEADER + "A1,LAMP,3\nA2,DESK,1,EXTRA\nA3,CHAIR,2\nA4,SOFA\nA5,BED,1\n",
    )

    result = read(inbox, "orders/a.csv")

    assert result.rows["orderid"].to_list() == ["A1", "A3", "A5"]
    assert result.rows["line"].to_list() == [1, 3, 5]
    rejected = result.rejected.sort("line")
    assert rejected["line"].to_list() == [2, 4]
    assert rejected["reason"].to_list() == [
        "row has 4 fields, header has 3",
        "row has 2 fields, header has 3",
    ]
    assert [json.loads(raw) for raw in rejected["raw"]] == [
        {"fields": ["A2", "DESK", "1", "EXTRA"]},
        {"fields": ["A4", "SOFA"]},
    ]
    assert set(rejected["kind"]) == {"orders"}
    assert set(rejected["source_file"]) == {"orders/a.csv"}
    assert not result.file_rejected
    assert row_lines(result) == [1, 2, 3, 4, 5]


def test_blank_lines_are_skipped_and_not_counted(inbox: Path) -> None:
    put(inbox, "orders/a.csv", "\n" + ORDERS_HEADER + "A1,LAMP,3\n\n\nA2,DESK,1\n\n")

    result = read(inbox, "orders/a.csv")

    assert result.rows["orderid"].to_list() == ["A1", "A2"]
    assert result.rows["line"].to_list() == [1, 2]
    assert result.rejected.is_empty()


def test_ragged_rows_spread_over_many_chunks_keep_their_line_numbers(inbox: Path) -> None:
    rows = [f"A{i},SKU{i},1" if i % 50_000 else f"A{i},SKU{i}" for i in range(1, 450_001)]
    put(inbox, "orders/a.csv", ORDERS_HEADER + "\n".join(rows) + "\n")

    result = read(inbox, "orders/a.csv")

    assert result.rejected["line"].to_list() == list(range(50_000, 450_001, 50_000))
    assert result.rows.height == 450_000 - 9
    assert row_lines(result) == list(range(1, 450_001))
    assert result.rows.filter(pl.col("line") == 123_456)["orderid"].to_list() == ["A123456"]


def test_an_unclosed_quote_rejects_the_row_it_swallows_not_the_file(inbox: Path) -> None:
    put(inbox, "orders/a.csv", ORDERS_HEADER + 'A1,LAMP,1\nA2,"DESK,2\nA3,BED,3\n')

    result = read(inbox, "orders/a.csv")

    assert result.rows["orderid"].to_list() == ["A1"]
    assert result.rejected["reason"].to_list() == [
        "row has 2 fields, header has 3: the quote opening field 2 is not closed on its line, "
        "so the next 1 line(s) of the file were read into this row; close the quote (or double "
        'a quote inside a value: "") and send the file again'
    ]
    assert json.loads(result.rejected["raw"][0]) == {"fields": ["A2", "DESK,2\nA3,BED,3\n"]}


def test_blank_header_cells_become_positional_extra_columns(inbox: Path) -> None:
    put(inbox, "orders/a.csv", "orderid,sku,qty,,\nA1,LAMP,1,,\nA2,DESK,2\n")

    result = read(inbox, "orders/a.csv")

    assert result.extra_columns == ("column_4", "column_5")
    assert json.loads(result.rows["raw"][0])["column_5"] == ""
    assert result.rejected["reason"].to_list() == ["row has 3 fields, header has 5"]


@pytest.mark.parametrize("content", [b"", b"  \n\r\n\t\n", b"\xef\xbb\xbf\n"])
def test_an_empty_csv_is_rejected_as_a_whole(inbox: Path, content: bytes) -> None:
    put(inbox, "orders/a.csv", content)

    result = read(inbox, "orders/a.csv")

    assert file_reason(result) == "empty file: no header row"


def test_a_header_missing_a_column_names_what_is_missing_and_what_was_found(
    inbox: Path,
) -> None:
    put(inbox, "orders/a.csv", "orderid,product\nA1,LAMP\n")

    result = read(inbox, "orders/a.csv")

    assert file_reason(result) == (
        "missing required column(s): sku, qty; columns found: orderid, product"
    )
    assert result.rejected["kind"].to_list() == ["orders"]


def test_a_header_with_the_same_column_twice_is_rejected(inbox: Path) -> None:
    put(inbox, "batches/a.csv", "ref,reference,sku,qty\nB1,B1,LAMP,3\n")

    result = read(inbox, "batches/a.csv")

    reason = file_reason(result)
    assert "duplicate column name(s) in header: reference" in reason
    assert "'ref', 'reference'" in reason


def test_a_binary_file_is_rejected_with_the_offset_of_its_first_nul_byte(inbox: Path) -> None:
    put(inbox, "orders/a.csv", b"PK\x03\x04\x14\x00\x06\x00 zip bytes")

    result = read(inbox, "orders/a.csv")

    assert file_reason(result) == "not a text file (binary content at byte 5)"


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_invalid_utf8_is_rejected_with_its_byte_offset_in_the_file(inbox: Path, bom: bytes) -> None:
    content = bom + "orderid,sku,qty\nA1,ÉTAGÈRE,1\n".encode() + b"A2,caf\xe9,1\n"
    put(inbox, "orders/a.csv", content)

    result = read(inbox, "orders/a.csv")

    offset = content.index(b"\xe9,")
    assert file_reason(result) == (
        f"not valid UTF-8 at byte offset {offset}: re-export the file as UTF-8"
    )


def test_the_utf8_offset_is_right_past_the_first_read_block(inbox: Path) -> None:
    # 4 MiB blocks: put a valid two-byte character across the boundary, a bad byte after it.
    head = ORDERS_HEADER.encode() + b"A1,LAMP,1\n" * 100_000 + b"A2,"
    filler = b"x" * ((1 << 22) - len(head) - 1)
    content = head + filler + b"\xc3\xa9Z\xff,1\n"
    put(inbox, "orders/a.csv", content)

    result = read(inbox, "orders/a.csv")

    assert content.index(b"\xc3\xa9") == (1 << 22) - 1  # the character straddles the blocks
    offset = content.index(b"\xff")
    assert f"not valid UTF-8 at byte offset {offset}:" in file_reason(result)


def test_a_utf16_export_is_rejected_with_a_hint_to_re_export(inbox: Path) -> None:
    put(inbox, "orders/a.csv", (ORDERS_HEADER + "A1,LAMP,1\n").encode("utf-16"))

    result = read(inbox, "orders/a.csv")

    reason = file_reason(result)
    assert "UTF-16" in reason
    assert "re-export the file as UTF-8" in reason


def test_a_field_larger_than_the_limit_rejects_the_file_with_its_line(inbox: Path) -> None:
    huge = "x" * (2 << 20)
    put(inbox, "orders/a.csv", ORDERS_HEADER + f'A1,LAMP,1\nA2,"{huge}",1\n')

    result = read(inbox, "orders/a.csv")

    reason = file_reason(result)
    assert reason.startswith("cannot parse CSV: field larger than field limit")
    assert "(file line 3)" in reason


# ----------------------------------------------------------------------------------- Parquet


def test_a_corrupt_parquet_file_is_rejected_as_a_whole(inbox: Path) -> None:
    put(inbox, "orders/a.parquet", b"PAR1 this is not really parquet PAR1")

    result = read(inbox, "orders/a.parquet")

    assert file_reason(result).startswith("cannot read Parquet: ")


def test_parquet_ints_and_dates_arrive_as_text(inbox: Path) -> None:
    frame = pl.DataFrame(
        {
            "Ref": ["B1", "B2", "B3"],
            "sku": ["LAMP", "ÉTAGÈRE-Ø", None],
            "qty": [10, 5, 7],
            "eta": [dt.date(2026, 12, 1), None, dt.date(2027, 1, 31)],
            "weight": [1.5, 2.0, None],
        }
    )
    write_parquet(inbox, "batches/a.parquet", frame)

    result = read(inbox, "batches/a.parquet")

    assert result.rows.select("line", "reference", "sku", "qty", "eta").rows() == [
        (1, "B1", "LAMP", "10", "2026-12-01"),
        (2, "B2", "ÉTAGÈRE-Ø", "5", None),
        (3, "B3", None, "7", "2027-01-31"),
    ]
    assert result.extra_columns == ("weight",)
    assert json.loads(result.rows["raw"][2]) == {
        "Ref": "B3",
        "sku": None,
        "qty": "7",
        "eta": "2027-01-31",
        "weight": None,
    }
    assert result.rejected.is_empty()


def test_parquet_midnight_timestamps_read_as_dates_and_missing_eta_as_null(inbox: Path) -> None:
    write_parquet(
        inbox,
        "batches/a.parquet",
        pl.DataFrame({"reference": ["B1"], "sku": ["LAMP"], "qty": [1]}),
    )
    write_parquet(
        inbox,
        "batches/b.parquet",
        pl.DataFrame(
            {
                "reference": ["B2", "B3"],
                "sku": ["LAMP", "LAMP"],
                "qty": [1, 2],
                "eta": [dt.datetime(2026, 12, 1), None],
            }
        ),
    )

    without_eta = read(inbox, "batches/a.parquet")
    timestamps = read(inbox, "batches/b.parquet")

    assert without_eta.rows["eta"].to_list() == [None]
    assert timestamps.rows["eta"].to_list() == ["2026-12-01", None]


def test_a_parquet_file_missing_a_required_column_is_rejected(inbox: Path) -> None:
    write_parquet(inbox, "orders/a.parquet", pl.DataFrame({"orderid": ["A1"], "qty": [1]}))

    result = read(inbox, "orders/a.parquet")

    assert file_reason(result) == "missing required column(s): sku; columns found: orderid, qty"


def test_parquet_nested_and_binary_extra_columns_are_kept_in_raw_as_text(inbox: Path) -> None:
    write_parquet(
        inbox,
        "orders/a.parquet",
        pl.DataFrame(
            {
                "orderid": ["A1", "A2"],
                "sku": [b"LAMP", b"DESK"],  # strings written without the UTF-8 annotation
                "qty": [1, 2],
                "tags": [["x", "y"], None],
                "thumb": [b"\xff\xd8", None],
            }
        ),
    )

    result = read(inbox, "orders/a.parquet")

    assert result.rows["sku"].to_list() == ["LAMP", "DESK"]
    assert json.loads(result.rows["raw"][0]) == {
        "orderid": "A1",
        "sku": "LAMP",
        "qty": "1",
        "tags": '["x","y"]',
        "thumb": "ffd8",
    }
    assert json.loads(result.rows["raw"][1])["tags"] is None


def test_a_parquet_column_in_use_that_is_not_utf8_rejects_the_file(inbox: Path) -> None:
    write_parquet(
        inbox,
        "orders/a.parquet",
        pl.DataFrame({"orderid": ["A1"], "sku": [b"caf\xe9"], "qty": [1]}),
    )

    result = read(inbox, "orders/a.parquet")

    assert file_reason(result).startswith("cannot read Parquet: column 'sku' of type Binary")


# -------------------------------------------------------------------------------- JSON Lines


def test_json_lines_values_become_text_and_missing_keys_null(inbox: Path) -> None:
    lines = [
        {"orderid": "A1", "SKU": "ÉTAGÈRE-Ø", "qty": 3, "gift": True, "tags": ["x", 1]},
        {"orderid": "A2", "sku": "LAMP", "qty": "2", "note": None},
        {"orderid": 17, "qty": 1.5},
    ]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    put(inbox, "orders/a.jsonl", "\ufeff" + text + "\r\n\n")

    result = read(inbox, "orders/a.jsonl")

    assert result.rows.select("line", "orderid", "sku", "qty").rows() == [
        (1, "A1", "ÉTAGÈRE-Ø", "3"),
        (2, "A2", "LAMP", "2"),
        (3, "17", None, "1.5"),
    ]
    assert result.extra_columns == ("gift", "tags", "note")
    # raw holds the row's own keys (values as text), not the keys of other rows
    assert json.loads(result.rows["raw"][0]) == {
        "orderid": "A1",
        "SKU": "ÉTAGÈRE-Ø",
        "qty": "3",
        "gift": "true",
        "tags": '["x",1]',
    }
    assert result.rejected.is_empty()


def test_json_lines_bad_lines_are_rejected_and_the_rest_loads(inbox: Path) -> None:
    put(
        inbox,
        "orders/a.jsonl",
        '{"orderid": "A1", "sku": "LAMP", "qty": 1}\n'
        "orderid,sku,qty\n"
        '{"orderid": "A3", "sku": "DESK", "qty": 2}\n'
        "[1, 2]\n"
        '{"orderid": "A5", "sku": "BED", "Sku": "BED", "qty": 1}\n'
        '{"orderid": "A6", "sku": "SOFA", "qty": 4}\n',
    )

    result = read(inbox, "orders/a.jsonl")

    assert result.rows["orderid"].to_list() == ["A1", "A3", "A6"]
    assert result.rows["line"].to_list() == [1, 3, 6]
    rejected = result.rejected.sort("line")
    assert rejected["line"].to_list() == [2, 4, 5]
    reasons = rejected["reason"].to_list()
    assert reasons[0] == "not a JSON object: Expecting value at column 1"
    assert reasons[1] == "not a JSON object: found an array"
    assert reasons[2] == "duplicate keys once names are normalised: sku (from 'sku', 'Sku')"
    assert json.loads(rejected["raw"][0]) == {"line": "orderid,sku,qty"}
    assert row_lines(result) == [1, 2, 3, 4, 5, 6]
    assert not result.file_rejected


def test_a_json_lines_file_with_no_parseable_line_is_rejected_as_a_whole(inbox: Path) -> None:
    put(inbox, "orders/a.jsonl", "orderid,sku,qty\nA1,LAMP,1\n")

    result = read(inbox, "orders/a.jsonl")

    assert file_reason(result) == "cannot parse as JSON Lines: line 1: Expecting value at column 1"


def test_an_empty_json_lines_file_is_rejected_as_a_whole(inbox: Path) -> None:
    put(inbox, "orders/a.jsonl", "\n\n")

    result = read(inbox, "orders/a.jsonl")

    assert file_reason(result).startswith("empty file")


# ------------------------------------------------------------------------------ finding files


def test_files_are_listed_in_name_order_batches_before_orders(inbox: Path) -> None:
    for name in ["orders/2026-11-27.csv", "orders/2026-11-26.csv", "orders/2026-11-26b.jsonl"]:
        put(inbox, name, ORDERS_HEADER)
    put(inbox, "batches/b.parquet", b"")
    put(inbox, "batches/a.CSV", "reference,sku,qty\n")
    put(inbox, "orders/.~lock.2026-11-27.csv#", "editor junk")
    put(inbox, "orders/.hidden.csv", ORDERS_HEADER)
    put(inbox, "stray.csv", ORDERS_HEADER)

    files, rejections = find_inbox_files(inbox)

    assert [f.source_file for f in files] == [
        "batches/a.CSV",
        "batches/b.parquet",
        "orders/2026-11-26.csv",
        "orders/2026-11-26b.jsonl",
        "orders/2026-11-27.csv",
    ]
    assert [f.kind for f in files] == ["batches", "batches", "orders", "orders", "orders"]
    # Never read, never silent: each is named with its reason (tests/integration/test_inbox_entries.py).
    assert rejections["source_file"].to_list() == [
        "stray.csv",
        "orders/.hidden.csv",
        "orders/.~lock.2026-11-27.csv#",
    ]
    assert rejections.schema == REJECTION_SCHEMA


def test_each_file_carries_its_size_and_sha256(inbox: Path) -> None:
    content = (ORDERS_HEADER + "A1,LAMP,1\n").encode()
    path = put(inbox, "orders/a.csv", content)

    [file], _ = find_inbox_files(inbox)

    assert file.path == path
    assert file.size == len(content)
    assert file.sha256 == hashlib.sha256(content).hexdigest()


def test_a_missing_kind_folder_means_nothing_of_that_kind(tmp_path: Path) -> None:
    (tmp_path / "inbox" / "orders").mkdir(parents=True)
    put(tmp_path / "inbox", "orders/a.csv", ORDERS_HEADER)

    files, rejections = find_inbox_files(tmp_path / "inbox")

    assert [f.source_file for f in files] == ["orders/a.csv"]
    assert rejections.is_empty()


def test_an_unsupported_file_type_is_reported_and_not_read(inbox: Path) -> None:
    put(inbox, "orders/a.xlsx", b"PK\x03\x04")
    put(inbox, "orders/README", "notes")
    put(inbox, "orders/b.csv", ORDERS_HEADER)

    files, rejections = find_inbox_files(inbox)

    assert [f.source_file for f in files] == ["orders/b.csv"]
    assert rejections.to_dicts() == [
        {
            "kind": "orders",
            "source_file": "orders/README",
            "line": None,
            "reason": "unsupported file type (no extension): expected .csv, .parquet or .jsonl",
            "raw": None,
        },
        {
            "kind": "orders",
            "source_file": "orders/a.xlsx",
            "line": None,
            "reason": "unsupported file type '.xlsx': expected .csv, .parquet or .jsonl",
            "raw": None,
        },
    ]


def test_a_subdirectory_is_reported_and_its_files_are_not_read(inbox: Path) -> None:
    (inbox / "batches" / "old").mkdir()
    put(inbox, "batches/old/a.csv", "reference,sku,qty\n")

    files, rejections = find_inbox_files(inbox)

    assert files == []
    assert rejections.select("kind", "source_file", "reason").rows() == [
        ("batches", "batches/old", "is a directory; only files directly inside batches/ are read")
    ]


def test_a_named_pipe_is_reported_and_never_opened(inbox: Path) -> None:
    os.mkfifo(inbox / "orders" / "a.csv")

    files, rejections = find_inbox_files(inbox)

    assert files == []
    assert rejections["reason"].to_list()[0].startswith("not a regular file")


def test_a_symlink_pointing_outside_the_inbox_is_rejected(inbox: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.csv"
    outside.write_text(ORDERS_HEADER)
    (inbox / "orders" / "a.csv").symlink_to(outside)

    files, rejections = find_inbox_files(inbox)

    assert files == []
    [reason] = rejections["reason"].to_list()
    assert reason.startswith("symlink points outside the inbox (")
    assert str(outside.resolve()) in reason


def test_a_symlink_to_a_file_inside_the_inbox_is_read(inbox: Path) -> None:
    (inbox / "shared").mkdir()
    put(inbox, "shared/today.csv", ORDERS_HEADER + "A1,LAMP,1\n")
    (inbox / "orders" / "a.csv").symlink_to(inbox / "shared" / "today.csv")

    [file], rejections = find_inbox_files(inbox)
    result = read_inbox_file(file)

    assert result.file.path == inbox / "orders" / "a.csv"
    assert result.rows.select("source_file", "orderid").rows() == [("orders/a.csv", "A1")]
    assert rejections["source_file"].to_list() == ["shared/"]  # its own files are not read


def test_a_broken_symlink_is_reported(inbox: Path) -> None:
    (inbox / "orders" / "a.csv").symlink_to(inbox / "orders" / "gone.csv")

    files, rejections = find_inbox_files(inbox)

    assert files == []
    assert rejections["reason"].to_list()[0].startswith("broken symlink")


def test_a_missing_inbox_raises_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InboxError, match="does not exist: create it with batches/ and orders/"):
        find_inbox_files(tmp_path / "nowhere")


def test_an_inbox_that_is_a_file_raises_an_error(tmp_path: Path) -> None:
    (tmp_path / "inbox").write_text("")

    with pytest.raises(InboxError, match="is not a folder"):
        find_inbox_files(tmp_path / "inbox")


@pytest.mark.parametrize(
    ("flow_run", "hint"),
    [(False, "or pass --inbox"), (True, "or set the run's inbox parameter to another folder")],
)
def test_a_run_given_a_file_as_its_inbox_is_told_it_is_not_a_folder(
    tmp_path: Path, flow_run: bool, hint: str
) -> None:
    """The reader and the runs' pre-flight check say the same thing, each with its own hint."""
    (tmp_path / "inbox").write_text("")

    with pytest.raises(InboxError) as refused:
        check_inbox(tmp_path / "inbox", flow_run=flow_run)

    assert str(refused.value) == (
        f"inbox folder {tmp_path / 'inbox'} is not a folder: make it a folder with batches/ and "
        f"orders/ subfolders, {hint}"
    )


# ------------------------------------------------- raw text left out of valid rows, given back

RAW_SHAPES = {
    "orders/plain.csv": "orderid,sku,qty\nA1,LAMP,3\nA2,DESK,+4\nA3, BED ,5\n",
    "orders/reordered.csv": "sku,orderid,qty\nLAMP,A1,3\n",
    "orders/extra.csv": "orderid,sku,qty,note\nA1,LAMP,3,gift\n",
    "orders/quoted.csv": 'orderid,sku,qty\n"A1","LAMP, OAK",03\n',
    "batches/plain.csv": "reference,sku,qty,eta\nB1,LAMP,10,2026-12-01\nB2,LAMP,5,\n",
    "batches/no-eta.csv": "reference,sku,qty\nB3,DESK,7\n",
}


@pytest.mark.parametrize("source_file", RAW_SHAPES)
def test_raw_left_out_of_a_valid_row_is_given_back_exactly(inbox: Path, source_file: str) -> None:
    put(inbox, source_file, RAW_SHAPES[source_file])
    result = read(inbox, source_file)
    kind = result.file.kind
    valid = validate_orders(result.rows) if kind == "orders" else validate_batches(result.rows)
    assert valid.rejected.is_empty()

    kept = leave_out_plain_raw(valid.valid, kind)
    given_back = kept.select(pl.coalesce("raw", raw_text(kind)))["raw"]

    assert given_back.to_list() == raw_of(result)
    # Left out only where the row was received as exactly its typed values.
    plain = {
        "orders/plain.csv": [True, False, False],
        "orders/quoted.csv": [False],  # qty "03"
        "batches/plain.csv": [True, False],  # an empty eta is not a null one
    }
    assert kept["raw"].is_null().to_list() == plain.get(source_file, [False] * kept.height)


def test_the_reader_leaves_raw_out_only_of_files_that_are_exactly_the_required_columns(
    inbox: Path,
) -> None:
    put(inbox, "orders/a.csv", "orderid,sku,qty\nA1,LAMP,3\n")
    put(inbox, "orders/b.csv", "OrderID,sku,qty\nA1,LAMP,3\n")
    put(inbox, "orders/c.csv", "sku,orderid,qty\nLAMP,A1,3\n")

    assert read(inbox, "orders/a.csv").rows["raw"].to_list() == [None]
    assert raw_of(read(inbox, "orders/a.csv")) == ['{"orderid":"A1","sku":"LAMP","qty":"3"}']
    assert read(inbox, "orders/b.csv").rows["raw"].to_list() == [
        '{"OrderID":"A1","sku":"LAMP","qty":"3"}'
    ]
    assert read(inbox, "orders/c.csv").rows["raw"].to_list() == [
        '{"sku":"LAMP","orderid":"A1","qty":"3"}'
    ]
