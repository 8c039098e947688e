"""Every DuckDB connection of a night runs under the memory limit and spill folder the settings
name, so a large night spills to disk instead of growing past the machine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from allocation.io.unit_of_work import DuckDBUnitOfWork, connect
from allocation.settings import ParameterError, RunParameters, Settings


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
