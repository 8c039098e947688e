"""The narrow-rows read bench answers every query the same over both layouts, on a warehouse a
real night wrote, and leaves its scratch folder behind it only when asked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from allocation.service.night import run_night
from allocation.settings import RunParameters
from benchmarks import narrow_reads
from benchmarks.generate import generate

NIGHT = dt.date(2026, 11, 26)


def a_night(tmp_path: Path) -> Path:
    """The analysts' copy of one generated night of 3,000 lines (some left out of stock)."""
    generate(3_000, tmp_path / "inbox", seed=7)
    params = RunParameters.build(
        business_date=NIGHT,
        inbox=tmp_path / "inbox",
        warehouse=tmp_path / "warehouse.duckdb",
        outbox=tmp_path / "outbox",
        inbox_settle_seconds=0,
    )
    run_night(params)
    return tmp_path / "warehouse.duckdb"


def test_both_layouts_give_the_same_rows_in_the_same_order(tmp_path: Path) -> None:
    wide, narrow = narrow_reads.build(a_night(tmp_path), tmp_path / "scratch")
    results = narrow_reads.measure(wide, narrow)

    by_layout = {
        layout: {r["query"]: (r["rows"], r["digest"]) for r in results if r["layout"] == layout}
        for layout in ("wide", "narrow")
    }
    assert set(by_layout["wide"]) == set(narrow_reads.QUERIES)
    assert by_layout["narrow"] == by_layout["wide"]
    assert by_layout["wide"]["allocations report"][0] > 0
    assert by_layout["wide"]["out_of_stock report"][0] > 0


def test_the_command_cleans_its_scratch_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    warehouse = a_night(tmp_path)
    narrow_reads.main(["--warehouse", str(warehouse), "--scratch", str(tmp_path / "scratch")])

    lines = capsys.readouterr().out.splitlines()
    assert '"storage_mib"' in lines[0]
    assert len(lines) == 1 + 2 * len(narrow_reads.QUERIES)
    assert not (tmp_path / "scratch").exists()
