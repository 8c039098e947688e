"""The night's candidates stream out of a real DuckDB file in chunks of whole skus, and the night
records the same warehouse whatever the chunk size and however many processes allocate."""

from __future__ import annotations

import datetime as dt
import itertools
import pickle
import random
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import duckdb
import polars as pl
import pytest

from allocation.io import night_tables
from allocation.io.candidates import DuckDBCandidates
from allocation.io.unit_of_work import DuckDBUnitOfWork
from allocation.service import night_transaction
from allocation.service.engine import by_chunks
from allocation.service.engine.columns import slices_of_skus
from conftest import Site


@contextmanager
def _warehouse_with_a_night(path: Path) -> Iterator[DuckDBUnitOfWork]:
    """Batches, two earlier lines (one waiting, one allocated) and tonight's lines, in a unit of
    work rolled back when the block ends."""
    with DuckDBUnitOfWork(path) as uow:
        _add_a_night(uow.con)
        yield uow


def _add_a_night(con: duckdb.DuckDBPyConnection) -> None:
    """HOT-LAMP: a batch of 50 and a full one, a waiting line of 1 and one of 99 (larger than
    any room: never a candidate), 120 lines tonight. SKU-00..19: 10 lines each tonight; SKU-07
    has a batch with 4 left, the others one unit each."""
    con.execute(
        "INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen) VALUES "
        "('b-hot', 'HOT-LAMP', NULL, 50, 0, DATE '2026-11-24'), "
        "('b-full', 'HOT-LAMP', NULL, 5, 5, DATE '2026-11-20'), "
        "('b-cold', 'SKU-07', NULL, 5, 1, DATE '2026-11-24')"
    )
    con.executemany(
        "INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen) "
        "VALUES (?, ?, NULL, 1, 0, DATE '2026-11-24')",
        [(f"b-{n:02d}", f"SKU-{n:02d}") for n in range(20) if n != 7],
    )
    con.execute(
        "INSERT INTO order_lines (orderid, sku, qty, status, batchref, first_seen, arrival_seq) "
        "VALUES ('huge', 'HOT-LAMP', 99, 'out_of_stock', NULL, DATE '2026-11-24', 0), "
        "('waiting', 'HOT-LAMP', 1, 'out_of_stock', NULL, DATE '2026-11-24', 1), "
        "('done', 'SKU-07', 1, 'allocated', 'b-cold', DATE '2026-11-24', 2)"
    )
    rows = [(3 + n, f"h{n}", "HOT-LAMP", 1, "o.csv", n + 2) for n in range(120)]
    rows += [(200 + n, f"c{n}", f"SKU-{n % 20:02d}", 1, "o.csv", n + 200) for n in range(200)]
    con.execute(
        "CREATE TEMP TABLE night_lines (arrival_seq BIGINT, orderid VARCHAR, sku VARCHAR, "
        "qty BIGINT, source_file VARCHAR, line BIGINT, key_hash UBIGINT)"
    )
    con.executemany("INSERT INTO night_lines VALUES (?, ?, ?, ?, ?, ?, NULL)", rows)
    con.execute("UPDATE night_lines SET key_hash = hash(orderid, sku)")


