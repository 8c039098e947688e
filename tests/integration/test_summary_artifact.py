"""The summary artifact as an engineer reads it in the Prefect UI: counts with thousands
separators, the first rejected rows with their reasons, and where the reports are in words."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import polars as pl

from allocation.flows.artifacts import summary_markdown
from allocation.settings import RunParameters


def counts(received: int, rejected: int) -> dict[str, int]:
    return {
        "received": received,
        "accepted": received - rejected,
        "duplicate": 0,
        "rejected": rejected,
    }


def big_night(folder: Path) -> dict[str, object]:
    folder.mkdir(parents=True)
    pl.DataFrame(
        {
            "sku": ["RETRO-CLOCK"],
            "qty": [1_500],
            "available": [0],
            "next_eta": [dt.date(2026, 12, 1)],
        }
    ).write_parquet(folder / "out_of_stock.parquet")
    rows = [f"orders/o.csv,{n},qty 'x{n}' is not a whole number,{{}},orders" for n in range(1, 13)]
    rows[0] = 'orders/o.csv,1,"sku has a | pipe and <b>markup</b>",{},orders'
    (folder / "rejected.csv").write_text(
        "source_file,line,reason,raw,kind\n" + "\n".join(rows) + "\n"
    )
    return {
        "business_date": "2026-11-25",
        "orders": counts(1_234_567, 12),
        "batches": {**counts(2_000, 0), "updated": {"eta": 1_001, "qty_up": 0}},
        "allocated": 1_000_000,
        "out_of_stock": 234_555,
        "lines_released": 0,
        "lines_replaced": 0,
        "files": {
            "received": 3,
            "rejected": 0,
            "skipped_already_ingested": 0,
            "rejected_files": [],
        },
    }


def test_the_summary_reads_well_in_the_ui(tmp_path: Path) -> None:
    """Old code: counts without separators (1234567), no rejected rows (rejected.csv is on the
    worker's disk), and file:// links a browser will not open."""
    folder = tmp_path / "outbox" / "2026-11-25"
    summary = big_night(folder)
    params = RunParameters.build(
        inbox=tmp_path / "inbox",
        warehouse=tmp_path / "warehouse.duckdb",
        outbox=tmp_path / "outbox",
        business_date="2026-11-25",
    )

    text = summary_markdown(summary, folder, params, None)

    assert "| orders | 1,234,567 | 1,234,555 | 0 | 12 |" in text
    assert "**Allocated:** 1,000,000" in text and "eta 1,001" in text
    assert "## Rejected rows (the first 10 of 12; every one in rejected.csv)" in text
    assert "| qty 'x2' is not a whole number | orders/o.csv | 2 |" in text
    assert "| sku has a \\| pipe and &lt;b&gt;markup&lt;/b&gt; | orders/o.csv | 1 |" in text
    assert "x11" not in text  # only the first 10
    assert "file://" not in text
    assert f"on the worker's machine `{socket.gethostname()}`, in the folder `{folder}`" in text
