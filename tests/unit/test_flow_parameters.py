"""The flow's parameter types and the data roots a deployment run is confined to (no Prefect
run needed: plain functions over paths)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from allocation.flows.parameters import (
    BusinessDate,
    OutsideDataRoots,
    TaskRunnerChoice,
    confine_to_data_roots,
)
from allocation.settings import RunParameters, Settings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def params(root: Path, **paths: Path) -> RunParameters:
    return RunParameters.build(
        inbox=paths.get("inbox", root / "inbox"),
        warehouse=paths.get("warehouse", root / "warehouse.duckdb"),
        outbox=paths.get("outbox", root / "outbox"),
        business_date="2026-11-25",
    )


def test_paths_inside_a_root_are_accepted(root: Path) -> None:
    confine_to_data_roots(params(root), [root.resolve()], staging=str(root / "staging"))


@pytest.mark.parametrize("name", ["inbox", "outbox", "warehouse"])
def test_a_path_outside_every_root_is_refused_with_the_roots_named(
    root: Path, tmp_path: Path, name: str
) -> None:
    outside = tmp_path / "elsewhere" / "x"
    with pytest.raises(OutsideDataRoots, match=f"^{name} .* is outside the data roots {root}"):
        confine_to_data_roots(params(root, **{name: outside}), [root.resolve()], staging="")


def test_dot_dot_and_symlinks_are_followed_before_the_check(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    (root / "reports").symlink_to(tmp_path / "secret", target_is_directory=True)
    for outbox in (root / ".." / "secret", root / "reports", root / "reports" / "deeper"):
        with pytest.raises(OutsideDataRoots, match="outbox"):
            confine_to_data_roots(params(root, outbox=outbox), [root.resolve()], staging="")


def test_the_warehouse_state_folder_may_not_lead_out_of_the_roots(
    root: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (root / ".warehouse.duckdb.pipeline").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OutsideDataRoots, match="warehouse state folder"):
        confine_to_data_roots(params(root), [root.resolve()], staging="")


def test_the_warehouse_cannot_be_a_root_itself(root: Path) -> None:
    """Its state folder would sit beside the root, outside it."""
    with pytest.raises(OutsideDataRoots, match="warehouse"):
        confine_to_data_roots(params(root, warehouse=root), [root.resolve()], staging="")


@pytest.mark.parametrize(
    "staging", ["s3://bucket/staging", "/tmp/elsewhere-staging", "file:///tmp/elsewhere"]
)
def test_a_staging_parameter_elsewhere_or_on_another_file_system_is_refused(
    root: Path, staging: str
) -> None:
    with pytest.raises(OutsideDataRoots, match=r"^staging"):
        confine_to_data_roots(params(root), [root.resolve()], staging=staging)


def test_a_file_url_staging_inside_a_root_is_accepted(root: Path) -> None:
    confine_to_data_roots(params(root), [root.resolve()], staging=(root / "stage").as_uri())


def test_no_roots_refuses_everything_and_says_why(root: Path) -> None:
    with pytest.raises(OutsideDataRoots, match="ALLOCATION_DATA_ROOTS is empty"):
        confine_to_data_roots(params(root), [], staging="")


def test_data_roots_are_colon_separated_and_default_to_the_checkouts_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().data_root_paths == (Path(__file__).resolve().parents[2] / "data",)
    monkeypatch.setenv("ALLOCATION_DATA_ROOTS", f"{tmp_path}/a: {tmp_path}/b:")
    assert Settings().data_root_paths == (tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, None), ("", None), ("  ", None), ("2026-11-25", dt.date(2026, 11, 25))],
)
def test_a_business_date_is_a_date_or_none(given: str | None, expected: dt.date | None) -> None:
    assert TypeAdapter(BusinessDate).validate_python(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("2026-02-30", "not a real calendar date"),
        ("26/11/2026", "is not a date: use YYYY-MM-DD"),
        ("2026-11-25T02:30", "is not a date"),
        (1764000000, "is not a date"),  # pydantic alone would read a timestamp
        (dt.datetime(2026, 11, 25, 2, 30), "has a time"),
    ],
)
def test_anything_but_a_plain_date_is_refused(given: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(BusinessDate).validate_python(given)


def test_a_task_runner_is_local_dask_or_none() -> None:
    adapter = TypeAdapter(TaskRunnerChoice)
    assert [adapter.validate_python(v) for v in ("local", "dask", "", None)] == [
        "local",
        "dask",
        None,
        None,
    ]
    with pytest.raises(ValidationError):
        adapter.validate_python("gpu")
