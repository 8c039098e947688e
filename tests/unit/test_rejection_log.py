"""The rejection log counts rows per file and reason: the same lines whether the rows come as one
frame or chunk by chunk (the night reads them from DuckDB in chunks, never all at once)."""

from __future__ import annotations

import logging

import polars as pl
import pytest

from allocation.io.rejection_log import log_rejected_rows
from allocation.io.validation import rejection_frame


def rejections() -> pl.DataFrame:
    rows = [
        {"kind": "orders", "source_file": "orders/a.csv", "line": None, "reason": "empty file"},
        *(
            {
                "kind": "orders",
                "source_file": "orders/b.csv",
                "line": line,
                "reason": f"qty '-{line}' must be at least 1",
            }
            for line in (9, 3, 5, 12)
        ),
        {"kind": "orders", "source_file": "orders/b.csv", "line": 4, "reason": "sku is empty"},
        {"kind": "orders", "source_file": "orders/b.csv", "line": 7, "reason": "orderid is empty"},
        {
            "kind": "orders",
            "source_file": "orders/b.csv",
            "line": 8,
            "reason": "qty 'ten' is not a whole number",
        },
        *(
            {
                "kind": "batches",
                "source_file": "batches/m.csv",
                "line": line,
                "reason": f"reason number {line} of its own kind",
            }
            for line in range(1, 9)
        ),
    ]
    return rejection_frame(rows)


def logged(caplog: pytest.LogCaptureFixture, rejected: object) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="allocation"):
        log_rejected_rows(rejected, reasons_per_file=3)  # type: ignore[arg-type]
    return [record.getMessage() for record in caplog.records]


def test_rejections_logged_chunk_by_chunk_read_as_when_logged_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    whole = logged(caplog, rejections())
    chunked = logged(caplog, rejections().iter_slices(2))

    assert chunked == whole
    assert whole == [
        "batches/m.csv: 8 row(s) rejected: reason number … of its own kind "
        "(e.g. line 1: reason number 1 of its own kind)",
        "orders/b.csv: 4 row(s) rejected: qty '…' must be at least … "
        "(e.g. line 3: qty '-3' must be at least 1)",
        "orders/b.csv: 1 row(s) rejected: sku is empty (line 4)",
        "orders/b.csv: 1 row(s) rejected: orderid is empty (line 7)",
        "orders/b.csv: 1 row(s) rejected for 1 other reason(s): see rejected.csv",
    ]


def test_no_rejected_row_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert logged(caplog, iter([])) == []
    assert logged(caplog, rejections().filter(pl.col("line").is_null())) == []
