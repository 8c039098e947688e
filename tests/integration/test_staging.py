"""Issue 14: tonight's rows go from the inbox into the run's DuckDB staging file one file at a
time, and the night classifies its orders from there partition by partition. What a user
notices: the same answers as classifying the whole night at once, and no staging file left
behind once the night has committed or rolled back (after a kill at any point, the rerun
leaves none either: tests/integration/test_crash_safety.py)."""

from __future__ import annotations

import datetime as dt
import re

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.io import staged_night, staging
from allocation.io.ingest import classify_orders
from allocation.io.unit_of_work import DuckDBUnitOfWork
from allocation.service import loading, night_transaction
from allocation.service.engine.by_chunks import allocate_candidates
from allocation.service.engine.sources import Candidates
from allocation.service.state import state_db
from allocation.settings import RunParameters
from conftest import Site

NIGHT_1 = "2026-11-25"
NIGHT_2 = "2026-11-26"


def staging_files(site: Site) -> list[str]:
    folder = site.params(NIGHT_1).state_folder.load
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def a_night(site: Site) -> None:
    site.batches("m.csv", "B-CLOCK,RETRO-CLOCK,10,", "B-LAMP,BLUE-LAMP,1,")
    site.orders("o1.csv", "o1,RETRO-CLOCK,2", "o2,BLUE-LAMP,3", "o3,RETRO-CLOCK,x")


# -- the staging file's life -------------------------------------------------------------------
def test_no_staging_file_is_left_after_a_committed_night(site: Site) -> None:
    a_night(site)

    site.run(NIGHT_1)

    assert staging_files(site) == []
    assert site.query("SELECT count(*) FROM order_lines") == [(2,)]


def test_no_staging_file_is_left_after_a_dry_run(site: Site) -> None:
    a_night(site)

    site.run(NIGHT_1, dry_run=True)

    assert staging_files(site) == []


