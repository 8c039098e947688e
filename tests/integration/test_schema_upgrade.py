"""Issue 4: a warehouse made by an older schema version is upgraded on open, its data intact.

The older warehouse is built the way that version built it (`migrate(con, target=N)`), with rows
inserted through that version's columns only; then the pipeline opens it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from allocation.io.unit_of_work import DuckDBUnitOfWork
from allocation.io.warehouse_comments import COMMENTS
from allocation.io.warehouse_schema import SCHEMA_VERSION, migrate
from allocation.service.state import state_db
from conftest import Site

OLD_NIGHT = dt.date(2026, 11, 24)
OLD_RUN = "old-run-1"

# Rows written the version-1 way: every column named, none of the later ones.
V1_ROWS = [
    (
        "INSERT INTO runs (run_id, business_date, started_at, finished_at, status, "
        "orders_received, orders_accepted, orders_duplicate, orders_rejected, batches_received, "
        "batches_accepted, batches_duplicate, batches_rejected, allocated, out_of_stock, "
        "files_received, files_rejected, files_skipped, input_files, rejected_files, message) "
        "VALUES (?, ?, ?, ?, 'completed', 3, 2, 0, 1, 2, 2, 0, 0, 1, 1, 2, 0, 0, ?, [], NULL)",
        [
            OLD_RUN,
            OLD_NIGHT,
            dt.datetime(2026, 11, 24, 23, 0),
            dt.datetime(2026, 11, 24, 23, 1),
            ["batches/old.csv", "orders/old.csv"],
        ],
    ),
    (
        "INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen, source_file, "
        "source_line) VALUES ('old-batch-1', 'LAMP', NULL, 10, 4, ?, 'batches/old.csv', 1), "
        "('old-batch-2', 'LAMP', DATE '2026-12-01', 5, 0, ?, 'batches/old.csv', 2)",
        [OLD_NIGHT, OLD_NIGHT],
    ),
    (
        "INSERT INTO order_lines (orderid, sku, qty, status, batchref, first_seen, allocated_on, "
        "arrival_seq, source_file, source_line, run_id) VALUES "
        "('old-order-1', 'LAMP', 4, 'allocated', 'old-batch-1', ?, ?, 1, 'orders/old.csv', 1, ?), "
        "('old-order-2', 'LAMP', 8, 'out_of_stock', NULL, ?, NULL, 2, 'orders/old.csv', 2, ?)",
        [OLD_NIGHT, OLD_NIGHT, OLD_RUN, OLD_NIGHT, OLD_RUN],
    ),
    (
        "INSERT INTO allocations (orderid, sku, qty, batchref, eta, business_date, run_id, "
        "arrival_seq) VALUES ('old-order-1', 'LAMP', 4, 'old-batch-1', NULL, ?, ?, 1)",
        [OLD_NIGHT, OLD_RUN],
    ),
    (
        "INSERT INTO ingested_files (run_id, business_date, kind, file_name, size, sha256, "
        '"rows", status, reason) VALUES '
        "(?, ?, 'batches', 'batches/old.csv', 60, 'aa', 2, 'loaded', NULL), "
        "(?, ?, 'orders', 'orders/old.csv', 70, 'bb', 3, 'loaded', NULL)",
        [OLD_RUN, OLD_NIGHT, OLD_RUN, OLD_NIGHT],
    ),
    (
        "INSERT INTO rejected_rows (run_id, business_date, kind, source_file, line, reason, raw) "
        "VALUES (?, ?, 'orders', 'orders/old.csv', 3, 'qty ''x'' is not a whole number', "
        '\'{"orderid":"old-order-3","sku":"LAMP","qty":"x"}\')',
        [OLD_RUN, OLD_NIGHT],
    ),
]

OLD_VERSIONS = list(range(1, SCHEMA_VERSION))


def make_old_warehouse(path: Path, version: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN TRANSACTION")
        assert migrate(con, target=version) == 0
        for sql, params in V1_ROWS:
            con.execute(sql, params)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def query(path: Path, sql: str) -> list[dict[str, Any]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rel = con.sql(sql)
        return [dict(zip(rel.columns, row, strict=True)) for row in rel.fetchall()]
    finally:
        con.close()


def versions(path: Path) -> list[int]:
    return [r["version"] for r in query(path, "SELECT version FROM schema_version ORDER BY 1")]


def assert_old_rows_intact(path: Path) -> None:
    [run] = query(path, "SELECT * FROM runs WHERE run_id = 'old-run-1'")
    assert run["business_date"] == OLD_NIGHT
    assert (run["orders_received"], run["allocated"], run["out_of_stock"]) == (3, 1, 1)
    assert run["input_files"] == ["batches/old.csv", "orders/old.csv"]
    assert run["batches_updated"] == 0 and run["lines_released"] == 0  # added later, defaulted
    old_batch = query(path, "SELECT * FROM batches WHERE reference = 'old-batch-1'")[0]
    assert (old_batch["purchased"], old_batch["first_seen"]) == (10, OLD_NIGHT)
    assert old_batch["updated_on"] is None
    old_line = query(path, "SELECT * FROM order_lines WHERE orderid = 'old-order-1'")[0]
    assert (old_line["status"], old_line["batchref"], old_line["arrival_seq"]) == (
        "allocated",
        "old-batch-1",
        1,
    )
    [old_allocation] = query(
        path, "SELECT * FROM allocations WHERE business_date = DATE '2026-11-24'"
    )
    assert (old_allocation["orderid"], old_allocation["released_on"]) == ("old-order-1", None)
    files = query(path, "SELECT file_name FROM ingested_files WHERE run_id = 'old-run-1'")
    assert len(files) == 2
    [rejected] = query(path, "SELECT * FROM rejected_rows WHERE run_id = 'old-run-1'")
    assert rejected["raw"] == '{"orderid":"old-order-3","sku":"LAMP","qty":"x"}'


def assert_documented(path: Path) -> None:
    objects = {
        r["name"]: r["comment"]
        for r in query(
            path,
            "SELECT table_name AS name, comment FROM duckdb_tables() UNION ALL "
            "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal",
        )
    }
    assert {name: objects.get(name) for name in COMMENTS} == {
        name: text for name, (text, _) in COMMENTS.items()
    }
    undocumented = query(
        path,
        "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal "
        "AND (comment IS NULL OR comment = '')",
    )
    assert undocumented == []


@pytest.mark.parametrize("old_version", OLD_VERSIONS)
def test_opening_an_older_warehouse_upgrades_it_once_with_its_data_intact(
    tmp_path: Path, old_version: int
) -> None:
    path = tmp_path / "state.duckdb"
    make_old_warehouse(path, old_version)
    assert versions(path) == list(range(1, old_version + 1))

    with DuckDBUnitOfWork(path) as uow:
        assert uow.schema_version_found == old_version
        uow.commit()
    with DuckDBUnitOfWork(path) as uow:
        assert uow.schema_version_found == SCHEMA_VERSION  # nothing left to do
        uow.commit()

    assert versions(path) == list(range(1, SCHEMA_VERSION + 1)), "each version recorded once"
    applied = query(path, "SELECT version, applied_at FROM schema_version ORDER BY version")
    assert all(isinstance(r["applied_at"], dt.datetime) for r in applied)
    assert_old_rows_intact(path)
    assert_documented(path)
    # The views work on the old rows: the line that waited since version 1 is still open.
    [waiting] = query(path, "SELECT * FROM out_of_stock")
    assert (waiting["orderid"], waiting["days_waiting"]) == ("old-order-2", 0)


@pytest.mark.parametrize("old_version", OLD_VERSIONS)
def test_a_night_runs_on_an_older_warehouse(
    site: Site, day: Callable[[int], str], old_version: int
) -> None:
    state = state_db(site.params(day(0)))
    make_old_warehouse(state, old_version)

    site.batches(
        "manifest.csv",
        "old-batch-2,LAMP,5,2026-12-03",  # a change to a batch version 1 stored
        "new-batch-1,LAMP,10,",
    )
    site.orders("orders.csv", "new-order-1,LAMP,2", "old-order-1,LAMP,4")
    summary = site.run(day(0))
    assert summary["batches"]["updated"]["eta"] == 1
    assert summary["orders"]["duplicate"] == 1, "a line version 1 stored is recognised"

    warehouse = site.warehouse
    assert versions(warehouse) == list(range(1, SCHEMA_VERSION + 1))
    assert_old_rows_intact(warehouse)
    assert_documented(warehouse)
    lines = {r["orderid"]: r for r in query(warehouse, "SELECT * FROM order_lines")}
    assert lines["old-order-2"]["status"] == "allocated", "the old open line got stock"
    assert lines["old-order-2"]["allocated_on"] == dt.date.fromisoformat(day(0))
    assert lines["new-order-1"]["status"] == "allocated"
    assert lines["new-order-1"]["arrival_seq"] == 3, "arrival order continues after the old rows"
    [changed] = query(warehouse, "SELECT * FROM batches WHERE reference = 'old-batch-2'")
    assert (changed["eta"], changed["updated_on"]) == (
        dt.date(2026, 12, 3),
        dt.date.fromisoformat(day(0)),
    )
    nights = query(warehouse, "SELECT business_date FROM runs ORDER BY business_date")
    assert [r["business_date"] for r in nights] == [OLD_NIGHT, dt.date.fromisoformat(day(0))]
    assert query(warehouse, "SELECT count(*) AS n FROM out_of_stock") == [{"n": 0}]


def test_an_upgrade_from_11_reads_nightly_trend_from_nightly_kpis(tmp_path: Path) -> None:
    """Version 12: the trend a version-11 warehouse computed from the runs' counters becomes a
    slice of nightly_kpis, with the same names and, for its nights, the same figures."""
    from allocation.io.unit_of_work import DuckDBUnitOfWork

    path = tmp_path / "state.duckdb"
    make_old_warehouse(path, 11)
    con = duckdb.connect(str(path))
    try:  # version 11's trend, as a version-11 night left it
        con.execute(
            "CREATE VIEW nightly_trend AS SELECT business_date, sum(orders_received) AS received, "
            "sum(orders_accepted) AS accepted, sum(orders_rejected) AS rejected, "
            "sum(allocated) AS allocated, arg_max(out_of_stock, finished_at) AS out_of_stock "
            "FROM runs GROUP BY business_date"
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    with DuckDBUnitOfWork(path) as uow:
        assert uow.schema_version_found == 11
        uow.commit()
    assert versions(path)[-(SCHEMA_VERSION - 10) :] == list(range(11, SCHEMA_VERSION + 1))
    [view] = query(path, "SELECT sql FROM duckdb_views() WHERE view_name = 'nightly_trend'")
    assert "nightly_kpis" in view["sql"]
    [trend] = query(path, "SELECT * FROM nightly_trend")
    assert (
        trend["business_date"],
        trend["received"],
        trend["accepted"],
        trend["rejected"],
        trend["allocated"],
        trend["out_of_stock"],
        trend["runs"],
    ) == (OLD_NIGHT, 3, 2, 1, 1, 1, 1)
    assert query(path, "SELECT orderid FROM open_lines_asof(DATE '2026-11-24')") == [
        {"orderid": "old-order-2"}
    ]
