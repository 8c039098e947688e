"""Every DuckDB connection of a night runs under the memory limit and spill folder the settings
name, so a large night spills to disk instead of growing past the machine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from prefect.states import Failed

from allocation.flows.nightly import worth_retrying
from allocation.io import outbox
from allocation.io.candidates import DuckDBCandidates
from allocation.io.memory_limit import streaming_memory
from allocation.io.unit_of_work import DuckDBUnitOfWork, connect
from allocation.service.night import MemoryLimitTooSmall
from allocation.service.rollback import rollback
from allocation.settings import ParameterError, RunParameters, Settings
from conftest import Site


def params_for(tmp_path: Path) -> RunParameters:
    return RunParameters.build(
        inbox=tmp_path / "inbox",
        warehouse=tmp_path / "w.duckdb",
        outbox=tmp_path / "out",
        business_date=dt.date(2026, 11, 30),
    )


def test_the_night_spills_beside_its_state_under_the_default_limit(tmp_path: Path) -> None:
    limits = params_for(tmp_path).duckdb_limits

    with DuckDBUnitOfWork(tmp_path / "state.duckdb", limits) as uow:
        limit, folder = uow.con.sql(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall()[0]

    assert limit.replace(" ", "") == "366.2MiB"  # 384 MB in DuckDB's binary units
    assert Path(folder) == tmp_path / ".w.duckdb.pipeline" / "duckdb-tmp"
    assert Path(folder).is_dir()


def test_the_settings_choose_the_limit_and_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOCATION_DUCKDB_MEMORY_LIMIT", "256MB")
    monkeypatch.setenv("ALLOCATION_DUCKDB_TEMP_DIRECTORY", str(tmp_path / "spill"))
    con = connect(tmp_path / "state.duckdb", limits=params_for(tmp_path).duckdb_limits)
    try:
        limit, folder = con.sql(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall()[0]
    finally:
        con.close()

    assert limit.replace(" ", "") == "244.1MiB"  # 256 MB in DuckDB's binary units
    assert Path(folder) == tmp_path / "spill"


@pytest.mark.parametrize("value", ["lots", "1 GBX", "-1GB", ""])
def test_a_memory_limit_duckdb_cannot_take_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ALLOCATION_DUCKDB_MEMORY_LIMIT", value)
    with pytest.raises(ParameterError, match=r"ALLOCATION_DUCKDB_MEMORY_LIMIT: .* 1GB"):
        Settings()


def _limit(con: duckdb.DuckDBPyConnection) -> str:
    """The database's memory limit, asked on a connection of its own (`con` may be streaming)."""
    value: str = con.cursor().sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
    return value.replace(" ", "")


def _a_night_of_lines(con: duckdb.DuckDBPyConnection) -> None:
    """RETRO-CLOCK: one batch of 3 in stock; tonight 5 lines of 1 (TEMP table `night_lines`)."""
    con.execute(
        "INSERT INTO batches (reference, sku, eta, purchased, allocated, first_seen) "
        "VALUES ('b-clock', 'RETRO-CLOCK', NULL, 3, 0, DATE '2026-11-30')"
    )
    con.execute(
        "CREATE TEMP TABLE night_lines AS SELECT range AS arrival_seq, 'o' || range AS orderid, "
        "'RETRO-CLOCK' AS sku, 1::BIGINT AS qty, 'o.csv' AS source_file, range AS line, "
        "hash('o' || range, 'RETRO-CLOCK') AS key_hash FROM range(5)"
    )


def test_the_decision_sorts_its_lines_under_a_third_of_the_night_memory(tmp_path: Path) -> None:
    limits = params_for(tmp_path).duckdb_limits
    with DuckDBUnitOfWork(tmp_path / "state.duckdb", limits) as uow:
        _a_night_of_lines(uow.con)
        candidates = uow.candidates(tmp_path / "spill")
        with candidates.column_slices([5]) as slices:
            during = _limit(uow.con)
            lines = sum(len(frame) for frame in slices)
        after = _limit(uow.con)

    assert lines == 5
    assert during == "122.0MiB"  # 128 MB of the night's 384 MB, in DuckDB's binary units
    assert after == "366.2MiB"


def test_the_night_gets_its_memory_back_when_the_decision_fails(tmp_path: Path) -> None:
    limits = params_for(tmp_path).duckdb_limits
    with DuckDBUnitOfWork(tmp_path / "state.duckdb", limits) as uow:
        _a_night_of_lines(uow.con)
        candidates = uow.candidates(tmp_path / "spill")
        with pytest.raises(ZeroDivisionError), candidates.column_slices([5]) as slices:
            next(iter(slices))
            _ = 1 / 0
        assert _limit(uow.con) == "366.2MiB"