def test_no_staging_file_is_left_after_a_night_that_failed(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_night(site)

    def broken(candidates: Candidates) -> None:
        raise RuntimeError("the allocator broke")

    real = night_transaction.allocate_night
    monkeypatch.setattr(
        night_transaction,
        "allocate_night",
        lambda params, night, run_id, started, **_: real(params, night, run_id, started, broken),
    )
    with pytest.raises(RuntimeError, match="the allocator broke"):
        site.run(NIGHT_1)

    assert staging_files(site) == []
    assert not site.warehouse.exists()  # nothing published


def test_a_retried_allocate_step_reads_the_same_staging_file_again(site: Site) -> None:
    """The flow retries the allocate step on an I/O error: the staging file must still be there
    and give the same night."""
    a_night(site)
    params = site.params(NIGHT_1)
    night = loading.load_inbox(params, "run-1", set())
    calls = 0

    def flaky(candidates: Candidates) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("the network file system hiccupped")
        allocate_candidates(candidates, workers=1)

    started = dt.datetime.now(dt.UTC)
    with pytest.raises(OSError, match="hiccupped"):
        night_transaction.allocate_night(params, night, "run-1", started, flaky)
    assert night.staging.exists()

    outcome = night_transaction.allocate_night(params, night, "run-1", started, flaky)

    assert outcome.counts["orders_accepted"] == 2
    assert outcome.counts["orders_rejected"] == 1
    assert not night.staging.exists()  # committed: removed


def test_an_allocate_step_whose_staging_file_is_gone_says_to_run_the_night_again(
    site: Site,
) -> None:
    a_night(site)
    params = site.params(NIGHT_1)
    night = loading.load_inbox(params, "run-1", set())
    night.discard()

    with pytest.raises(staged_night.StagingError, match="run the night again"):
        night_transaction.allocate_night(params, night, "run-1", dt.datetime.now(dt.UTC))


def test_a_leftover_staging_file_is_removed_by_the_next_run(site: Site) -> None:
    a_night(site)
    folder = site.params(NIGHT_1).state_folder.load
    folder.mkdir(parents=True)
    (folder / "killed-run.duckdb").write_bytes(b"half a file")
    (folder / "killed-run.duckdb.wal").write_bytes(b"")

    site.run(NIGHT_1)

    assert staging_files(site) == []


# -- classification in partitions -------------------------------------------------------------
def classify_in_partitions(
    params: RunParameters, night: loading.ValidatedInbox, partition_rows: int
) -> tuple[int, pl.DataFrame, pl.DataFrame]:
    """What `StagedNight.classify_orders` leaves for the night (rolled back after)."""
    with (
        DuckDBUnitOfWork(state_db(params)) as uow,
        staged_night.attached(uow.con, night.staging) as staged,
    ):
        duplicates = staged.classify_orders(7, partition_rows)
        lines = uow.con.sql(
            "SELECT * EXCLUDE (key_hash) FROM night_lines ORDER BY arrival_seq"
        ).pl()
        # each line carries the hash it is recorded with as its `line_key`
        assert not uow.con.sql(
            "SELECT count(*) FROM night_lines WHERE key_hash IS DISTINCT FROM hash(orderid, sku)"
        ).fetchall()[0][0]
        rejected = uow.con.sql(
            "SELECT kind, source_file, line, reason, raw FROM night_rejected ORDER BY seq"
        ).pl()
    return duplicates, lines, rejected


def classify_at_once(
    params: RunParameters, night: loading.ValidatedInbox
) -> tuple[int, pl.DataFrame, pl.DataFrame]:
    """Today's classification of the whole night in one polars frame, numbered like tonight's."""
    with DuckDBUnitOfWork(state_db(params)) as uow, staged_night.attached(uow.con, night.staging):
        tonight = uow.con.sql(
            "SELECT source_file, line, orderid, sku, qty, raw FROM tonight.orders ORDER BY seq"
        ).pl()
        found = classify_orders(tonight, uow.repo.known_lines(tonight))
    lines = found.new.with_row_index("arrival_seq", offset=7).select(
        pl.col("arrival_seq").cast(pl.Int64), "orderid", "sku", "qty", "source_file", "line"
    )
    return found.duplicates, lines, found.rejected


def repeated_keys_night(site: Site) -> None:
    """Keys repeated within a file and across files, the same and with other quantities, and
    keys an earlier night already holds."""
    site.orders(
        "a.csv",
        "o1,RETRO-CLOCK,2",
        "o2,BLUE-LAMP,1",
        "o1,RETRO-CLOCK,2",  # a duplicate within the file
        "o3,RETRO-CLOCK,5",
        "o1,RETRO-CLOCK,3",  # a conflict within the file
        "old-1,OAK-SHELF,4",  # known from night 1, same qty: a duplicate
        "old-2,OAK-SHELF,9",  # known from night 1, another qty: a conflict
    )
    site.orders(
        "b.csv",
        "o2,BLUE-LAMP,1",  # a duplicate across files
        "o3,RETRO-CLOCK,6",  # a conflict across files
        "o4,BLUE-LAMP,1",
        "o5,RETRO-CLOCK,1",
        "o4,BLUE-LAMP,1",
        "old-1,OAK-SHELF,5",
    )


def test_a_night_repeating_keys_classifies_in_partitions_as_all_at_once(site: Site) -> None:
    site.orders("night-1.csv", "old-1,OAK-SHELF,4", "old-2,OAK-SHELF,1")
    site.run(NIGHT_1)
    site.clear_inbox()
    repeated_keys_night(site)
    params = site.params(NIGHT_2)
    night = loading.load_inbox(params, "run-2", set())

    at_once = classify_at_once(params, night)
    one_partition = classify_in_partitions(params, night, 1_000_000)
    many = classify_in_partitions(params, night, 2)  # 7 partitions of 13 rows

    assert at_once[0] == one_partition[0] == many[0] == 4
    assert at_once[1].equals(one_partition[1]) and at_once[1].equals(many[1])
    assert at_once[2].equals(one_partition[2]) and at_once[2].equals(many[2])
    assert many[1]["orderid"].to_list() == ["o1", "o2", "o3", "o4", "o5"]
    assert many[2]["reason"].to_list() == [
        "order o1 sku RETRO-CLOCK with qty 3 conflicts with the line received in "
        "orders/a.csv line 1 with qty 2",
        "order old-2 sku OAK-SHELF with qty 9 conflicts with the line received on 2026-11-25 "
        "(orders/night-1.csv line 2) with qty 1",
        "order o3 sku RETRO-CLOCK with qty 6 conflicts with the line received in "
        "orders/a.csv line 4 with qty 5",
        "order old-1 sku OAK-SHELF with qty 5 conflicts with the line received on 2026-11-25 "
        "(orders/night-1.csv line 1) with qty 4",
    ]


order_rows = st.lists(
    st.tuples(
        st.sampled_from(["o1", "o2", "o3", "o4"]),
        st.sampled_from(["RETRO-CLOCK", "BLUE-LAMP"]),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    history=st.lists(order_rows, min_size=0, max_size=1),
    files=st.lists(order_rows, min_size=1, max_size=3),
    partition_rows=st.integers(1, 5),
)
def test_any_night_classifies_in_partitions_as_all_at_once(
    tmp_path_factory: pytest.TempPathFactory,
    history: list[list[tuple[str, str, int]]],
    files: list[list[tuple[str, str, int]]],
    partition_rows: int,
) -> None:
    site = Site(tmp_path_factory.mktemp("night"))
    for rows in history:
        site.orders("history.csv", *(f"{o},{s},{q}" for o, s, q in rows))
        site.run(NIGHT_1)
        site.clear_inbox()
    for n, rows in enumerate(files):
        site.orders(f"part-{n}.csv", *(f"{o},{s},{q}" for o, s, q in rows))
    params = site.params(NIGHT_2)
    night = loading.load_inbox(params, "run-2", set())

    at_once = classify_at_once(params, night)
    partitioned = classify_in_partitions(params, night, partition_rows)

    assert partitioned[0] == at_once[0]
    assert partitioned[1].equals(at_once[1])
    assert partitioned[2].equals(at_once[2])


# -- tonight's lines read range by range -------------------------------------------------------
def _row_groups_scanned(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, int]:
    """(scanned, in all) of the biggest table `sql` scans, from DuckDB's EXPLAIN ANALYZE."""
    plan = "\n".join(str(row[1]) for row in con.sql(f"EXPLAIN ANALYZE {sql}").fetchall())
    found = re.findall(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    assert found, plan
    return max(((int(scanned), int(groups)) for scanned, groups in found), key=lambda n: n[1])


@pytest.mark.parametrize("repeated", [False, True], ids=["all-new", "one-line-repeated"])
def test_a_range_of_tonights_lines_reads_only_that_range_of_the_staged_night(
    site: Site, repeated: bool
) -> None:
    """The night is recorded range by range of arrival_seq: if each range read the whole staged
    night, recording would grow with the square of the night's lines (30M lines: 30 ranges of
    30M rows each)."""
    lines = 500_000  # DuckDB row groups hold 122,880 rows: about four of them
    orders = pl.select(
        source_file=pl.lit("orders/big.csv"),
        line=pl.int_range(2, lines + 2, dtype=pl.Int64),
        orderid=pl.format("O-{}", pl.int_range(lines)),
        sku=pl.lit("RETRO-CLOCK"),
        qty=pl.lit(1, pl.Int64),
        raw=pl.lit(None, pl.String),
    )
    if repeated:  # a duplicate: tonight's lines are then a table of their own
        orders = pl.concat([orders, orders.head(1)])
    params = site.params(NIGHT_1)
    path = params.state_folder.load_file("run-1")
    with staging.StagingWriter(path) as staged:
        staged.add("orders", orders)

    with DuckDBUnitOfWork(state_db(params)) as uow, staged_night.attached(uow.con, path) as staged:
        staged.classify_orders(1_000)
        scanned, groups = _row_groups_scanned(
            uow.con,
            "SELECT count(*), max(orderid) FROM night_lines "
            "WHERE arrival_seq >= 201000 AND arrival_seq < 301000",
        )
        assert uow.con.sql(
            "SELECT count(*), min(orderid), max(arrival_seq) FROM night_lines "
            "WHERE arrival_seq >= 201000 AND arrival_seq < 301000"
        ).fetchall() == [(100_000, "O-200000", 300_999)]

    assert groups >= 4
    assert scanned <= 2