def test_candidates_come_in_chunks_of_whole_skus_biggest_first_in_arrival_order(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill"
    with _warehouse_with_a_night(tmp_path / "w.duckdb") as uow:
        candidates = DuckDBCandidates(uow.con, spill)
        batches = candidates.batches()
        with candidates.chunks(50) as (streamed_pieces, streamed_whole):
            # read side by side, as the allocator does: a piece, a whole chunk, a piece...
            pieces: list[pl.DataFrame] = []
            chunks: list[pl.DataFrame] = []
            for piece in streamed_pieces:
                pieces.append(piece)
                chunks.extend(chunk.collect() for chunk in itertools.islice(streamed_whole, 1))
            chunks.extend(chunk.collect() for chunk in streamed_whole)
            spooled = [path.name for path in spill.glob("pieces-*.parquet")]
        after = [path.name for path in spill.glob("pieces-*.parquet")]
        assert uow.con.sql("SELECT 1").fetchall() == [(1,)]  # the connection is free again

    # the waiting line, not the allocated one, nor the one no batch has room for
    assert candidates.lines == 1 + 120 + 200
    assert candidates.open_lines == 2 + 120 + 200
    # the batches with room only: a full one takes no line
    assert sorted(batches["reference"]) == sorted(
        ["b-cold", "b-hot", *(f"b-{n:02d}" for n in range(20) if n != 7)]
    )
    # the hot sku (121 lines) is bigger than a chunk: pieces of 50, in arrival order
    assert [piece.height for piece in pieces] == [50, 50, 21]
    hot = pl.concat(pieces)
    assert hot["sku"].unique().to_list() == ["HOT-LAMP"]
    assert hot["orderid"][0] == "waiting" and hot["arrival_seq"].is_sorted()
    assert len(spooled) == 1 and after == []
    sizes = [chunk.height for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 200 and max(sizes) < 100
    seen: set[str] = {"HOT-LAMP"}
    for chunk in [*pieces, *chunks]:
        assert chunk.columns == ["orderid", "sku", "qty", "arrival_seq"]
    for chunk in chunks:
        assert not set(chunk["sku"]) & seen, "a sku split between chunks"
        seen |= set(chunk["sku"])
        assert chunk.sort("sku", "arrival_seq", maintain_order=True).equals(chunk)


def test_the_columns_come_sku_by_sku_in_arrival_order_in_slices_of_whole_skus(
    tmp_path: Path,
) -> None:
    """The default (local) decision reads the night as one ordered stream cut into slices of
    whole skus: Python never holds the whole night, and the connection is free afterwards."""
    with _warehouse_with_a_night(tmp_path / "w.duckdb") as uow:
        candidates = DuckDBCandidates(uow.con, tmp_path / "spill")
        skus = candidates.skus()
        catalogue = candidates.sku_batches()
        spans = slices_of_skus(skus["lines"].to_list(), 50)
        with candidates.column_slices([lines for _, _, lines in spans]) as slices:
            got = list(slices)
        assert uow.con.sql("SELECT 1").fetchall() == [(1,)]  # the connection is free again
        with (
            candidates.column_slices([lines + 1 for _, _, lines in spans]) as too_many,
            pytest.raises(RuntimeError, match="lines short"),
        ):
            list(too_many)
        with (
            candidates.column_slices([lines for _, _, lines in spans][:-1]) as too_few,
            pytest.raises(RuntimeError, match="more lines than their skus count"),
        ):
            list(too_few)

    # 20 skus of 10 lines, then HOT-LAMP's 121 lines alone (bigger than a slice), in sku order
    assert skus["sku"].to_list() == ["HOT-LAMP", *(f"SKU-{n:02d}" for n in range(20))]
    assert catalogue.filter(pl.col("sku_rank") == 1)["reference"].to_list() == ["b-hot"]
    assert "b-full" not in catalogue["reference"].to_list()  # full: it takes no line
    assert [frame.height for frame in got] == [121, 50, 50, 50, 50]
    whole = pl.concat(got)
    assert whole.columns == ["sku_rank", "qty", "arrival_seq"]
    assert whole.sort("sku_rank", "arrival_seq").equals(whole)
    assert whole.height == candidates.lines == 321 and whole["arrival_seq"].n_unique() == 321
    for frame in got[1:]:  # no sku split between slices
        assert frame["sku_rank"].n_unique() == 5


def test_a_whole_chunk_travels_to_a_helper_as_a_scan_of_its_file_not_its_rows(
    tmp_path: Path,
) -> None:
    spill = tmp_path / "spill"
    with _warehouse_with_a_night(tmp_path / "w.duckdb") as uow:
        candidates = DuckDBCandidates(uow.con, spill)
        with candidates.chunks(1_000) as (streamed_pieces, streamed_whole):
            assert list(streamed_pieces) == []  # no sku above 1,000 lines: one whole chunk
            (chunk,) = list(streamed_whole)
            shipped = pickle.dumps(chunk)
            lines = pickle.loads(shipped).collect()  # what a spawned helper does with it
            spooled = [path.name for path in spill.glob("chunks-*/*.arrow")]
        left = [path.name for path in spill.iterdir()]

    assert lines.height == 321 and lines.columns == ["orderid", "sku", "qty", "arrival_seq"]
    assert lines.sort("sku", "arrival_seq", maintain_order=True).equals(lines)
    # the plan names the chunk's file: its size does not grow with the chunk's lines
    assert len(shipped) < 4 * 1024 < lines.estimated_size()
    assert spooled == ["1.arrow"] and left == []


def test_placements_are_kept_out_of_memory_and_the_file_is_removed(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    with _warehouse_with_a_night(tmp_path / "w.duckdb") as uow:
        candidates = DuckDBCandidates(uow.con, spill)
        by_chunks.allocate_candidates(candidates, chunk_lines=50)
        placed = candidates.load_placements()
        rows = uow.con.sql(
            "SELECT b.reference, count(*), sum(p.qty)::BIGINT FROM placements p "
            "JOIN batches b ON b.rowid = p.batch GROUP BY ALL ORDER BY 1"
        ).fetchall()

    # 50 units of the hot lamp for 121 lines, the waiting one first; 4 left of SKU-07's batch;
    # one unit of each other sku's.
    ones = [(f"b-{n:02d}", 1, 1) for n in range(20) if n != 7]
    assert rows == [*ones, ("b-cold", 4, 4), ("b-hot", 50, 50)]
    assert placed == 54 + 19
    assert list(spill.iterdir()) == []


def test_placements_a_killed_night_left_behind_are_removed_by_the_next(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "placements-0123abcd.parquet").write_bytes(b"half a file")  # killed mid-night
    (spill / "chunks-0123abcd").mkdir()  # and the whole chunks it had spooled
    (spill / "chunks-0123abcd" / "1.arrow").write_bytes(b"half a chunk")
    (spill / "duckdb_temp_storage-0.tmp").write_bytes(b"")  # DuckDB's own: not ours to touch
    with _warehouse_with_a_night(tmp_path / "w.duckdb") as uow:
        DuckDBCandidates(uow.con, spill)

    assert [path.name for path in spill.iterdir()] == ["duckdb_temp_storage-0.tmp"]


def _nights(site: Site, rng: random.Random, day: Callable[[int], str]) -> None:
    skus = [f"SKU-{n:02d}" for n in range(30)]
    for night in range(3):
        site.clear_inbox()
        picks = rng.choices(skus, weights=[30 - k for k in range(30)], k=600)
        site.orders(
            f"{night}.csv",
            *[f"N{night}-{n},{sku},{rng.randint(1, 5)}" for n, sku in enumerate(picks)],
        )
        batches = [f"B{night}-{k},{sku},{rng.randint(0, 60)}," for k, sku in enumerate(skus[::2])]
        if night == 1:
            batches += ["B0-0,SKU-00,2,", "B0-1,SKU-02,0,"]  # a batch shrinks, one is cancelled
        site.batches(f"{night}.csv", *batches)
        site.run(day(night))


def _warehouse(site: Site) -> dict[str, list[tuple[object, ...]]]:
    """Every table as stored (physical order), without run ids and timestamps."""
    con = duckdb.connect(str(site.warehouse), read_only=True)
    try:
        found = {}
        for (name,) in con.sql("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall():
            frame = con.sql(f'SELECT * FROM "{name}"').pl()  # noqa: S608
            kept = [c for c in frame.columns if c != "run_id" and not c.endswith("_at")]
            found[name] = frame.select(kept).rows()
        return found
    finally:
        con.close()


class HelpersUpFirst(by_chunks._Helpers):
    """Waits for its worker process to be up, so that it surely gets chunks."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        for started in self._started:
            started.result()


def test_a_night_records_the_same_rows_with_any_chunk_size_and_helper_processes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    day: Callable[[int], str],
) -> None:
    """The night's default decision (the whole night over integer columns, in this process)
    against the chunked one (chunks of 25 lines, hot skus in pieces, a helper process): the
    same warehouse, table by table in stored order, and the same reports."""
    one = Site(tmp_path / "one")
    _nights(one, random.Random(5), day)

    monkeypatch.setattr(by_chunks, "PARALLEL_MIN_LINES", 0)
    monkeypatch.setattr(by_chunks, "_Helpers", HelpersUpFirst)
    monkeypatch.setattr(by_chunks, "CHUNK_LINES", 25)
    chunked = partial(by_chunks.allocate_candidates, workers=2)
    allocate_night = night_transaction.allocate_night
    monkeypatch.setattr(
        night_transaction,
        "allocate_night",
        lambda *args, **kwargs: allocate_night(*args, **{**kwargs, "allocator": chunked}),
    )
    many = Site(tmp_path / "many")
    with caplog.at_level("INFO", logger="allocation"):
        _nights(many, random.Random(5), day)
    shared = [r.getMessage() for r in caplog.records if "chunks of skus" in r.getMessage()]
    assert len(shared) == 3
    for message in shared:  # "Allocated 1,234 lines in 50 chunks of skus: 600 in this process"
        total, here = re.findall(r"([\d,]+) (?:lines|in this process)", message)
        assert int(here.replace(",", "")) < int(total.replace(",", "")), message

    expected, got = _warehouse(one), _warehouse(many)
    assert got.keys() == expected.keys()
    for name, rows in expected.items():
        assert got[name] == rows, name
    assert expected["allocations"] and expected["reallocations"]
    for night in range(3):
        for name in ("allocations", "out_of_stock", "reallocations"):
            reports = [
                pl.read_parquet(site.outbox / day(night) / f"{name}.parquet").drop(
                    "run_id", strict=False
                )
                for site in (one, many)
            ]
            assert reports[0].equals(reports[1]), (night, name)


def test_a_night_recorded_range_by_range_stores_the_same_rows_in_the_same_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, day: Callable[[int], str]
) -> None:
    """A big night is recorded in ranges of arrival_seq (each range's join and sort fit in
    DuckDB's memory): the tables hold the same rows, stored in the same arrival order, as when
    the whole night is one range. Three nights, so waiting lines and reallocations span ranges."""
    whole = Site(tmp_path / "whole")
    _nights(whole, random.Random(11), day)

    monkeypatch.setattr(night_tables, "RECORD_ROWS", 7)
    ranged = Site(tmp_path / "ranged")
    _nights(ranged, random.Random(11), day)

    expected, got = _warehouse(whole), _warehouse(ranged)
    assert expected["allocations"] and expected["reallocations"]
    for name, rows in expected.items():
        assert got[name] == rows, name


def test_each_range_recorded_reads_only_its_own_placements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The placements come back in the allocator's order (by sku), not in arrival order: if
    each range of the recording scanned all of them, the step would grow with the square of
    the night. Recorded, they are in arrival order, so a range of them is a few row groups."""
    lines = 500_000  # DuckDB row groups hold 122,880 rows: about four of them
    monkeypatch.setattr(night_tables, "RECORD_ROWS", 100_000)
    uow = DuckDBUnitOfWork(tmp_path / "w.duckdb")
    with uow:
        con = uow.con
        con.execute(
            "INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen) "
            "SELECT 'B-' || s, 'SKU-' || s, NULL, $lines, 0, DATE '2026-11-24' FROM range(7) t(s)",
            {"lines": lines},
        )
        con.execute(
            "CREATE TEMP TABLE night_lines AS SELECT i AS arrival_seq, 'O-' || i AS orderid, "
            "'SKU-' || (i % 7) AS sku, 1::BIGINT AS qty, 'o.csv' AS source_file, i + 1 AS line, "
            "hash('O-' || i, 'SKU-' || (i % 7)) AS key_hash FROM range(1, $lines + 1) t(i)",
            {"lines": lines},
        )
        night_tables.create_candidate_lines(con)
        con.execute(  # by sku, as the allocator's chunks come back
            "CREATE TEMP TABLE placements AS SELECT n.arrival_seq, b.rowid AS batch, n.qty "
            "FROM night_lines n JOIN batches b USING (sku) ORDER BY n.sku, n.arrival_seq"
        )

        uow.repo.record_placements(dt.date(2026, 11, 25), "run-1")

        plan = "\n".join(
            str(row[1])
            for row in con.sql(
                "EXPLAIN ANALYZE SELECT count(*), sum(batch) FROM placements "
                "WHERE arrival_seq >= 201000 AND arrival_seq < 301000"
            ).fetchall()
        )
        scanned, groups = map(int, re.findall(r"Row Groups Scanned: (\d+) / (\d+)", plan)[0])
        recorded = con.sql(
            "SELECT count(*), count(DISTINCT batchref), min(arrival_seq), max(arrival_seq) "
            "FROM allocations"
        ).fetchall()
        stored = [seq for (seq,) in con.sql("SELECT arrival_seq FROM allocations").fetchall()]

    assert recorded == [(lines, 7, 1, lines)]
    assert stored == sorted(stored)
    assert groups >= 4
    assert scanned <= 2


def test_an_aged_warehouse_records_a_night_without_hashing_every_batch_it_ever_received(
    tmp_path: Path,
) -> None:
    """Each statement of the recording joined the placements to every batch ever received: after
    78 nights of 1M lines (1.9M batches) a night ran out of DuckDB's 384MB there, every time it
    was run. Only the batches tonight's placements name are read now. Here: 2M batches in
    history, a night of 300,000 lines, DuckDB held to 76MB on two threads; measured on this
    machine, the old statements needed more than 84MB, these need no more than 68MB."""
    path = tmp_path / "w.duckdb"
    batches = 2_000_000
    with DuckDBUnitOfWork(path) as uow:
        uow.con.execute(
            "INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen) "
            "SELECT 'BATCH-N' || (i // 25000) || '-' || lpad(i::VARCHAR, 12, '0'), "
            "'SKU-' || (i % 10000), NULL, 10, 0, DATE '2026-11-24' FROM range($n) t(i)",
            {"n": batches},
        )
        uow.con.execute(
            "INSERT INTO order_lines (orderid, sku, qty, status, batchref, first_seen, "
            "arrival_seq) SELECT 'OLD-' || i, 'SKU-' || (i % 10000), 1, 'out_of_stock', NULL, "
            "DATE '2026-11-24', i FROM range(100000) t(i)"
        )
        uow.commit()
    with DuckDBUnitOfWork(path) as uow:
        con = uow.con
        con.execute("SET threads = 2")
        con.execute("SET memory_limit = '76MB'")
        con.execute(
            "CREATE TEMP TABLE night_lines AS SELECT 100000 + i AS arrival_seq, "
            "'O-' || i AS orderid, 'SKU-' || (i % 10000) AS sku, 1::BIGINT AS qty, "
            "'o.csv' AS source_file, i + 1 AS line, hash('O-' || i, 'SKU-' || (i % 10000)) "
            "AS key_hash FROM range(300000) t(i)"
        )
        night_tables.create_candidate_lines(con)
        con.execute(  # two lines in three placed (waiting ones too), each in a batch from anywhere
            "CREATE TEMP TABLE placements AS SELECT arrival_seq, "
            "(arrival_seq * 7919) % $n AS batch, qty FROM candidate_lines "
            "WHERE arrival_seq % 3 <> 0",
            {"n": batches},
        )

        uow.repo.record_placements(dt.date(2026, 11, 25), "run-1")

        assert con.sql(
            "SELECT count(*), count(*) FILTER (WHERE a.batchref = 'BATCH-N' || "
            "((a.arrival_seq * 7919) % $n // 25000) || '-' || "
            "lpad(((a.arrival_seq * 7919) % $n)::VARCHAR, 12, '0')) FROM allocations a",
            params={"n": batches},
        ).fetchall() == [(266_666, 266_666)]
        assert con.sql(
            "SELECT status, count(*) FROM order_lines GROUP BY ALL ORDER BY ALL"
        ).fetchall() == [("allocated", 266_666), ("out_of_stock", 133_334)]
