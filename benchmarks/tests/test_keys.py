"""The keys bench compares a warehouse without the documented keys with one declaring them."""

from __future__ import annotations

from pathlib import Path

import duckdb

from benchmarks.keys import measure
from benchmarks.report import label


def constraints(path: Path) -> set[tuple[str, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql(
            "SELECT table_name, constraint_type FROM duckdb_constraints() "
            "WHERE constraint_type IN ('PRIMARY KEY', 'UNIQUE', 'FOREIGN KEY')"
        ).fetchall()
        return {(str(table), str(kind)) for table, kind in rows}
    finally:
        con.close()


def test_only_the_keys_variant_declares_the_documented_keys(tmp_path: Path) -> None:
    lines = measure(2_000, tmp_path)
    assert any("file size" in line for line in lines)
    assert constraints(tmp_path / f"plain-{label(2_000)}.duckdb") == {("batches", "PRIMARY KEY")}
    assert constraints(tmp_path / f"keys-{label(2_000)}.duckdb") == {
        ("batches", "PRIMARY KEY"),
        ("order_lines", "PRIMARY KEY"),
        ("order_lines", "UNIQUE"),
        ("allocations", "FOREIGN KEY"),
    }
