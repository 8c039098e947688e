"""The analysts' file's storage version setting refuses what older clients could not open."""

from __future__ import annotations

import pytest

from allocation.settings import ParameterError, Settings
from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION, parse_storage_version


def test_the_default_is_the_oldest_storage_version_the_warehouse_allows() -> None:
    assert Settings().warehouse_storage_version == DEFAULT_STORAGE_VERSION == "v1.1.0"


@pytest.mark.parametrize(
    ("given", "kept"),
    [("v1.1.0", "v1.1.0"), (" V1.4.0 ", "v1.4.0"), ("latest", "latest"), ("pipeline", "pipeline")],
)
def test_known_storage_versions_are_accepted(given: str, kept: str) -> None:
    assert parse_storage_version(given) == kept


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("v1.0.0", "DuckDB before 1.1 cannot read its primary keys"),
        ("v0.10.2", "use v1.1.0 or newer"),
        ("1.1.0", "is not a DuckDB storage version"),
        ("", "is not a DuckDB storage version"),
        ("v1.1.9", "is not a storage version DuckDB"),
        ("v1.1.0'; DROP TABLE runs; --", "is not a DuckDB storage version"),
    ],
)
def test_storage_versions_no_reader_could_use_are_refused(given: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_storage_version(given)


def test_the_environment_setting_is_checked_when_settings_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "v1.0.0")
    with pytest.raises(ParameterError, match=r"ALLOCATION_WAREHOUSE_STORAGE_VERSION: 'v1\.0\.0'"):
        Settings()
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "v1.2.0")
    assert Settings().warehouse_storage_version == "v1.2.0"
