"""Issue 6: the night's reports stream from DuckDB chunk by chunk, validated on the way.

What a reader of the outbox must not notice: the files are byte for byte (CSV) and type for
type (Parquet) what the whole-frame writer wrote before, rows in the same order, formulas
neutralised; a row that breaks its model still stops the step and leaves the last good folder.
Chunks of a few rows here make every report span several chunks.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandera.errors
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from allocation.io import reports
from allocation.io.outbox import write_night
from allocation.io.reports import REPORT_SQL, report_params
from allocation.service.state import state_db
from conftest import Site

NIGHT_1 = "2026-11-25"
NIGHT_2 = "2026-11-26"
PAIRED = ("allocations", "out_of_stock", "reallocations")


def old_neutralise(frame: pl.DataFrame) -> pl.DataFrame:
    """The spreadsheet-formula rule of the writer before issue 6, kept here as the reference."""
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(r"^[=+\-@\t\r]"))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )


def write_whole_frames(con: duckdb.DuckDBPyConnection, day: dt.date, folder: Path) -> None:
    """What the writer before issue 6 wrote: each report read whole, then written by polars."""
    folder.mkdir(parents=True)
    for name in PAIRED:
        frame = con.sql(REPORT_SQL[name][1], params=report_params(name, day)).pl()
        old_neutralise(frame).write_csv(folder / f"{name}.csv")
        frame.write_parquet(folder / f"{name}.parquet")
    rejected = con.sql(REPORT_SQL["rejected"][1], params=report_params("rejected", day)).pl()
    old_neutralise(rejected.select("source_file", "line", "reason", "raw", "kind")).write_csv(
        folder / "rejected.csv"
    )


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "REPORT_CHUNK_ROWS", 2)


@pytest.fixture
def state(site: Site) -> Iterator[Path]:
    yield state_db(site.params(NIGHT_1))


def two_nights_with_formulas(site: Site) -> None:
    """Formula-looking ids, an out-of-stock line, a rejected row, then a manifest cut that
    moves a line (a reallocation) on the second night."""
    site.batches("1.csv", "+B1,@SUM(A1),3,", "B2,=CMD|' /C calc'!A0,1,", "B3,LAMP,10,2026-12-01")
    site.orders(
        "1.csv",
        "=1+2,@SUM(A1),2",
        "-5,@SUM(A1),9",
        '"=HYPERLINK(""http://x"")",@SUM(A1),ten',
        "@o4,=CMD|' /C calc'!A0,1",
        "o5,LAMP,4",
        "o6,LAMP,3",
        "o7,LAMP,2",
    )
    site.run(NIGHT_1)
    site.clear_inbox()
    site.batches("2.csv", "B3,LAMP,6,2026-12-01", "B4,LAMP,5,")
    site.orders("2.csv", "o8,LAMP,1", "=o9,@SUM(A1),1")
    site.run(NIGHT_2)


def same_files(new: Path, old: Path) -> None:
    assert sorted(p.name for p in new.iterdir()) == sorted(
        [*(p.name for p in old.iterdir()), "summary.json"]
    )
    for name in PAIRED:
        assert (new / f"{name}.csv").read_bytes() == (old / f"{name}.csv").read_bytes(), name
        assert pq.read_schema(new / f"{name}.parquet").equals(
            pq.read_schema(old / f"{name}.parquet"), check_metadata=True
        ), name
        assert pq.read_table(new / f"{name}.parquet").equals(
            pq.read_table(old / f"{name}.parquet")
        ), name
    assert (new / "rejected.csv").read_bytes() == (old / "rejected.csv").read_bytes()


@pytest.mark.parametrize("chunk_rows", [2, reports.REPORT_CHUNK_ROWS])
def test_streamed_reports_are_the_files_the_whole_frame_writer_wrote(
    site: Site, state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    two_nights_with_formulas(site)
    monkeypatch.setattr(reports, "REPORT_CHUNK_ROWS", chunk_rows)
    con = duckdb.connect(str(state), read_only=True)
    try:
        for night in (NIGHT_1, NIGHT_2):
            day = dt.date.fromisoformat(night)
            folder = write_night(con, day, tmp_path / "new")
            write_whole_frames(con, day, tmp_path / "old" / night)
            same_files(folder, tmp_path / "old" / night)
    finally:
        con.close()

    # Not a comparison of empty files: each kind of row is there, neutralised in CSV only.
    night_1 = tmp_path / "new" / NIGHT_1
    assert [
        line.split(",")[:4] for line in (night_1 / "allocations.csv").read_text().splitlines()[1:3]
    ] == [["'=1+2", "'@SUM(A1)", "2", "'+B1"], ["'@o4", "'=CMD|' /C calc'!A0", "1", "B2"]]
    assert pl.read_parquet(night_1 / "allocations.parquet")["orderid"][0] == "=1+2"
    assert (night_1 / "out_of_stock.csv").read_text().splitlines()[1].startswith("'-5,")
    assert "HYPERLINK" in (night_1 / "rejected.csv").read_text()
    night_2 = tmp_path / "new" / NIGHT_2
    assert pl.read_parquet(night_2 / "reallocations.parquet").height >= 1
    assert os.readlink(tmp_path / "new" / "latest") == NIGHT_2


def test_a_night_run_twice_still_lists_its_allocations_in_arrival_order(
    site: Site, state: Path, tmp_path: Path, small_chunks: None
) -> None:
    site.batches("1.csv", "b1,LAMP,1,")
    site.orders("1.csv", "first,LAMP,5", "second,LAMP,1", "third,LAMP,2", "fourth,LAMP,3")
    site.run(NIGHT_1)  # second is placed; first, third and fourth wait
    site.batches("2.csv", "b2,LAMP,10,")
    site.run(NIGHT_1)  # the same night again, with more stock: the older lines are placed now

    con = duckdb.connect(str(state), read_only=True)
    try:
        folder = write_night(con, dt.date.fromisoformat(NIGHT_1), tmp_path / "new")
        write_whole_frames(con, dt.date.fromisoformat(NIGHT_1), tmp_path / "old")
    finally:
        con.close()

    assert pl.read_parquet(folder / "allocations.parquet")["orderid"].to_list() == [
        "first",
        "second",
        "third",
        "fourth",
    ]
    same_files(folder, tmp_path / "old")


def test_a_row_that_breaks_its_model_fails_the_step_and_keeps_the_last_good_folder(
    site: Site, state: Path, small_chunks: None
) -> None:
    two_nights_with_formulas(site)
    night = site.outbox / NIGHT_2
    before = {p.name: p.read_bytes() for p in night.iterdir()}
    con = duckdb.connect(str(state))
    try:
        # The last allocation of the night: its chunk comes after others were written.
        [(good,)] = con.sql("SELECT batchref FROM allocations WHERE orderid = '=o9'").fetchall()
        con.execute("UPDATE allocations SET batchref = ' ' WHERE orderid = '=o9'")
        with pytest.raises(pandera.errors.SchemaErrors) as failed:
            write_night(con, dt.date.fromisoformat(NIGHT_2), site.outbox)

        cases = failed.value.failure_cases
        assert cases.select("column", "failure_case").rows() == [("batchref", " ")]
        assert {p.name: p.read_bytes() for p in night.iterdir()} == before
        assert os.readlink(site.outbox / "latest") == NIGHT_2
        assert not [p for p in site.outbox.rglob(".*") if ".tmp-" in p.name]

        # The connection is still usable: the row mended, it writes the same night again.
        con.execute("UPDATE allocations SET batchref = ? WHERE orderid = '=o9'", [good])
        write_night(con, dt.date.fromisoformat(NIGHT_2), site.outbox)
    finally:
        con.close()
    assert {p.name: p.read_bytes() for p in night.iterdir()} == before


def test_a_dry_run_writes_its_open_transaction_and_can_still_roll_back_after_a_bad_row(
    site: Site, state: Path, small_chunks: None
) -> None:
    two_nights_with_formulas(site)
    day = dt.date.fromisoformat(NIGHT_2)
    con = duckdb.connect(str(state))
    try:
        con.execute("BEGIN")
        con.execute("UPDATE allocations SET qty = 0 WHERE orderid = 'o8'")
        with pytest.raises(pandera.errors.SchemaErrors):
            write_night(con, day, site.outbox, dry_run=True)
        con.execute("ROLLBACK")  # the failed read left no open result behind

        con.execute("BEGIN")
        con.execute("UPDATE allocations SET batchref = '@B5' WHERE orderid = 'o8'")
        folder = write_night(con, day, site.outbox, dry_run=True)
        con.execute("ROLLBACK")
    finally:
        con.close()

    assert folder == site.outbox / NIGHT_2 / "dry-run"
    assert "o8,LAMP,1,'@B5," in (folder / "allocations.csv").read_text()
    assert "'@B5" not in (site.outbox / NIGHT_2 / "allocations.csv").read_text()
    assert os.readlink(site.outbox / "latest") == NIGHT_2


def test_a_usual_nights_allocations_are_read_as_stored_and_a_night_run_again_sorts_them(
    site: Site, state: Path
) -> None:
    """Recording appends a run's allocations in arrival order, so a usual night's report needs
    no sort; the night run again above stores earlier lines after later ones, and must."""
    day = dt.date.fromisoformat(NIGHT_1)
    site.batches("1.csv", "b1,LAMP,1,", "b2,RETRO-CLOCK,4,")
    site.orders("1.csv", "first,LAMP,5", "second,LAMP,1", "third,RETRO-CLOCK,2", "x,RETRO-CLOCK,1")
    site.run(NIGHT_1)
    with duckdb.connect(str(state), read_only=True) as con:
        assert reports.stored_in_report_order(con, "allocations", day, rows=1)

    site.batches("2.csv", "b3,LAMP,10,")
    site.run(NIGHT_1)
    with duckdb.connect(str(state), read_only=True) as con:
        assert not reports.stored_in_report_order(con, "allocations", day, rows=1)
        orderids = pl.concat(reports.report_chunks(con, "allocations", day, rows=1))["orderid"]
    assert orderids.to_list() == ["first", "second", "third", "x"]


ALLOCATION_ROWS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 6)),  # arrival_seq: missing, repeated, any order
        st.sampled_from(["run-a", "run-b", "run-c"]),
        st.booleans(),  # on the report's day, or on another one stored between its rows
    ),
    max_size=14,
    unique_by=lambda row: (row[0], row[1]),
)


@settings(max_examples=60, deadline=None)
@given(stored=ALLOCATION_ROWS, rows=st.integers(1, 5))
# A line placed twice on one day, the later run's row stored first: in one slice, then across two.
@example(stored=[(5, "run-b", True), (5, "run-a", True)], rows=5)
@example(stored=[(5, "run-b", True), (5, "run-a", True)], rows=1)
def test_the_allocations_report_is_in_arrival_order_whatever_order_the_rows_were_stored_in(
    stored: list[tuple[int | None, str, bool]], rows: int
) -> None:
    day = dt.date(2026, 11, 25)
    with duckdb.connect() as con:
        con.execute(
            "CREATE TABLE allocations (orderid VARCHAR, sku VARCHAR, qty BIGINT, "
            "batchref VARCHAR, eta DATE, business_date DATE, run_id VARCHAR, arrival_seq BIGINT)"
        )
        for number, (seq, run, on_day) in enumerate(stored):
            con.execute(
                "INSERT INTO allocations VALUES (?, 'LAMP', 1, 'b1', NULL, ?, ?, ?)",
                [f"o{number}", day if on_day else day + dt.timedelta(days=1), run, seq],
            )
        frames = list(reports.report_chunks(con, "allocations", day, rows=rows))
    got = pl.concat(frames)
    expected = sorted(
        ((seq, run, f"o{number}") for number, (seq, run, on_day) in enumerate(stored) if on_day),
        key=lambda row: (row[0] is None, row[0] or 0, row[1]),  # NULLS LAST, as DuckDB sorts
    )
    assert got["orderid"].to_list() == [orderid for _, _, orderid in expected]
    assert got["run_id"].to_list() == [run for _, run, _ in expected]
