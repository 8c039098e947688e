"""Property-based: whatever lands in the inbox (any bytes, encoding, file name or shape of CSV,
JSON Lines or Parquet), the night completes, and every file and every row is accounted for:
received = accepted + duplicate + rejected for orders and for batches (the summary's contract).

Nights run through ``night.run_night`` (no Prefect) in a fresh folder per example. A few
examples each in ``make test``; ``make fuzz`` runs hundreds (HYPOTHESIS_PROFILE=fuzz).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.night import run_night
from allocation.settings import RunParameters

pytestmark = pytest.mark.fuzz

# Each example is a whole night (~0.4 s): a handful in `make test` keeps each test to a few
# seconds; `make fuzz` (HYPOTHESIS_PROFILE=fuzz) runs the profile's hundreds.
_PROFILE_EXAMPLES = settings.default.max_examples
nights = settings(max_examples=6 if _PROFILE_EXAMPLES <= 15 else _PROFILE_EXAMPLES)

DAY = "2026-11-25"
KINDS = ("orders", "batches")
COLUMNS = {"orders": ["orderid", "sku", "qty"], "batches": ["reference", "sku", "qty", "eta"]}

# Column names: the real ones (any case, padded, aliased) and strangers.
names = st.one_of(
    st.sampled_from(["orderid", "sku", "qty", "reference", "ref", "eta", " SKU ", "Qty", ""]),
    st.text(max_size=8),
)
# Cell values: plausible ones, odd ones, and anything.
cells = st.one_of(
    st.sampled_from(["LAMP", "DESK", "1", "3", "0", "-1", "2026-12-01", "", " ", "1e3", "=1+1"]),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=12),
)
encodings = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace")


@st.composite
def csv_files(draw: st.DrawFn, kind: str) -> bytes:
    header = draw(
        st.one_of(
            st.just(COLUMNS[kind]),
            st.permutations(COLUMNS[kind]).map(list),
            st.lists(names, min_size=1, max_size=6),
        )
    )
    rows = draw(st.lists(st.lists(cells, min_size=0, max_size=len(header) + 1), max_size=8))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows(
        [header, *rows]
    )
    text = buffer.getvalue()
    if draw(st.booleans()):  # break it: a stray quote, a NUL, a cut, a lone carriage return
        position = draw(st.integers(0, len(text)))
        insert = draw(st.sampled_from(['"', "\x00", "\r", "\n\n", "", ","]))
        text = text[:position] + insert + text[position:]
    return encode(text, draw(encodings))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | cells,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=3),
    max_leaves=6,
)


@st.composite
def jsonl_files(draw: st.DrawFn, kind: str) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        shape = draw(st.sampled_from(["row", "row", "value", "text", "escape"]))
        if shape == "row":
            keys = draw(st.lists(st.sampled_from(COLUMNS[kind]) | names, max_size=6))
            row = {key: draw(json_values) for key in keys}
            lines.append(json.dumps(row, ensure_ascii=draw(st.booleans()), allow_nan=True))
        elif shape == "value":
            lines.append(json.dumps(draw(json_values)))
        elif shape == "escape":  # escapes, lone surrogates and repeated keys included
            escape = draw(st.sampled_from(["\\ud83d", "\\ude00", "\\ud83d\\ude00", "\\u0000"]))
            lines.append(f'{{"{COLUMNS[kind][0]}":"x","sku":"S{escape}","qty":1,"qty":2}}')
        else:
            lines.append(draw(st.text(max_size=20)))
    return encode("\n".join(lines), draw(encodings))


parquet_columns = st.sampled_from(
    [
        pl.Series([1, 2, None], dtype=pl.Int64),
        pl.Series(["LAMP", "", None]),
        pl.Series([1.5, float("nan"), None]),
        pl.Series([True, False, None]),
        pl.Series([[1], [], None]),
        pl.Series([{"x": 1}, {"x": None}, None]),
        pl.Series([dt.date(2026, 12, 1), None, dt.date(1, 1, 1)]),
        pl.Series([b"LAMP", b"\xff", None]),
        pl.Series([None, None, None], dtype=pl.Null),
    ]
)


@st.composite
def parquet_files(draw: st.DrawFn, kind: str) -> bytes:
    keys = draw(st.lists(st.sampled_from(COLUMNS[kind]) | names, max_size=5, unique=True))
    frame = pl.DataFrame([draw(parquet_columns).alias(key) for key in keys])
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    data = buffer.getvalue()
    if draw(st.booleans()):  # damage it
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=8))
    return data


# File names: any bytes a Linux file system takes (no "/" or NUL), with a known or odd suffix.
file_stems = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)
suffixes = st.sampled_from([b".csv", b".jsonl", b".parquet", b".CSV", b".txt", b""])


def run_night_on(files: list[tuple[str, bytes, bytes]]) -> dict[str, Any]:
    """Writes ``(kind, name, content)`` files to a fresh inbox and runs one night on it."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for kind in KINDS:
            (root / "inbox" / kind).mkdir(parents=True)
        written = set()
        for kind, name, content in files:
            path = os.path.join(os.fsencode(root / "inbox" / kind), name)
            with open(path, "wb") as handle:
                handle.write(content)
            if not name.startswith(b"."):
                written.add((kind, name))
        params = RunParameters.build(
            inbox=root / "inbox",
            warehouse=root / "warehouse.duckdb",
            outbox=root / "outbox",
            business_date=DAY,
            # Random nights are not ordinary ones: every check would fire at random; they are
            # evaluated and kept, never stop (tests/integration/test_night_checks.py for those).
            accept_checks="all",
        )
        summary = run_night(params)
        for kind in KINDS:
            counts = summary[kind]
            assert counts["received"] == (
                counts["accepted"] + counts["duplicate"] + counts["rejected"]
            ), (kind, counts)
        assert summary["files"]["received"] == len(written)
        rejected_csv = (root / "outbox" / DAY / "rejected.csv").read_text("utf-8")
        assert rejected_csv.startswith("source_file,line,reason,raw,kind")
        return summary


