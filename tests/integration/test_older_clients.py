"""Issue 14: analysts open the published warehouse with the DuckDB clients they already have.

The pinned DuckDB 1.5.6 command-line client (the dev dependency `duckdb-cli`, whose `duckdb`
binary lands beside this Python) opens the published file read-only and answers every example
query of docs/analysts.md exactly as the pipeline's own DuckDB does; the Parquet reports open in
it too. The pipeline's working state is in the same storage version, so publishing is a byte copy;
a working state in DuckDB 2.x's newest format (as earlier releases left it) is converted, checked.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_analysts import NIGHT_1, NIGHT_2, doc_sql_blocks, sample_site, second_night_inbox

from allocation import cli
from allocation.io import compatible_copy
from allocation.io.publish import PublishError, publish_copy
from allocation.service.state import state_db
from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION
from conftest import REPO, Site

OLD_CLI = Path(sys.executable).parent / "duckdb"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """The sample inbox as night 1, then a second night with changes (as in test_analysts)."""
    site = sample_site(tmp_path_factory.mktemp("older-clients"))
    site.run(NIGHT_1)
    second_night_inbox(site)
    site.run(NIGHT_2)
    return site


def old_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs the pinned DuckDB 1.x CLI with no user's ~/.duckdbrc (HOME is `cwd`)."""
    if not OLD_CLI.exists():
        pytest.fail(f"{OLD_CLI} is missing: `make install` installs duckdb-cli (a dev dependency)")
    return subprocess.run(
        [str(OLD_CLI), *args],
        cwd=cwd,
        env={**os.environ, **(env or {}), "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_earlier_releases_left_it(state: Path) -> None:
    """Rewrites the closed working state in DuckDB's newest storage format, the one earlier
    releases created it in (and kept it in, publishing by a full rewrite every night)."""
    newest = state.with_name(state.name + ".newest")
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH ? AS old (READ_ONLY)", [str(state)])
        con.execute("ATTACH ? AS new (STORAGE_VERSION 'latest')", [str(newest)])
        con.execute("COPY FROM DATABASE old TO new")
        con.execute("DETACH new")
    finally:
        con.close()
    os.replace(newest, state)
    assert compatible_copy.storage_tag(state) == "v2.0.0+"


def as_json(text: str) -> list[list[tuple[str, Any]]]:
    """Rows as (column, value) pairs in order; numbers kept as their exact text."""
    rows = json.loads(text or "[]", parse_int=str, parse_float=str)
    return [list(row.items()) for row in rows]


def old_answer(
    database: Path | None, sql: str, cwd: Path, env: dict[str, str] | None = None
) -> list[list[tuple[str, Any]]]:
    where = ["-readonly", str(database)] if database else []
    done = old_cli(*where, "-json", "-c", sql, cwd=cwd, env=env)
    assert done.returncode == 0, f"DuckDB 1.5.6 failed: {done.stderr}"
    return as_json(done.stdout)


def pipeline_answer(
    con: duckdb.DuckDBPyConnection, sql: str, out: Path, params: list[object] | None = None
) -> list[list[tuple[str, Any]]]:
    """The same query in the pipeline's DuckDB 2.x, written by DuckDB as JSON."""
    query = sql.strip().rstrip(";")
    # The query is the docs' own text, never input; the output path is bound.
    con.execute(f"COPY ({query}) TO ? (FORMAT JSON, ARRAY true)", [*(params or []), str(out)])
    return as_json(out.read_text(encoding="utf-8"))


def test_the_published_warehouse_opens_in_the_duckdb_1x_cli(built: Site, tmp_path: Path) -> None:
    answer = old_answer(
        built.warehouse,
        "SELECT version() AS client, max(business_date)::VARCHAR AS night, count(*) AS runs "
        "FROM runs",
        tmp_path,
    )
    [[(_, client), *rest]] = answer
    assert client.startswith("v1."), f"the pinned older client, not {client}"
    assert rest == [("night", NIGHT_2), ("runs", "2")]


@pytest.mark.parametrize(("title", "sql"), doc_sql_blocks(), ids=lambda v: str(v)[:40])
def test_every_example_query_gives_the_same_answer_in_duckdb_1x_as_in_the_pipeline(
    built: Site, tmp_path: Path, title: str, sql: str
) -> None:
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        expected = pipeline_answer(con, sql, tmp_path / "expected.json")
    finally:
        con.close()
    assert expected, f"{title}: the example returns no rows on the sample"
    assert old_answer(built.warehouse, sql, tmp_path) == expected


def test_the_views_and_comments_read_the_same_in_duckdb_1x(built: Site, tmp_path: Path) -> None:
    catalog = (
        "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() WHERE NOT internal "
        "ORDER BY table_name, column_index"
    )
    tables = "SELECT table_name, comment FROM duckdb_tables() ORDER BY table_name"
    views = "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        for sql in (
            catalog,
            tables,
            views,
            "FROM out_of_stock ORDER BY ALL",
            "FROM stock_position ORDER BY ALL",
        ):
            expected = pipeline_answer(con, sql, tmp_path / "expected.json")
            assert old_answer(built.warehouse, sql, tmp_path) == expected, sql
    finally:
        con.close()


def test_the_parquet_reports_open_in_duckdb_1x(built: Site, tmp_path: Path) -> None:
    reports = sorted((built.outbox / NIGHT_2).glob("*.parquet"))
    assert {p.stem for p in reports} >= {"allocations", "out_of_stock"}
    con = duckdb.connect(":memory:")
    try:
        for report in reports:
            expected = pipeline_answer(
                con, "SELECT * FROM read_parquet(?)", tmp_path / "expected.json", [str(report)]
            )
            # The CLI cannot bind a parameter: the path comes from its environment.
            answer = old_answer(
                None,
                "SELECT * FROM read_parquet(getenv('REPORT'))",
                tmp_path,
                env={"REPORT": str(report)},
            )
            assert answer == expected, report.name
    finally:
        con.close()


# -- what the copy carries, and when it must not be published --------------------------------
def test_everything_in_the_working_database_reaches_the_published_copy(
    built: Site, tmp_path: Path
) -> None:
    """Tables, comments, macros and indexes added to the working database (a marker saying the
    pipeline made the file, say) are in the analysts' copy, in the older format too."""
    state = state_db(built.params(NIGHT_2))
    work = tmp_path / "state.duckdb"
    work.write_bytes(state.read_bytes())
    con = duckdb.connect(str(work))
    con.execute('CREATE TABLE made_by (tool VARCHAR, "odd name" VARCHAR)')
    con.execute("INSERT INTO made_by VALUES ('allocation', 'x')")
    con.execute("COMMENT ON TABLE made_by IS 'Written by the allocation pipeline.'")
    con.execute("COMMENT ON COLUMN made_by.\"odd name\" IS 'It''s odd.'")
    con.execute("CREATE MACRO twice(x) AS x * 2")
    con.execute("CREATE INDEX made_by_tool ON made_by (tool)")
    con.execute("CREATE SCHEMA pipeline")
    con.execute("CREATE TABLE pipeline.marker AS SELECT 'allocation' AS made_by")
    con.execute("CHECKPOINT")
    con.close()
    as_earlier_releases_left_it(work)  # so that publishing converts it

    warehouse = tmp_path / 'it\'s a "warehouse" é.duckdb'
    publish_copy(work, warehouse, tmp_path / "published", "label", 2, DEFAULT_STORAGE_VERSION)

    answer = old_answer(
        warehouse,
        "SELECT t.comment AS t, c.comment AS c, (SELECT tool FROM made_by) AS tool, twice(21) AS m,"
        " (SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'made_by_tool') AS i,"
        " (SELECT made_by FROM pipeline.marker) AS s "
        "FROM duckdb_tables() t JOIN duckdb_columns() c USING (table_name) "
        "WHERE table_name = 'made_by' AND column_name = 'odd name'",
        tmp_path,
    )
    assert answer == [
        [
            ("t", "Written by the allocation pipeline."),
            ("c", "It's odd."),
            ("tool", "allocation"),
            ("m", "42"),
            ("i", "1"),
            ("s", "allocation"),
        ]
    ]


def test_a_copy_that_lost_anything_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    state = state_db(site.params(NIGHT_1))
    as_earlier_releases_left_it(state)  # publishing the next night converts it
    copy_database = compatible_copy._copy_database

    def loses_a_comment_and_a_row(con: duckdb.DuckDBPyConnection) -> None:
        copy_database(con)
        con.execute("COMMENT ON COLUMN published.main.batches.eta IS NULL")
        con.execute("DELETE FROM published.main.rejected_rows")

    monkeypatch.setattr(compatible_copy, "_copy_database", loses_a_comment_and_a_row)
    second_night_inbox(site)
    with pytest.raises(PublishError, match="allocation publish --warehouse") as failure:
        site.run(NIGHT_2)
    message = str(failure.value)
    assert "column main.batches.eta DATE" in message
    assert "rows main.rejected_rows" in message
    assert site.query("SELECT max(business_date)::VARCHAR FROM runs") == [(NIGHT_1,)]
    assert [p.name for p in site.root.iterdir() if ".publish-" in p.name] == []
    assert compatible_copy.storage_tag(state) == "v2.0.0+", "the working state is left as it was"
    assert list(state.parent.glob(".state.duckdb.convert-*")) == []

    monkeypatch.setattr(compatible_copy, "_copy_database", copy_database)
    assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
    assert site.query("SELECT max(business_date)::VARCHAR FROM runs") == [(NIGHT_2,)]


def test_a_duckdb_error_while_copying_gives_the_publish_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    as_earlier_releases_left_it(state_db(site.params(NIGHT_1)))

    def disk_full(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE published.half AS SELECT 1 AS x")
        raise duckdb.IOException("Could not write file: No space left on device")

    monkeypatch.setattr(compatible_copy, "_copy_database", disk_full)
    second_night_inbox(site)
    with pytest.raises(PublishError, match="No space left on device") as failure:
        site.run(NIGHT_2)
    assert f"allocation publish --warehouse {site.warehouse}" in str(failure.value)
    assert [p.name for p in site.root.iterdir() if ".publish-" in p.name] == []
    assert site.query("SELECT max(business_date)::VARCHAR FROM runs") == [(NIGHT_1,)]


def test_a_file_size_limit_hit_while_copying_fails_the_publish_cleanly(tmp_path: Path) -> None:
    """A real write failure inside DuckDB (the kernel refuses to grow a file past 1 MB, as a full
    disk would): exit 4 with the advice, no half-written file, the previous night still there."""
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    second_night_inbox(site)
    site.run(NIGHT_2)  # committed and published; now it is published again under the limit
    before = site.warehouse.read_bytes()

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    command = Path(sys.executable).parent / "allocation"
    done = subprocess.run(
        [str(command), "publish", "--warehouse", str(site.warehouse)],
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stderr
    assert "File too large" in done.stderr
    assert f"allocation publish --warehouse {site.warehouse}" in done.stderr
    assert [p.name for p in site.root.iterdir() if ".publish-" in p.name] == []
    assert site.warehouse.read_bytes() == before


def test_what_a_publish_killed_mid_copy_left_behind_does_not_stop_the_next(
    tmp_path: Path,
) -> None:
    """A kill during the copy leaves a half-written file, its write-ahead log and spill folder
    (under this process id too, as after a restart that reused it)."""
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    for pid in (os.getpid(), 999_999):
        half = site.root / f".warehouse.duckdb.publish-{pid}"
        half.write_bytes(b"half a DuckDB file")
        half.with_name(half.name + ".wal").write_bytes(b"a log of nothing")
        (half.with_name(half.name + ".spill") / "temp_block").mkdir(parents=True)
    second_night_inbox(site)
    site.run(NIGHT_2)
    assert [p.name for p in site.root.iterdir() if ".publish-" in p.name] == []
    answer = old_answer(
        site.warehouse, "SELECT max(business_date)::VARCHAR AS n FROM runs", tmp_path
    )
    assert answer == [[("n", NIGHT_2)]]


def test_a_copy_that_needs_more_memory_than_its_cap_is_made_without_it(
    built: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The cap keeps the night's memory bounded; a warehouse whose primary keys need more (many
    millions of batches) is still published."""
    monkeypatch.setattr(compatible_copy, "MEMORY_LIMIT", "1MB")
    state = tmp_path / "state.duckdb"
    shutil.copyfile(state_db(built.params(NIGHT_2)), state)
    as_earlier_releases_left_it(state)
    warehouse = tmp_path / "warehouse.duckdb"
    publish_copy(state, warehouse, tmp_path / "published", "label", 2, DEFAULT_STORAGE_VERSION)
    assert "needs more than 1MB" in caplog.text
    answer = old_answer(warehouse, "SELECT count(*) AS n FROM runs", tmp_path)
    assert answer == [[("n", "2")]]


def test_the_pipeline_setting_publishes_the_working_file_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "pipeline")
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    state = state_db(site.params(NIGHT_1))
    assert site.warehouse.read_bytes() == state.read_bytes()
    done = old_cli("-readonly", str(site.warehouse), "-c", "SELECT 1", cwd=tmp_path)
    assert done.returncode != 0 and "version number" in done.stderr, "only DuckDB 2.x reads it"


def test_a_newer_storage_version_can_be_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "v1.5.0")
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    assert old_answer(site.warehouse, "SELECT count(*) AS n FROM runs", tmp_path) == [[("n", "1")]]
    header = site.warehouse.read_bytes()[:20]
    assert int.from_bytes(header[12:20], "little") == 68  # DuckDB 1.5's storage number


# -- make analyst ---------------------------------------------------------------------------
def make_analyst(
    warehouse: Path | None, stdin: str, home: Path, shell: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # `-o` skips the install step (the venv running this test is installed already); the test
    # may itself run under `make test`, whose flags are not this make's.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "-s", "-o", ".venv/.installed", "analyst"]
        + ([f"WAREHOUSE={warehouse}"] if warehouse else []),
        cwd=REPO,
        env={**env, **(shell or {}), "HOME": str(home)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_analyst_opens_the_warehouse_read_only_in_the_1x_cli(
    built: Site, tmp_path: Path
) -> None:
    odd = tmp_path / 'an analyst\'s "copy" é.duckdb'
    odd.write_bytes(built.warehouse.read_bytes())
    done = make_analyst(
        odd,
        ".mode csv\nSELECT version() AS v, max(business_date) AS night FROM runs;\n"
        "CREATE TABLE my_notes (x INTEGER);\n",
        tmp_path,
    )
    assert f"v1.5.6,{NIGHT_2}" in done.stdout, done.stdout + done.stderr
    assert "read-only" in done.stderr, "writing is refused: the file is opened read-only"
    assert not odd.with_name(odd.name + ".wal").exists()


def test_make_analyst_says_what_to_do_when_there_is_no_warehouse_yet(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "warehouse.duckdb"
    done = make_analyst(missing, "SELECT 1;\n", tmp_path)
    assert done.returncode != 0
    assert f"no warehouse at {missing}" in done.stderr
    assert "make run" in done.stderr
    assert not missing.parent.exists(), "nothing is created"


def test_make_analyst_ignores_a_warehouse_variable_of_the_shell(tmp_path: Path) -> None:
    """Only `WAREHOUSE=` on make's command line chooses the file: a WAREHOUSE in the shell (a
    Snowflake warehouse's name, say) does not."""
    done = make_analyst(None, "SELECT 1;\n", tmp_path, shell={"WAREHOUSE": "COMPUTE_WH"})
    assert "COMPUTE_WH" not in done.stdout + done.stderr
    if not (REPO / "data" / "warehouse.duckdb").exists():
        assert "no warehouse at data/warehouse.duckdb" in done.stderr
