"""The two CSV paths read a file alike.

``plain_values`` (polars, for the usual export) promises exactly what the csv module gives for the
same rows, or to decline (``None``) so the csv module reads them. Each file here is read both ways
(``read_csv_slices`` with and without its fast path) and the results are compared frame for frame.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.io import rejections
from allocation.io.readers import FileRead, InboxFile, find_inbox_files, read_inbox_file
from allocation.io.readers.csv_plain import plain_header, plain_values
from allocation.io.readers.csv_stream import read_csv_slices
from allocation.io.readers.frames import reject_file
from allocation.io.readers.header import map_header
from allocation.io.readers.stream import FileStream
from allocation.io.schemas import empty_rows

BOM = b"\xef\xbb\xbf"

# Files the fast path takes: it must give what the csv module gives.
PLAIN: dict[str, tuple[str, bytes]] = {
    "usual export": ("orders", b"orderid,sku,qty\nA1,RETRO-CLOCK,3\nA2,LAMP,1\n"),
    "byte order mark": ("orders", BOM + b"orderid,sku,qty\nA1,RETRO-CLOCK,3\n"),
    "windows line endings": ("orders", b"orderid,sku,qty\r\nA1,RETRO-CLOCK,3\r\nA2,LAMP,1\r\n"),
    "bom and crlf": ("orders", BOM + b"orderid,sku,qty\r\nA1,RETRO-CLOCK,3\r\n"),
    "no final line break": ("orders", b"orderid,sku,qty\nA1,RETRO-CLOCK,3\nA2,LAMP,1"),
    "header only": ("orders", b"orderid,sku,qty\n"),
    "extra columns": ("orders", b"orderid,sku,qty,note,colour\nA1,RETRO-CLOCK,3,rush,red\n"),
    "reordered columns": ("orders", b"sku,qty,orderid\nRETRO-CLOCK,3,A1\nLAMP,1,A2\n"),
    "header spelled loosely": ("orders", b" OrderID ,SKU,Qty\nA1,RETRO-CLOCK,3\n"),
    "blank header cell": ("orders", b"orderid,sku,qty,\nA1,RETRO-CLOCK,3,\n"),
    "empty and padded values": ("orders", b"orderid,sku,qty\nA1,,3\n A2 , LAMP ,-1\n"),
    "non-ascii values": ("orders", "orderid,sku,qty\nA1,ÉTAGÈRE-Ø,2\n".encode()),
    "bad values kept as text": ("orders", b"orderid,sku,qty\nA1,LAMP,three\nA2,LAMP,1.5\n"),
    "batches with eta": ("batches", b"reference,sku,qty,eta\nb1,LAMP,10,\nb2,LAMP,5,2026-12-01\n"),
    "batches without eta": ("batches", b"ref,sku,qty\nb1,LAMP,10\n"),
    "batches reordered": ("batches", b"eta,qty,sku,reference\n2026-12-01,5,LAMP,b2\n"),
}

# Files the fast path must decline: only the csv module can read (and explain) them.
NOT_PLAIN: dict[str, tuple[str, bytes]] = {
    "quoted fields": ("orders", b'orderid,sku,qty\nA1,"LAMP, RED",3\n"A""2","DESK\nOAK",1\n'),
    "quoted header": ("orders", b'"orderid","sku","qty"\nA1,LAMP,3\n'),
    "ragged rows": ("orders", b"orderid,sku,qty\nA1,LAMP,3\nA2,LAMP\nA3,LAMP,1,extra\n"),
    "ragged with crlf": ("orders", b"orderid,sku,qty\r\nA1,LAMP\r\nA2,LAMP,1\r\n"),
    "blank lines": ("orders", b"orderid,sku,qty\nA1,LAMP,3\n\nA2,LAMP,1\n"),
    "lone carriage return": ("orders", b"orderid,sku,qty\nA1,LAMP,3\rA2,LAMP,1\n"),
    "blank line after a windows line end": (
        "orders",
        b"orderid,sku,qty\r\nA1,LAMP,3\r\n\r\nA2,LAMP,1,\r\n",
    ),
    # As many commas as a plain file's: only the look for carriage returns declines it.
    "carriage return inside a field": ("orders", b"orderid,sku,qty\nA1,LA\rMP,3\nA2,LAMP,1\n"),
    "missing column": ("orders", b"orderid,qty\nA1,3\n"),
    "duplicate column": ("orders", b"orderid,sku,SKU,qty\nA1,LAMP,LAMP,3\n"),
}


def inbox_file(tmp_path: Path, kind: str, content: bytes) -> InboxFile:
    inbox = tmp_path / "inbox"
    (inbox / kind).mkdir(parents=True, exist_ok=True)
    (inbox / kind / "file.csv").write_bytes(content)
    files, rejections = find_inbox_files(inbox)
    assert rejections.is_empty()
    [file] = files
    return file


def read_general_csv(file: InboxFile) -> FileRead:
    """The file read by the csv module alone."""
    stream = FileStream(file, partial(read_csv_slices, fast=False), text=True)
    parts = list(stream)
    if stream.problem is not None:
        return reject_file(file, stream.problem, sha256=stream.sha256)
    return FileRead(
        file,
        pl.concat([p.rows for p in parts]) if parts else empty_rows(file.kind),
        pl.concat([p.rejected for p in parts]) if parts else rejections.empty(),
        stream.extra_columns,
        stream.sha256,
    )


def read_plain_csv(file: InboxFile) -> FileRead | None:
    """The file read by the fast path, or None when the fast path declines it."""
    data = file.path.read_bytes().removeprefix(BOM)
    first, _, rest = data.partition(b"\n")
    names = plain_header(first.decode())
    if names is None or isinstance(map_header(file.kind, names), str):
        return None  # a header problem: the file is rejected whole, whichever the path
    if plain_values(rest, len(names)) is None:
        return None
    return read_inbox_file(file)


def assert_same(fast: FileRead, general: FileRead) -> None:
    assert fast.rows.to_dicts() == general.rows.to_dicts()
    assert fast.rows.schema == general.rows.schema
    assert fast.rejected.to_dicts() == general.rejected.to_dicts()
    assert fast.rejected.schema == general.rejected.schema
    assert fast.extra_columns == general.extra_columns


@pytest.mark.parametrize("shape", list(PLAIN))
def test_the_fast_path_reads_a_plain_file_exactly_as_the_csv_module_does(
    tmp_path: Path, shape: str
) -> None:
    file = inbox_file(tmp_path, *PLAIN[shape])

    fast = read_plain_csv(file)
    general = read_general_csv(file)

    assert fast is not None, "the fast path declined a plain file: it would never be used"
    assert_same(fast, general)
    if content_ends_with_a_line_break(file):
        assert general.rejected.is_empty()


def content_ends_with_a_line_break(file: InboxFile) -> bool:
    return file.path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize("shape", list(NOT_PLAIN))
def test_the_fast_path_leaves_files_it_cannot_read_alike_to_the_csv_module(
    tmp_path: Path, shape: str
) -> None:
    file = inbox_file(tmp_path, *NOT_PLAIN[shape])

    assert read_plain_csv(file) is None
    assert_same(read_inbox_file(file), read_general_csv(file))


# Values a supplier's export holds without quoting: no comma, quote or line break (and no NUL:
# a file with one is rejected as binary before either path reads it).
_VALUE = st.text(
    st.characters(blacklist_characters=',"\r\n\x00', blacklist_categories=("Cs",)), max_size=6
)


@pytest.mark.fuzz
@given(
    rows=st.lists(st.tuples(_VALUE, _VALUE, _VALUE), max_size=6),
    extra=st.booleans(),
    crlf=st.booleans(),
    bom=st.booleans(),
)
def test_both_paths_agree_on_any_unquoted_file(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str, str, str]],
    extra: bool,
    crlf: bool,
    bom: bool,
) -> None:
    end = "\r\n" if crlf else "\n"
    header = "sku,orderid,qty" + (",note" if extra else "")
    lines = [header, *(",".join(row) + (",x" if extra else "") for row in rows)]
    content = (BOM if bom else b"") + (end.join(lines) + end).encode()
    file = inbox_file(tmp_path_factory.mktemp("csv"), "orders", content)

    fast = read_plain_csv(file)
    general = read_general_csv(file)

    assert fast is not None  # unquoted, no blank line, every row as wide as the header
    assert_same(fast, general)
