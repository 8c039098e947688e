"""The recording bench writes the same rows, in the same stored order, every way it times."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from benchmarks import recording


def a_night(path: Path, lines: int) -> None:
    """A warehouse holding `lines` order lines over three batches: every third line out of
    stock, the others placed in two batches."""
    con = duckdb.connect(str(path))
    try:
        con.execute(
            "CREATE TABLE batches AS SELECT 'BATCH-' || i AS reference, 'RETRO-CLOCK' AS sku "
            "FROM range(3) t(i)"
        )
        con.execute(
            "CREATE TABLE order_lines AS SELECT 'ORDER-' || i AS orderid, "
            "CASE WHEN i % 2 = 0 THEN 'RETRO-CLOCK' ELSE 'SMALL-TABLE' END AS sku, "
            "1 + i % 5 AS qty, "
            "CASE WHEN i % 3 = 0 THEN 'out_of_stock' ELSE 'allocated' END AS status, "
            "CASE WHEN i % 3 = 0 THEN NULL ELSE 'BATCH-' || (i % 3) END AS batchref, "
            "$day AS first_seen, CASE WHEN i % 3 = 0 THEN NULL ELSE $day END AS allocated_on, "
            "1000 + i AS arrival_seq, 'orders-' || (i // 1000) || '.csv' AS source_file, "
            "1 + i AS source_line, 'run' AS run_id, hash('ORDER-' || i, 'RETRO-CLOCK') AS line_key "
            "FROM range($n) t(i) ORDER BY i",
            {"day": dt.date(2026, 11, 26), "n": lines},
        )
    finally:
        con.close()


def test_every_way_writes_the_same_rows_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording, "RANGE_ROWS", 700)  # several ranges, the last one short
    a_night(tmp_path / "warehouse.duckdb", 2_500)
    results = recording.measure(tmp_path / "warehouse.duckdb", tmp_path / "scratch.duckdb")
    ways = [result["way"] for result in results]
    assert ways[:4] == ["join", "positional", "arrow", "narrow"]
    assert {f"column {name}" for name in recording.TEXT_COLUMNS} <= set(ways)
    digests = {result["digest"] for result in results if result["digest"] is not None}
    assert len(digests) == 1
    assert all(result["seconds"] >= 0 for result in results)
    assert not (tmp_path / "scratch.duckdb").exists()


def test_a_decision_out_of_line_with_its_lines_is_refused(tmp_path: Path) -> None:
    a_night(tmp_path / "warehouse.duckdb", 50)
    con = duckdb.connect()
    try:
        ranges = recording.prepare(con, tmp_path / "warehouse.duckdb", tmp_path / "s.duckdb")
        con.execute("DELETE FROM decisions WHERE arrival_seq = 1010")
        with pytest.raises(RuntimeError, match="not aligned"):
            recording.by_arrow(con, ranges)
    finally:
        con.close()
