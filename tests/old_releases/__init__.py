"""Warehouses made by older releases, for the upgrade tests (README.md here says how they were
built). Each fixture is the working state (`state.duckdb`) after the nights in `HISTORY` (and,
for the version-4 one, `V4_NIGHT` too), gzipped.

`HISTORY` is what the old releases received; the tests that open a fixture use it to know what
a correct upgrade must remember (which manifest rows each file name already delivered).
"""

from __future__ import annotations

import datetime as dt
import gzip
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: The releases the fixtures come from: schema version -> (commit, fixture file).
RELEASES = {
    2: ("918b41e", "v2-state.duckdb.gz"),
    3: ("48b2e1c", "v3-state.duckdb.gz"),
    # Today's code before schema 5 (the faulty v4 upgrade), run for one more night on the
    # version-3 fixture: a warehouse the v4 upgrade already missed.
    4: ("b7b2567", "v4-state.duckdb.gz"),
}

Files = dict[str, list[str]]  # inbox path -> data rows (the header is the kind's usual one)

#: The nights every old release ran, in order: business date, the inbox (cleared before each).
HISTORY: list[tuple[dt.date, Files]] = [
    (
        dt.date(2026, 11, 1),
        {
            "batches/m1.csv": [
                "B-LAMP-1,LAMP,4,",
                "B-LAMP-2,LAMP,10,2026-11-20",
                "B-CLOCK-1,CLOCK,5,",
            ],
            "orders/o1.csv": ["o1,LAMP,4", "o2,CLOCK,2"],
        },
    ),
    (
        dt.date(2026, 11, 2),
        {
            # qty up; qty down and a new eta on one row (two batch_changes rows for one line)
            "batches/m2.csv": ["B-LAMP-1,LAMP,10,", "B-LAMP-2,LAMP,6,2026-11-25"],
            "orders/o2.csv": ["o3,LAMP,5"],
        },
    ),
]

#: The night the version-4 code ran on the version-3 fixture (upgrading it to version 4): a
#: batch whose eta is year 0 (accepted by that code; a later order for RADIO crashed every
#: night) and an order for another sku.
V4_NIGHT: tuple[dt.date, Files] = (
    dt.date(2026, 11, 3),
    {
        "batches/m3.csv": ["B-RADIO-0,RADIO,5,0000-01-01", "B-DESK-1,DESK,2,"],
        "orders/o3.csv": ["o4,DESK,1"],
    },
)

HEADERS = {"batches": "reference,sku,qty,eta", "orders": "orderid,sku,qty"}


def write_inbox(inbox: Path, files: Files) -> None:
    """Empties `inbox` (its batches/ and orders/) and writes `files` into it."""
    for kind in HEADERS:
        folder = inbox / kind
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for name, rows in files.items():
        header = HEADERS[name.split("/", 1)[0]]
        (inbox / name).write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def install(version: int, state_db: Path) -> Path:
    """Puts the working state made by the release of schema `version` at `state_db`."""
    state_db.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(HERE / RELEASES[version][1], "rb") as packed, state_db.open("wb") as out:
        shutil.copyfileobj(packed, out)
    return state_db
