"""Property-based: whatever lands in the inbox (any bytes, encoding, file name or shape of CSV,
JSON Lines or Parquet), the night completes, and every file and every row is accounted for:
received = accepted + duplicate + rejected for orders and for batches (the summary's contract).

The summary computes its `accepted` as received - duplicate - rejected, so checking that sum
against the summary alone proves nothing. Here each side is counted where it landed: accepted
rows in the warehouse (`order_lines`; `batches` and the manifest rows `batch_changes` applied),
rejected rows in `rejected.csv`. For inboxes built from a model kept in the test
(`test_a_modelled_inbox_...`), every count, every stored row and every rejected line is
predicted from the model, duplicates included.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from allocation.service.night import run_night
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
        landed = accepted_in_warehouse(root / "warehouse.duckdb")
        rejected = rejected_lines(root / "outbox" / DAY / "rejected.csv")
        for kind in KINDS:
            counts = summary[kind]
            assert counts["received"] == (
                landed[kind] + counts["duplicate"] + len(rejected[kind])
            ), (kind, counts, landed, rejected)
            assert counts["accepted"] == landed[kind], (kind, counts, landed)
        assert summary["files"]["received"] == len(written)
        return summary


def accepted_in_warehouse(warehouse: Path) -> dict[str, int]:
    """Rows that reached the warehouse after one night on a new one: each accepted order line
    is a row of `order_lines`; each accepted manifest row made a batch or changed one."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        [(lines, new_batches, changes)] = con.sql(
            "SELECT (SELECT count(*) FROM order_lines), (SELECT count(*) FROM batches), "
            "(SELECT count(DISTINCT (source_file, source_line)) FROM batch_changes)"
        ).fetchall()
    finally:
        con.close()
    return {"orders": lines, "batches": new_batches + changes}


def rejected_lines(path: Path) -> dict[str, list[tuple[str, int]]]:
    """(file, line) of every rejected row of `rejected.csv`, by kind (a file rejected whole has
    no line: it is not a row)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["source_file", "line", "reason", "raw", "kind"]
        rows = list(reader)
    return {
        kind: [(r["source_file"], int(r["line"])) for r in rows if r["kind"] == kind and r["line"]]
        for kind in KINDS
    }


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
@example([("orders", b".\x80.csv", b"")])  # hidden and not UTF-8: ignored, not rejected
def test_any_bytes_under_any_name_never_crash_a_night_and_every_file_is_counted(
    files: list[tuple[str, bytes, bytes]],
) -> None:
    run_night_on(files)


# -- an inbox built from a model ------------------------------------------------------------------
# Rows drawn from few keys (so duplicates, conflicts and manifest updates are common) and a few
# kinds of bad value; each file in one of the three formats. The model below predicts the night.
FORMATS = ("csv", "jsonl", "parquet")
good_orders = st.fixed_dictionaries(
    {
        "orderid": st.sampled_from(["o1", "o2", "O1"]),
        "sku": st.sampled_from(["LAMP", "RETRO-CLOCK"]),
        "qty": st.integers(1, 3).map(str),
    }
)
bad_order_values = st.sampled_from(
    [{"qty": "0"}, {"qty": "-2"}, {"qty": "two"}, {"qty": ""}, {"orderid": ""}, {"sku": ""}]
)
good_batches = st.fixed_dictionaries(
    {
        "reference": st.sampled_from(["B1", "B2", "b1"]),
        "sku": st.sampled_from(["LAMP", "RETRO-CLOCK"]),
        "qty": st.integers(0, 3).map(str),
        "eta": st.sampled_from([None, "2026-12-01", "2026-12-24"]),
    }
)
bad_batch_values = st.sampled_from(
    [{"qty": "-1"}, {"qty": "1.5"}, {"eta": "2026-02-30"}, {"reference": ""}, {"sku": ""}]
)
MODEL_ROWS = {
    "orders": st.one_of(
        good_orders, st.tuples(good_orders, bad_order_values).map(lambda t: {**t[0], **t[1]})
    ),
    "batches": st.one_of(
        good_batches, st.tuples(good_batches, bad_batch_values).map(lambda t: {**t[0], **t[1]})
    ),
}
modelled_files = st.lists(
    st.sampled_from(KINDS).flatmap(
        lambda kind: st.tuples(
            st.just(kind),
            st.sampled_from(FORMATS),
            st.lists(MODEL_ROWS[kind], min_size=1, max_size=6),
        )
    ),
    min_size=1,
    max_size=4,
)


def is_valid(kind: str, row: dict[str, str | None]) -> bool:
    qty = row["qty"] or ""
    if not (row["sku"] and row["orderid" if kind == "orders" else "reference"]):
        return False
    if not qty.lstrip("-").isdigit() or int(qty) < (1 if kind == "orders" else 0):
        return False
    eta = row.get("eta")
    return eta is None or eta != "2026-02-30"


@dataclass
class Model:
    """What the night must do with the modelled files, kept without the pipeline's code."""

    counts: dict[str, dict[str, int]]
    lines: dict[tuple[str, str], int]  # (orderid, sku) -> qty
    batches: dict[str, tuple[str, int, dt.date | None]]  # reference -> (sku, qty, eta)
    rejected: dict[str, list[tuple[str, int]]]  # kind -> (file, line)

    @classmethod
    def of(cls, named: list[tuple[str, str, list[dict[str, str | None]]]]) -> Model:
        model = cls(
            {k: {"received": 0, "accepted": 0, "duplicate": 0, "rejected": 0} for k in KINDS},
            {},
            {},
            {k: [] for k in KINDS},
        )
        for kind, name, rows in sorted(named, key=lambda f: f[1]):  # the arrival order
            for line, row in enumerate(rows, start=1):
                model.counts[kind]["received"] += 1
                verdict = model.take(kind, row) if is_valid(kind, row) else "rejected"
                model.counts[kind][verdict] += 1
                if verdict == "rejected":
                    model.rejected[kind].append((name, line))
        return model

    def take(self, kind: str, row: dict[str, str | None]) -> str:
        sku, qty = str(row["sku"]), int(str(row["qty"]))
        if kind == "orders":
            key = (str(row["orderid"]), sku)
            if key not in self.lines:
                self.lines[key] = qty
                return "accepted"
            return "duplicate" if self.lines[key] == qty else "rejected"  # a conflict
        eta = dt.date.fromisoformat(row["eta"]) if row["eta"] else None
        reference = str(row["reference"])
        if reference not in self.batches:
            self.batches[reference] = (sku, qty, eta)
            return "accepted"
        if self.batches[reference][0] != sku:
            return "rejected"  # a batch never changes sku
        if self.batches[reference] == (sku, qty, eta):
            return "duplicate"
        self.batches[reference] = (sku, qty, eta)
        return "accepted"  # a manifest update


