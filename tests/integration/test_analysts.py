"""Issue 4: the analysts' warehouse is documented, always readable, and never blocks a night.

Every example query in docs/analysts.md runs against a warehouse built from the shipped sample;
the database documents itself the same way as the docs; a reader in another process holds a
connection through a whole night; and a publish that cannot replace the file loses nothing.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from allocation import cli
from allocation.io import data_dictionary
from allocation.io.publish import PublishError
from allocation.io.warehouse_comments import ANALYST_OBJECTS, COMMENTS, JOINS, KEYS
from allocation.io.warehouse_schema import SCHEMA_VERSION
from allocation.io.warehouse_view_comments import MACRO_COMMENTS
from allocation.service import after_commit
from allocation.service.state import state_db
from conftest import REPO, SAMPLE_INBOX, Site

DOC = REPO / "docs" / "analysts.md"
NIGHT_1 = "2026-11-25"
NIGHT_2 = "2026-11-26"

# What the issue promises analysts, by name (more columns may exist).
PROMISED_COLUMNS = {
    "night_checks": {
        "business_date",
        "run_id",
        "check_name",
        "level",
        "figure",
        "threshold",
        "result",
        "committed",
    },
    "nightly_trend": {
        "business_date",
        "received",
        "accepted",
        "rejected",
        "allocated",
        "out_of_stock",
        "lines_waiting",
        "oldest_wait_days",
    },
    "batches": {"reference", "sku", "eta", "purchased", "allocated", "available"},
    "order_lines": {
        "orderid",
        "sku",
        "qty",
        "status",
        "batchref",
        "first_seen",
        "allocated_on",
    },
    "allocations": {"orderid", "sku", "qty", "batchref", "eta", "business_date", "run_id"},
    "out_of_stock": {
        "orderid",
        "sku",
        "qty",
        "first_seen",
        "days_waiting",
        "available",
        "shortfall",
        "next_eta",
    },
    "stock_position": {
        "sku",
        "purchased",
        "allocated",
        "available",
        "open_demand",
        "shortfall",
        "next_eta",
    },
    "runs": {
        "run_id",
        "business_date",
        "started_at",
        "finished_at",
        "status",
        "input_files",
        "orders_received",
        "orders_accepted",
        "orders_duplicate",
        "orders_rejected",
        "batches_received",
        "batches_accepted",
        "batches_duplicate",
        "batches_rejected",
        "allocated",
        "out_of_stock",
        "files_received",
        "files_rejected",
        "files_skipped",
    },
    "rejected_rows": {"run_id", "business_date", "kind", "source_file", "line", "reason", "raw"},
    "nightly_kpis": {
        "business_date",
        "lines_received",
        "units_received",
        "lines_eligible",
        "units_eligible",
        "lines_placed",
        "units_placed",
        "lines_open",
        "units_open",
        "line_fill_rate",
        "unit_fill_rate",
        "lines_placed_from_stock",
        "lines_placed_from_incoming",
        "lines_released",
        "lines_replaced",
        "rows_rejected",
    },
    "line_waits": {"orderid", "sku", "first_seen", "first_allocated_on", "allocated_on"},
    "orders": {"orderid", "lines", "lines_allocated", "lines_open", "order_status"},
    "skus": {"sku", "on_hand_free_units", "incoming_free_units", "open_units", "open_lines"},
    "ingested_files": {
        "file_name",
        "size",
        "sha256",
        "rows",
        "business_date",
        "run_id",
    },
}


# -- building a warehouse from the sample ---------------------------------------------------
def second_night_inbox(site: Site) -> None:
    """Night 2 after the sample: new batches, a changed ETA, a batch cut (releasing a line), a
    bigger batch, new orders, one invalid row and one conflicting row."""
    site.clear_inbox()
    site.batches(
        "2026-11-26-manifest.csv",
        "batch-002,RETRO-CLOCK,50,2026-12-04",
        "batch-004,SMALL-TABLE,5,2026-12-10",
        "batch-006,VELVET-SOFA,4,2026-12-20",
        "batch-008,BLUE-CUSHION,10,",
        "batch-009,OAK-SHELF,5,2026-12-01",
    )
    site.orders(
        "2026-11-26-orders.csv",
        "order-3001,RETRO-CLOCK,5",
        "order-3002,GOLD-LAMP,3",
        "order-3003,SMALL-TABLE,0",
        "order-1001,RETRO-CLOCK,12",
        "order-3004,RETRO-CLOCK,40",
    )


def sample_site(root: Path) -> Site:
    site = Site(root)
    shutil.rmtree(site.inbox)
    shutil.copytree(SAMPLE_INBOX, site.inbox)
    return site


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The sample inbox as night 1, then a second night with changes."""
    site = sample_site(tmp_path_factory.mktemp("analysts"))
    site.run(NIGHT_1)
    second_night_inbox(site)
    site.run(NIGHT_2)
    return site


