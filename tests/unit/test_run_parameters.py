"""A night's parameters: each setting declared once; what the caller gives beats the environment,
the environment beats the default, and the CLI's and the UI's blanks mean 'not given'."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest

from allocation.settings import ParameterError, RunParameters, Settings

NIGHT = "2026-11-25"


def test_every_setting_is_a_run_parameter_with_the_same_default_and_description() -> None:
    for name, setting in Settings.model_fields.items():
        parameter = RunParameters.model_fields[name]
        assert (parameter.default, parameter.description) == (setting.default, setting.description)
    assert set(RunParameters.model_fields) - set(Settings.model_fields) == {
        "business_date",
        "dry_run",
        "accept_checks",  # per run, like the date: never from the environment
    }


def test_a_value_given_by_the_caller_beats_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALLOCATION_INBOX", str(tmp_path / "from-env"))
    monkeypatch.setenv("ALLOCATION_DASK_WORKERS", "5")
    monkeypatch.setenv("ALLOCATION_KEEP_PUBLISHED", "3")

    params = RunParameters.build(
        business_date=NIGHT, inbox=tmp_path / "given", dask_workers=4, keep_published=30
    )

    assert (params.inbox, params.dask_workers, params.keep_published) == (
        tmp_path / "given",
        4,
        30,
    )


def test_the_environment_beats_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALLOCATION_OUTBOX", str(tmp_path / "reports"))
    monkeypatch.setenv("ALLOCATION_LOCK_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "latest")

    params = RunParameters.build(business_date=NIGHT)

    assert params.outbox == tmp_path / "reports"
    assert params.lock_timeout_seconds == 7.0
    assert params.warehouse_storage_version == "latest"


def test_empty_text_and_zero_dask_workers_mean_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALLOCATION_TASK_RUNNER", "dask")
    monkeypatch.setenv("ALLOCATION_DASK_ADDRESS", "tcp://10.0.0.5:8786")
    monkeypatch.setenv("ALLOCATION_DASK_WORKERS", "3")
    monkeypatch.setenv("ALLOCATION_WAREHOUSE", str(tmp_path / "w.duckdb"))

    params = RunParameters.build(
        business_date=NIGHT,
        warehouse="",
        task_runner=" ",
        dask_address="",
        dask_workers=0,
        staging="",
    )

    assert params.warehouse == tmp_path / "w.duckdb"
    assert (params.task_runner, params.dask_address, params.dask_workers) == (
        "dask",
        "tcp://10.0.0.5:8786",
        3,
    )
    assert params.staging == ""
    unset = RunParameters.build(business_date=NIGHT, inbox="", outbox=None)
    assert unset.inbox == Path("data/inbox").absolute()  # the default, resolved
    assert unset.outbox == Path("data/outbox").absolute()


def test_the_date_and_the_dry_run_never_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOCATION_BUSINESS_DATE", "2020-01-01")
    monkeypatch.setenv("ALLOCATION_DRY_RUN", "true")

    params = RunParameters(business_date=NIGHT)

    assert (params.business_date, params.dry_run) == (dt.date(2026, 11, 25), False)


def test_a_bad_value_given_names_the_parameter_and_a_bad_variable_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ParameterError, match=r"^task_runner 'spark' is not allowed: .*'local'"):
        RunParameters.build(business_date=NIGHT, task_runner="spark")
    with pytest.raises(ParameterError, match=r"^dask_workers -2 is not allowed"):
        RunParameters.build(business_date=NIGHT, dask_workers=-2)
    with pytest.raises(ParameterError, match=r"^business_date '2026-02-30' is not a real"):
        RunParameters.build(business_date="2026-02-30")

    monkeypatch.setenv("ALLOCATION_DASK_WORKERS", "many")
    with pytest.raises(ParameterError, match=r"^ALLOCATION_DASK_WORKERS='many' .* unset it\.$"):
        RunParameters.build(business_date=NIGHT)
    assert RunParameters.build(business_date=NIGHT, dask_workers=2).dask_workers == 2


def test_an_unknown_setting_is_refused_not_ignored() -> None:
    with pytest.raises(TypeError, match="keep_publshed"):
        RunParameters.build(business_date=NIGHT, keep_publshed=3)


def test_parameters_are_frozen_and_travel_pickled_without_reading_the_environment_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    params = RunParameters.build(business_date=NIGHT, dry_run=True, workers=3)
    monkeypatch.setenv("ALLOCATION_WORKERS", "8")

    copy = pickle.loads(pickle.dumps(params))

    assert copy == params and copy.workers == 3 and copy.dry_run
    with pytest.raises(ValueError, match="frozen"):
        params.workers = 4  # type: ignore[misc]