def write_modelled(path: Path, kind: str, rows: list[dict[str, str | None]]) -> None:
    columns = COLUMNS[kind]
    if path.suffix == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([[row.get(c) or "" for c in columns] for row in rows])
    elif path.suffix == ".jsonl":
        path.write_text(
            "".join(json.dumps({c: row.get(c) for c in columns}) + "\n" for row in rows)
        )
    else:
        schema = dict.fromkeys(columns, pl.String)
        pl.DataFrame(
            [{c: row.get(c) for c in columns} for row in rows], schema=schema
        ).write_parquet(path)


@settings(max_examples=_PROFILE_EXAMPLES)  # small rows: the profile's 15 in `make test`
@given(modelled_files)
def test_a_modelled_inbox_is_counted_stored_and_rejected_as_the_model_predicts(
    files: list[tuple[str, str, list[dict[str, str | None]]]],
) -> None:
    named = [(kind, f"{kind}/{n:02d}.{fmt}", rows) for n, (kind, fmt, rows) in enumerate(files)]
    model = Model.of([(kind, name, rows) for kind, name, rows in named])
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for kind in KINDS:
            (root / "inbox" / kind).mkdir(parents=True)
        for kind, name, rows in named:
            write_modelled(root / "inbox" / name, kind, rows)
        params = RunParameters.build(
            inbox=root / "inbox",
            warehouse=root / "warehouse.duckdb",
            outbox=root / "outbox",
            business_date=DAY,
        )

        summary = run_night(params)

        for kind in KINDS:
            assert {k: summary[kind][k] for k in model.counts[kind]} == model.counts[kind], kind
        rejected = rejected_lines(root / "outbox" / DAY / "rejected.csv")
        assert {k: sorted(v) for k, v in rejected.items()} == model.rejected
        con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
        try:
            lines = con.sql("SELECT orderid, sku, qty FROM order_lines").fetchall()
            batches = con.sql("SELECT reference, sku, purchased, eta FROM batches").fetchall()
        finally:
            con.close()
        assert {(o, s): q for o, s, q in lines} == model.lines
        assert len(lines) == len(model.lines)
        assert {r: (s, q, e) for r, s, q, e in batches} == model.batches