def read(path: Path, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rel = con.sql(sql)
        columns = list(rel.columns)
        return columns, [dict(zip(columns, row, strict=True)) for row in rel.fetchall()]
    finally:
        con.close()


# -- (a) every example query of the docs runs -----------------------------------------------
def doc_sql_blocks() -> list[tuple[str, str]]:
    """(title, sql) of every ```sql block; the title is the block's first `--` comment line."""
    blocks = re.findall(r"^```sql\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)
    titled = []
    for block in blocks:
        first = block.splitlines()[0]
        titled.append((first.removeprefix("--").strip() if first.startswith("--") else "", block))
    return titled


Check = Callable[[list[dict[str, Any]]], None]


def rows(n: int) -> Check:
    def check(result: list[dict[str, Any]]) -> None:
        assert len(result) == n, result

    return check


def _tonight(result: list[dict[str, Any]]) -> None:
    [row] = result
    committed = row.pop("committed_at_utc")
    assert row == {"night": dt.date(2026, 11, 26), "schema_version": SCHEMA_VERSION}
    # The sample warehouse was built by this test session, moments ago, in UTC (naive).
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert isinstance(committed, dt.datetime) and committed.tzinfo is None, committed
    assert now - dt.timedelta(hours=1) < committed <= now, (committed, now)


def _out_of_stock(result: list[dict[str, Any]]) -> None:
    by_order = {(r["orderid"], r["sku"]): r for r in result}
    assert set(by_order) == {
        ("order-3002", "GOLD-LAMP"),
        ("order-3004", "RETRO-CLOCK"),
        ("order-1005", "SMALL-TABLE"),
        ("order-1006", "GOLD-LAMP"),
        ("order-2001", "SMALL-TABLE"),
    }
    assert by_order["order-3004", "RETRO-CLOCK"]["new_tonight"] is True
    assert by_order["order-1005", "SMALL-TABLE"]["released_tonight"] is True
    assert by_order["order-2001", "SMALL-TABLE"]["days_waiting"] == 1
    assert "no one batch" in by_order["order-2001", "SMALL-TABLE"]["why"]


def _short_skus(result: list[dict[str, Any]]) -> None:
    assert [r["sku"] for r in result] == ["RETRO-CLOCK", "SMALL-TABLE", "GOLD-LAMP"]
    assert result[0]["incoming"] == "batch-002: 5 on 2026-12-04"


def _nights(result: list[dict[str, Any]]) -> None:
    assert [r["business_date"] for r in result] == [dt.date(2026, 11, 26), dt.date(2026, 11, 25)]
    assert [r["lines_allocated"] for r in result] == [4, 7]
    assert [r["lines_released"] for r in result] == [1, 0]


def _changed(result: list[dict[str, Any]]) -> None:
    assert {(r["reference"], r["change"]) for r in result} == {
        ("batch-002", "eta"),
        ("batch-004", "qty_down"),
        ("batch-006", "qty_up"),
    }


def _order(result: list[dict[str, Any]]) -> None:
    [line] = result
    assert line["status"] == "out_of_stock"
    assert line["history"] == "batch-004 on 2026-11-25 (released 2026-11-26)"


def _fill_rate(result: list[dict[str, Any]]) -> None:
    assert [r["business_date"] for r in result] == [dt.date(2026, 11, 26), dt.date(2026, 11, 25)]
    for r in result:
        assert r["line_fill_rate"] == pytest.approx(r["lines_placed"] / r["lines_eligible"], 1e-3)
    assert [r["lines_placed"] for r in result] == [4, 7]  # as "How allocation moved" counts


def _backlog_after_night_1(result: list[dict[str, Any]]) -> None:
    assert {(r["orderid"], r["sku"]) for r in result} == {
        ("order-1003", "BLUE-CUSHION"),
        ("order-1006", "GOLD-LAMP"),
        ("order-1007", "OAK-SHELF"),
        ("order-2001", "SMALL-TABLE"),
        ("order-2002", "VELVET-SOFA"),
    }
    assert all(r["days_waiting"] == 0 for r in result)


def _backlog_moves(result: list[dict[str, Any]]) -> None:
    assert [(r["lines_open"], r["backlog_change"]) for r in result] == [(5, 5), (5, 0)]
    assert [r["lines_released"] for r in result] == [0, 1]


def _backlog_each_night(result: list[dict[str, Any]]) -> None:
    # The macro once per night (LATERAL) gives the backlog nightly_kpis counts, night by night.
    assert [(r["business_date"], r["lines_open"]) for r in result] == [
        (dt.date(2026, 11, 25), 5),
        (dt.date(2026, 11, 26), 5),
    ]


def _waits(result: list[dict[str, Any]]) -> None:
    night_1 = result[0]
    assert night_1["first_seen"] == dt.date(2026, 11, 25)
    # Night 1's lines: 7 placed that night, 3 of its 5 open ones on night 2 (a day's wait each).
    # order-1005, placed on night 1 and released on night 2, counts once, as placed on night 1:
    # its current allocated_on (none: open again) does not make it a line that waited.
    assert (night_1["lines"], night_1["placed"]) == (12, 7 + 3)
    assert night_1["avg_days_to_first_allocation"] == pytest.approx(3 * 1 / 10)


def _order_statuses(result: list[dict[str, Any]]) -> None:
    assert {r["order_status"] for r in result} <= {
        "fully allocated",
        "partly allocated",
        "not allocated",
    }
    assert sum(r["lines"] for r in result) == 15


def _sku_stock(result: list[dict[str, Any]]) -> None:
    by_sku = {r["sku"]: r for r in result}
    assert by_sku["RETRO-CLOCK"]["incoming_free_units"] == 5
    assert by_sku["GOLD-LAMP"]["open_lines"] == 2


def _reasons(result: list[dict[str, Any]]) -> None:
    assert {(r["reason_code"], r["kind"]): r["rejections"] for r in result} == {
        ("not_whole_number", "orders"): 1,
        ("qty_below_one", "orders"): 1,
        ("conflicting_line", "orders"): 1,
    }


def _released_by(result: list[dict[str, Any]]) -> None:
    [row] = result
    assert (row["orderid"], row["from_batchref"], row["reason_code"]) == (
        "order-1005",
        "batch-004",
        "qty_down",
    )
    assert (row["change_source_file"], row["change_source_line"]) == (
        "batches/2026-11-26-manifest.csv",
        2,
    )
    assert (row["old_qty"], row["new_qty"]) == (15, 5)


def _from_stock(result: list[dict[str, Any]]) -> None:
    for r in result:
        assert r["lines_placed_from_stock"] + r["lines_placed_from_incoming"] == r["lines_placed"]


# Title of the example -> (columns it must return, what its rows must show).
EXPECTED: dict[str, tuple[list[str], Check]] = {
    "The descriptions, as the database holds them": (
        ["table_name", "column_name", "comment"],
        rows(len(COMMENTS["out_of_stock"][1])),
    ),
    "Which night am I looking at": (["night", "committed_at_utc", "schema_version"], _tonight),
    "What went out of stock tonight, and why": (
        [
            "orderid",
            "sku",
            "qty",
            "first_seen",
            "days_waiting",
            "new_tonight",
            "released_tonight",
            "available",
            "shortfall",
            "next_eta",
            "why",
        ],
        _out_of_stock,
    ),
    "Which skus are short, and when stock arrives": (
        ["sku", "open_lines", "open_demand", "available", "shortfall", "next_eta", "incoming"],
        _short_skus,
    ),
    "How allocation moved over the last nights": (
        [
            "business_date",
            "orders_received",
            "new_lines",
            "lines_allocated",
            "qty_allocated",
            "open_lines_after",
            "lines_released",
            "rows_rejected",
        ],
        _nights,
    ),
    "Which batches changed over the last 7 nights": (
        [
            "business_date",
            "reference",
            "sku",
            "change",
            "old_qty",
            "new_qty",
            "old_eta",
            "new_eta",
            "allocated_now",
            "available_now",
            "lines_released",
        ],
        _changed,
    ),
    "Lines a manifest change took back, and where they went": (
        ["business_date", "orderid", "sku", "qty", "from_batchref", "to_batchref", "reason"],
        rows(1),
    ),
    "What was rejected tonight": (["kind", "source_file", "line", "reason", "raw"], rows(2)),
    "Which inbox files were read tonight": (
        ["kind", "file_name", "status", "rows", "size", "sha256", "reason"],
        rows(2),
    ),
    "Where is an order, and where has it been": (
        [
            "orderid",
            "sku",
            "qty",
            "status",
            "batchref",
            "eta",
            "first_seen",
            "allocated_on",
            "history",
        ],
        _order,
    ),
    "Fill rate by night, lines and units": (
        [
            "business_date",
            "lines_eligible",
            "lines_placed",
            "line_fill_rate",
            "units_eligible",
            "units_placed",
            "unit_fill_rate",
        ],
        _fill_rate,
    ),
    "The open backlog after a night, oldest first": (
        ["orderid", "sku", "qty", "first_seen", "days_waiting"],
        _backlog_after_night_1,
    ),
    "The backlog after each of the last 3 nights, from open_lines_asof (one call per night)": (
        ["business_date", "lines_open", "units_open", "longest_wait_days"],
        _backlog_each_night,
    ),
    "How the backlog moved, night by night": (
        [
            "business_date",
            "lines_received",
            "lines_placed",
            "lines_released",
            "lines_open",
            "units_open",
            "backlog_change",
        ],
        _backlog_moves,
    ),
    "How long lines wait for their first placement": (
        ["first_seen", "lines", "placed", "avg_days_to_first_allocation", "longest_wait_days"],
        _waits,
    ),
    "Which orders are fully, partly or not allocated": (
        ["order_status", "orders", "lines", "units_open"],
        _order_statuses,
    ),
    "Per sku: free stock on hand, incoming, overdue, and the open demand": (
        [
            "sku",
            "on_hand_free_units",
            "incoming_free_units",
            "overdue_free_units",
            "next_free_eta",
            "open_lines",
            "open_units",
            "oldest_open_first_seen",
        ],
        _sku_stock,
    ),
    "Rejections by reason over the last 7 nights": (
        ["reason_code", "kind", "rejections", "files", "example"],
        _reasons,
    ),
    "Which manifest row released which lines": (
        [
            "business_date",
            "change_source_file",
            "change_source_line",
            "reason_code",
            "old_qty",
            "new_qty",
            "orderid",
            "sku",
            "qty",
            "from_batchref",
            "to_batchref",
        ],
        _released_by,
    ),
    "Placements from stock on hand and from incoming batches, by night": (
        [
            "business_date",
            "lines_placed",
            "lines_placed_from_stock",
            "lines_placed_from_incoming",
            "share_from_stock",
        ],
        _from_stock,
    ),
}


def test_every_sql_block_of_the_docs_has_a_title_and_an_expectation() -> None:
    titles = [title for title, _sql in doc_sql_blocks()]
    assert all(titles), "every ```sql block starts with a `-- title` line"
    assert len(titles) == len(set(titles))
    assert sorted(titles) == sorted(EXPECTED)


@pytest.mark.parametrize(("title", "sql"), doc_sql_blocks(), ids=lambda v: str(v)[:40])
def test_example_query_runs_on_the_published_sample_warehouse(
    built: Site, title: str, sql: str
) -> None:
    columns, result = read(built.warehouse, sql)
    expected_columns, check = EXPECTED[title]
    assert columns == expected_columns
    check(result)


# -- (b) the database documents itself, as the docs do --------------------------------------
def comments_in_database(path: Path) -> dict[str, tuple[str | None, dict[str, str | None]]]:
    _, objects = read(
        path,
        "SELECT table_name AS name, comment FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal",
    )
    _, columns = read(
        path,
        "SELECT c.table_name AS name, c.column_name, c.comment FROM duckdb_columns() c "
        "WHERE NOT c.internal ORDER BY c.table_name, c.column_index",
    )
    found: dict[str, tuple[str | None, dict[str, str | None]]] = {
        o["name"]: (o["comment"], {}) for o in objects
    }
    for c in columns:
        if c["name"] in found:
            found[c["name"]][1][c["column_name"]] = c["comment"]
    return found


def comments_in_docs() -> dict[str, dict[str, str]]:
    """The column tables under each "### `name`" heading of docs/analysts.md."""
    documented: dict[str, dict[str, str]] = {}
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^#{3,4} `(\w+)`", line)
        if heading:
            current = heading.group(1)
            documented[current] = {}
        elif line.startswith("#"):
            current = None
        elif current:
            row = re.match(r"^\| `(\w+)` \| (.*) \|$", line)
            if row:
                documented[current][row.group(1)] = row.group(2)
    return documented


def test_every_analyst_table_view_and_column_has_a_comment(built: Site) -> None:
    found = comments_in_database(built.warehouse)
    for name in ANALYST_OBJECTS:
        assert name in found, f"{name} is missing from the warehouse"
        comment, columns = found[name]
        assert comment and comment.strip(), f"{name} has no comment"
        assert PROMISED_COLUMNS[name] <= set(columns), f"{name} lacks promised columns"
        for column, text in columns.items():
            assert text and text.strip(), f"{name}.{column} has no comment"
    # Everything else in it is documented as well.
    for name, (comment, columns) in found.items():
        assert comment, f"{name} has no comment"
        assert all(columns.values()), f"{name}: columns without a comment"


def test_the_docs_describe_each_table_and_column_as_the_database_does(built: Site) -> None:
    found = comments_in_database(built.warehouse)
    documented = comments_in_docs()
    macros = {name: documented.pop(name) for name in MACRO_COMMENTS}
    assert macros == {name: {} for name in MACRO_COMMENTS}, "a macro has no column table"
    assert set(documented) == set(found) == set(COMMENTS)
    for name, columns in documented.items():
        assert columns == found[name][1], f"docs/analysts.md section {name} differs"
    text = DOC.read_text(encoding="utf-8")
    for name, (comment, _) in found.items():
        assert comment in text, f"the description of {name} is not in the docs"


def test_the_data_dictionary_page_is_the_warehouse_s_own(built: Site) -> None:
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        fresh = data_dictionary.render(con)
    finally:
        con.close()
    page = REPO / "docs" / "data-dictionary.md"
    assert page.read_text(encoding="utf-8") == fresh, "run `make docs` and commit the page"
    for name in [*COMMENTS, *MACRO_COMMENTS]:
        assert f"\n## {name}\n" in fresh


def test_the_table_macro_carries_its_description(built: Site) -> None:
    _, macros = read(
        built.warehouse,
        "SELECT function_name, comment FROM duckdb_functions() WHERE function_type = 'table_macro'"
        " AND NOT internal",
    )
    assert {m["function_name"]: m["comment"] for m in macros} == MACRO_COMMENTS


def test_the_declared_keys_hold(built: Site) -> None:
    """The keys and joins the data dictionary declares (not constraints in the file)."""
    for table, keys in KEYS.items():
        for key in keys:
            _, repeated = read(
                built.warehouse,
                f"SELECT {key}, count(*) FROM {table} GROUP BY ALL HAVING count(*) > 1",  # noqa: S608
            )
            assert repeated == [], f"{table} ({key}) repeats"
    for child, columns, parent, key in JOINS:
        _, orphans = read(
            built.warehouse,
            f"SELECT {columns} FROM {child} WHERE ({columns}) IS NOT NULL "  # noqa: S608
            f"AND ({columns}) NOT IN (SELECT ({key}) FROM {parent})",
        )
        assert orphans == [], f"{child} ({columns}) names no {parent} ({key})"


def test_the_views_cap_sums_that_do_not_fit_64_bits(site: Site, day: Callable[[int], str]) -> None:
    largest = 2**63 - 1
    site.batches("manifest.csv", f"B1,LAMP,{largest},", f"B2,LAMP,{largest},2026-12-01")
    site.orders("orders.csv", f"o1,DESK,{largest}", f"o2,DESK,{largest}", "o3,LAMP,1")
    site.run(day(0))
    _, position = read(site.warehouse, "SELECT * FROM stock_position ORDER BY sku")
    desk, lamp = position
    assert (desk["open_demand"], desk["shortfall"], desk["purchased"]) == (largest, largest, 0)
    assert (lamp["purchased"], lamp["allocated"], lamp["available"]) == (largest, 1, largest)
    _, waiting = read(site.warehouse, "SELECT orderid, available, shortfall FROM out_of_stock")
    assert sorted(waiting, key=lambda r: r["orderid"]) == [
        {"orderid": "o1", "available": 0, "shortfall": largest},
        {"orderid": "o2", "available": 0, "shortfall": largest},
    ]


# -- (c) a reader in another process through a whole night ----------------------------------
READER = textwrap.dedent(
    """
    import json, sys
    import duckdb

    con = duckdb.connect(sys.argv[1], read_only=True)

    def answer(all_tables):
        out = {"night": str(con.execute("SELECT max(business_date) FROM runs").fetchone()[0])}
        if all_tables:  # tables this connection never read before the night
            for table in ("order_lines", "allocations", "batch_changes", "out_of_stock"):
                out[table] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        print(json.dumps(out), flush=True)

    answer(False)  # ready: the connection is open and has read the file
    for command in sys.stdin:
        if command.strip() == "stop":
            break
        answer(True)
    con.close()
    """
)


def counts(path: Path) -> dict[str, Any]:
    _, result = read(
        path,
        "SELECT (SELECT max(business_date)::VARCHAR FROM runs) AS night, "
        "(SELECT count(*) FROM order_lines) AS order_lines, "
        "(SELECT count(*) FROM allocations) AS allocations, "
        "(SELECT count(*) FROM batch_changes) AS batch_changes, "
        "(SELECT count(*) FROM out_of_stock) AS out_of_stock",
    )
    return result[0]


def wal_beside(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def test_a_reader_in_another_process_holds_the_warehouse_through_a_whole_night(
    tmp_path: Path,
) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    night_1 = counts(site.warehouse)

    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(site.warehouse)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        ready = reader.stdout.readline()
        if not ready:
            pytest.fail(f"the reader did not start: {reader.communicate()[1]}")
        assert json.loads(ready) == {"night": NIGHT_1}

        # The reader's lock is real: a writer opening the analysts' file would fail right now.
        writer = subprocess.run(
            [
                sys.executable,
                "-c",
                "import duckdb, sys; duckdb.connect(sys.argv[1])",
                site.warehouse,
            ],
            capture_output=True,
            text=True,
        )
        assert writer.returncode != 0
        assert "Could not set lock" in writer.stderr

        second_night_inbox(site)
        summary = site.run(NIGHT_2)  # in this process, while the reader holds its connection
        assert summary["business_date"] == NIGHT_2

        reader.stdin.write("again\n")
        reader.stdin.flush()
        held = json.loads(reader.stdout.readline())
        assert held == night_1, "the open connection keeps the night it had"

        night_2 = counts(site.warehouse)  # a connection opened after the night
        assert night_2["night"] == NIGHT_2
        assert night_2["batch_changes"] == 3
        assert night_2 != night_1

        assert not wal_beside(site.warehouse).exists()
        assert not list(site.root.glob(".warehouse.duckdb.publish-*"))

        reader.stdin.write("stop\n")
        reader.stdin.flush()
        assert reader.wait(timeout=30) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_published_history_keeps_the_last_copies_each_its_own_night(
    site: Site, day: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATION_KEEP_PUBLISHED", "2")
    site.orders("orders.csv", "order-1,LAMP,1")
    site.batches("manifest.csv", "b-1,LAMP,10,")
    for offset in range(3):
        site.run(day(offset))
    history = site.params(day(0)).state_dir / "published"
    kept = sorted(history.glob("*.duckdb"))
    assert [p.name[:10] for p in kept] == [day(1), day(2)]
    assert not os.path.samefile(kept[-1], site.warehouse), "a copy of its own, not a link"
    for path, night in zip(kept, (day(1), day(2)), strict=True):
        _, result = read(path, "SELECT max(business_date)::VARCHAR AS night FROM runs")
        assert result == [{"night": night}]
        assert not wal_beside(path).exists()
    assert not wal_beside(site.warehouse).exists()


def test_a_wal_left_beside_the_published_file_does_not_break_the_next_one(
    tmp_path: Path,
) -> None:
    """Someone opened the published copy read-write, wrote, and was killed: DuckDB would refuse
    to open the next published file beside that foreign write-ahead log."""
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    careless = (
        "import duckdb, os, signal, sys; con = duckdb.connect(sys.argv[1]); "
        "con.execute('CREATE TABLE my_notes AS SELECT 1 AS x'); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    subprocess.run([sys.executable, "-c", careless, str(site.warehouse)], check=False)
    assert wal_beside(site.warehouse).exists()

    second_night_inbox(site)
    site.run(NIGHT_2)

    assert not wal_beside(site.warehouse).exists()
    assert counts(site.warehouse)["night"] == NIGHT_2


# -- (d) the published copy cannot be replaced ----------------------------------------------
def test_when_the_copy_cannot_be_replaced_the_night_commits_and_says_how_to_publish(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    real = after_commit.write_reports

    def occupy_the_path_meanwhile(*args: Any, **kwargs: Any) -> Path:
        # After the pre-checks (which refuse a folder up front), before publishing.
        site.warehouse.unlink()
        site.warehouse.mkdir()  # something now occupies the analysts' path
        return real(*args, **kwargs)

    second_night_inbox(site)
    with monkeypatch.context() as patched, pytest.raises(PublishError) as failure:
        patched.setattr(after_commit, "write_reports", occupy_the_path_meanwhile)
        site.run(NIGHT_2)
    message = str(failure.value)
    assert "the night is committed" in message
    assert f"allocation publish --warehouse {site.warehouse}" in message
    assert (site.outbox / NIGHT_2 / "summary.json").exists(), "the reports were written"
    assert not list(site.root.glob(".warehouse.duckdb.publish-*"))

    # Publishing again fails the same way (exit code 4) until the path is freed.
    assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 4
    assert "allocation publish --warehouse" in capsys.readouterr().err

    site.warehouse.rmdir()
    assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
    published = counts(site.warehouse)
    assert published["night"] == NIGHT_2, "the committed night was there all along"
    assert published["batch_changes"] == 3
    # `publish` finished the committed night the failed publish left pending (its note), so its
    # copy is kept under the night's own label, as if the night had published itself.
    history = state_db(site.params(NIGHT_2)).parent / "published"
    assert [p for p in history.glob("*.duckdb") if p.name.startswith(NIGHT_2)]

    # And the next night carries on from it as usual.
    site.clear_inbox()
    site.orders("2026-11-27-orders.csv", "order-4001,RETRO-CLOCK,1")
    site.run("2026-11-27")
    assert counts(site.warehouse)["night"] == "2026-11-27"


def test_a_full_disk_while_publishing_gives_the_same_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The byte-for-byte publish (test_older_clients has a full disk in the compatible copy).
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "pipeline")
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    copyfile = shutil.copyfile

    def disk_full(src: Any, dst: Any, **kwargs: Any) -> Any:
        if ".publish-" in str(dst):
            Path(dst).write_bytes(b"half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return copyfile(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    second_night_inbox(site)
    with pytest.raises(PublishError, match="allocation publish --warehouse") as failure:
        site.run(NIGHT_2)
    assert "No space left on device" in str(failure.value)
    assert not list(site.root.glob(".warehouse.duckdb.publish-*")), "no half-written copy left"
    assert counts(site.warehouse)["night"] == NIGHT_1, "analysts still have the previous night"

    monkeypatch.setattr(shutil, "copyfile", copyfile)
    assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
    assert counts(site.warehouse)["night"] == NIGHT_2
