"""The run's summary artifact counts each report's rows without reading a big CSV whole."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from allocation.flows.artifacts import report_files


def test_a_csv_report_takes_its_rows_from_its_parquet_twin_not_from_reading_it(
    tmp_path: Path,
) -> None:
    pl.DataFrame({"orderid": ["o1", "o2", "o3"]}).write_parquet(tmp_path / "allocations.parquet")
    # Stands for a CSV too big to read: anything that reads it fails on these bytes.
    (tmp_path / "allocations.csv").write_bytes(b'orderid\n"o1\n')
    (tmp_path / "rejected.csv").write_text("kind,reason\norders,qty 0\n", encoding="utf-8")

    rows = {f["name"]: f["rows"] for f in report_files(tmp_path)}

    assert rows == {"allocations.csv": 3, "allocations.parquet": 3, "rejected.csv": 1}
