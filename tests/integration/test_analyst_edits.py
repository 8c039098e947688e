"""Issue 23 item 8: an analyst's edit to the published copy never blocks the next night, which
replaces it; a DuckDB file that really is someone else's still is never replaced."""

from __future__ import annotations

import duckdb
import pytest

from allocation import cli
from allocation.io.unit_of_work import WarehouseError
from conftest import Site


def first_night(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP-1,LAMP,20,")
    site.orders("o1.csv", "o1,LAMP,2")
    site.run("2026-11-01")


def analyst(site: Site, *statements: str) -> None:
    con = duckdb.connect(str(site.warehouse))  # read-write, as an analyst may open it
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


@pytest.mark.parametrize(
    "edit",
    [
        ("DROP TABLE runs",),
        ("DROP TABLE runs", "DROP TABLE allocations", "DROP VIEW out_of_stock"),
        ("DROP TABLE order_lines", "CREATE TABLE my_notes AS SELECT 1 AS x"),
        ("DROP TABLE schema_version", "DROP TABLE ingested_files", "DROP TABLE runs"),
    ],
)
def test_an_analysts_edit_to_the_published_copy_never_blocks_the_next_night(
    site: Site, edit: tuple[str, ...]
) -> None:
    first_night(site)
    analyst(site, *edit)
    site.orders("o2.csv", "o2,LAMP,3")
    summary = site.run("2026-11-02")
    assert summary["allocated"] == 1
    assert site.query("SELECT count(*) FROM runs") == [(2,)], "the next publish replaced it"
    assert site.query("SELECT orderid FROM order_lines ORDER BY 1") == [("o1",), ("o2",)]


def test_a_published_copy_an_analyst_emptied_is_replaced(site: Site) -> None:
    first_night(site)
    con = duckdb.connect(str(site.warehouse))
    views = [
        v for (v,) in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    ]
    tables = [t for (t,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()]
    for view in views:
        con.execute(f'DROP VIEW "{view}"')
    for table in tables:
        con.execute(f'DROP TABLE "{table}"')
    con.close()
    site.run("2026-11-02")
    assert site.query("SELECT count(*) FROM runs") == [(2,)]


@pytest.mark.parametrize(
    "foreign",
    [
        "CREATE TABLE precious AS SELECT 42 AS answer",
        # named like the pipeline's tables, but not its own documented ones
        "CREATE TABLE runs AS SELECT 42 AS answer; CREATE TABLE batches (x INT)",
        "CREATE TABLE runs AS SELECT 42 AS answer; COMMENT ON TABLE runs IS 'mine'",
    ],
)
def test_a_foreign_database_where_the_pipeline_published_before_is_still_refused(
    site: Site, foreign: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first_night(site)
    site.warehouse.unlink()  # someone puts their own database at the path
    analyst(site, *foreign.split("; "))
    with pytest.raises(WarehouseError, match="did not create"):
        site.run("2026-11-02")
    code = cli.main(
        ["run", "--inbox", str(site.inbox), "--warehouse", str(site.warehouse), "--outbox",
         str(site.outbox), "--business-date", "2026-11-02"]
    )  # fmt: skip
    assert code == 3
    assert "did not create" in capsys.readouterr().err
    assert site.query("SELECT answer FROM runs" if "runs" in foreign else "SELECT 42") == [(42,)]