def named(kind: str, content: st.SearchStrategy[bytes], suffix: bytes) -> st.SearchStrategy[Any]:
    return st.tuples(st.just(kind), file_stems.map(lambda stem: stem + suffix), content)


def inbox_files(
    content: Callable[[str], st.SearchStrategy[bytes]], suffix: bytes
) -> st.SearchStrategy[list[Any]]:
    """One to three files of that format, orders or batches, under distinct names."""
    return st.lists(
        st.sampled_from(KINDS).flatmap(lambda kind: named(kind, content(kind), suffix)),
        min_size=1,
        max_size=3,
        unique_by=lambda f: (f[0], f[1]),
    )


@nights
@given(inbox_files(csv_files, b".csv"))
def test_any_csv_files_never_crash_a_night_and_every_row_is_counted(
    files: list[tuple[str, bytes, bytes]],
) -> None:
    run_night_on(files)


@nights
@given(inbox_files(jsonl_files, b".jsonl"))
def test_any_json_lines_files_never_crash_a_night_and_every_row_is_counted(
    files: list[tuple[str, bytes, bytes]],
) -> None:
    run_night_on(files)


@nights
@given(inbox_files(parquet_files, b".parquet"))
def test_any_parquet_files_never_crash_a_night_and_every_row_is_counted(
    files: list[tuple[str, bytes, bytes]],
) -> None:
    run_night_on(files)


@nights
@given(
    st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.tuples(file_stems, suffixes).map(lambda parts: parts[0] + parts[1]),
            st.binary(max_size=200),
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda f: (f[0], f[1]),
    )
)
def test_any_bytes_under_any_name_never_crash_a_night_and_every_file_is_counted(
    files: list[tuple[str, bytes, bytes]],
) -> None:
    run_night_on(files)