def _limits_the_reports_see(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The memory limit each writing of a night's reports runs under, as they are written."""
    seen: list[str] = []
    real = outbox.write_report_files

    def noting_the_limit(con: duckdb.DuckDBPyConnection, day: dt.date, folder: Path) -> None:
        seen.append(_limit(con))
        real(con, day, folder)

    monkeypatch.setattr(outbox, "write_report_files", noting_the_limit)
    return seen


def test_the_reports_are_read_under_a_third_of_the_night_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = params_for(tmp_path)
    seen = _limits_the_reports_see(monkeypatch)
    limits = params.duckdb_limits
    with DuckDBUnitOfWork(tmp_path / "state.duckdb", limits) as uow:
        folder = outbox.write_night(
            uow.con, params.business_date, params.outbox, dry_run=True, limits=limits
        )
        after = _limit(uow.con)

    assert seen == ["122.0MiB"]
    assert after == "366.2MiB"
    assert (folder / "allocations.csv").is_file()


def test_a_limit_duckdb_cannot_lower_to_leaves_the_night_its_own(tmp_path: Path) -> None:
    """DuckDB refuses a lower limit when it cannot free enough (here: temporary data it has
    nowhere to spill); the statements then run under the night's limit."""
    limits = params_for(tmp_path).duckdb_limits
    with DuckDBUnitOfWork(tmp_path / "state.duckdb", limits) as uow:
        uow.con.execute("SET temp_directory = ''")
        uow.con.execute(
            "CREATE TEMP TABLE held AS SELECT range AS i, repeat('x', 50) AS s FROM range(3000000)"
        )
        with streaming_memory(uow.con, limits):
            during = _limit(uow.con)
        after = _limit(uow.con)

    assert during == after == "366.2MiB"


def test_a_rollback_writes_its_reports_under_the_night_memory(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It read them with DuckDB's default memory (80% of the machine's) before."""
    site.batches("b1.csv", "b1,RETRO-CLOCK,3,")
    site.orders("o1.csv", "o1,RETRO-CLOCK,1")
    site.run("2026-11-25")
    site.orders("o2.csv", "o2,RETRO-CLOCK,1")
    site.run("2026-11-26")
    seen = _limits_the_reports_see(monkeypatch)
    rollback(site.params("2026-11-25"))

    assert seen == ["122.0MiB"]  # the streamed share of the night's 384 MB
    assert site.query("SELECT count(*) FROM order_lines") == [(1,)]


def _out_of_memory() -> OSError:
    """DuckDB running out of its limit while a stream is read through Arrow, as it says it."""
    return OSError(
        "Out of Memory Error: failed to pin block of size 256.0 KiB (122.1 MiB/122.0 MiB used)"
    )


def test_reports_that_outgrow_the_streamed_share_are_written_under_the_night_memory(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,3,")
    site.orders("o1.csv", "o1,RETRO-CLOCK,1")
    seen: list[str] = []
    real = outbox.write_report_files

    def out_of_memory_under_the_share(
        con: duckdb.DuckDBPyConnection, day: dt.date, folder: Path
    ) -> None:
        seen.append(_limit(con))
        (folder / "allocations.csv").write_text("half a report\n")
        if seen[-1] == "122.0MiB":
            raise _out_of_memory()
        real(con, day, folder)

    monkeypatch.setattr(outbox, "write_report_files", out_of_memory_under_the_share)
    site.run("2026-11-25")

    assert seen == ["122.0MiB", "366.2MiB"]
    assert [r["orderid"] for r in site.report("2026-11-25", "allocations")] == ["o1"]
    assert "writing them again under the night's 384MB" in caplog.text


def test_a_decision_out_of_memory_names_the_setting_and_is_not_retried(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,3,")
    site.orders("o1.csv", "o1,RETRO-CLOCK,1")

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise _out_of_memory()

    monkeypatch.setattr(DuckDBCandidates, "column_slices", out_of_memory)
    with pytest.raises(MemoryLimitTooSmall, match="ALLOCATION_DUCKDB_MEMORY_LIMIT=384MB: raise it"):
        site.run("2026-11-25")

    assert not worth_retrying(None, None, Failed(data=_out_of_memory()))
