"""Publishing is a byte copy of the working state, which is created in the analysts' storage
version; a working state in another version (made by an earlier release, or before the setting
changed) is converted once, and the published file is in the version asked for either way."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_analysts import NIGHT_1, NIGHT_2, sample_site, second_night_inbox
from test_older_clients import as_earlier_releases_left_it, old_answer, old_cli

from allocation import cli
from allocation.io.compatible_copy import storage_tag
from allocation.service.state import state_db
from conftest import Site

OLDEST_READ_BY_1_1 = "v1.0.0+"  # DuckDB's tag for files DuckDB 1.0 to 1.1 read (v1.1.0 written)
NEWEST = "v2.0.0+"


def header_version(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[12:20], "little")


def kept_copies(site: Site) -> list[Path]:
    return sorted((site.root / ".warehouse.duckdb.pipeline" / "published").glob("*.duckdb"))


def test_a_new_warehouse_is_published_as_a_byte_copy_of_its_working_state(tmp_path: Path) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    second_night_inbox(site)
    site.run(NIGHT_2)
    state = state_db(site.params(NIGHT_2))
    assert storage_tag(state) == OLDEST_READ_BY_1_1, "created in the analysts' version"
    assert site.warehouse.read_bytes() == state.read_bytes()
    assert kept_copies(site)[-1].read_bytes() == state.read_bytes()
    answer = old_answer(
        site.warehouse, "SELECT max(business_date)::VARCHAR AS n FROM runs", tmp_path
    )
    assert answer == [[("n", NIGHT_2)]]


def test_a_night_after_an_earlier_release_publishes_for_the_1x_cli_and_converts_the_state_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    state = state_db(site.params(NIGHT_1))
    as_earlier_releases_left_it(state)
    second_night_inbox(site)

    with caplog.at_level(logging.INFO, logger="allocation"):
        site.run(NIGHT_2)
    assert "converting it (once)" in caplog.text
    assert storage_tag(state) == OLDEST_READ_BY_1_1
    assert site.warehouse.read_bytes() == state.read_bytes()
    answer = old_answer(site.warehouse, "SELECT count(*) AS runs FROM runs", tmp_path)
    assert answer == [[("runs", "2")]]
    # The kept copy of the night is in the analysts' version too: the 1.x CLI opens it.
    kept = kept_copies(site)[-1]
    assert old_answer(kept, "SELECT count(*) AS runs FROM runs", tmp_path) == [[("runs", "2")]]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="allocation"):
        assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
    assert "converting" not in caplog.text, "converted once, then byte copies"


def test_a_storage_version_changed_between_nights_is_the_one_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    state = state_db(site.params(NIGHT_1))
    for asked, tag, number in (
        ("latest", NEWEST, 999),  # DuckDB 2.x writes 999 in the header, its tags say the rest
        ("v1.5.0", "v1.5.0+", 68),
        ("v1.1.0", OLDEST_READ_BY_1_1, 64),
    ):
        monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", asked)
        assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
        assert (storage_tag(site.warehouse), header_version(site.warehouse)) == (tag, number)
        assert storage_tag(state) == tag, asked
    second_night_inbox(site)
    site.run(NIGHT_2)
    answer = old_answer(
        site.warehouse, "SELECT max(business_date)::VARCHAR AS n FROM runs", tmp_path
    )
    assert answer == [[("n", NIGHT_2)]]


def test_the_pipeline_setting_leaves_a_converted_state_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pipeline` publishes the working file byte for byte, whatever its version: a state
    converted to another version stays in it."""
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    state = state_db(site.params(NIGHT_1))
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "latest")
    assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
    assert storage_tag(state) == NEWEST, "converted to the newest version"

    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "pipeline")
    second_night_inbox(site)
    site.run(NIGHT_2)
    assert storage_tag(state) == NEWEST, "left in the version it was converted to"
    assert storage_tag(site.warehouse) == NEWEST
    assert site.warehouse.read_bytes() == state.read_bytes()


def test_a_conversion_killed_half_way_leaves_the_working_state_whole(tmp_path: Path) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    state = state_db(site.params(NIGHT_1))
    as_earlier_releases_left_it(state)
    before = state.read_bytes()
    published = site.warehouse.read_bytes()
    command = Path(sys.executable).parent / "allocation"
    done = subprocess.run(
        [str(command), "publish", "--warehouse", str(site.warehouse)],
        env={**os.environ, "ALLOCATION_CRASH_AT": "while-converting"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr
    assert state.read_bytes() == before, "the working state is untouched"
    assert site.warehouse.read_bytes() == published
    assert list(state.parent.glob(".state.duckdb.convert-*")), "the half-written copy is there"

    assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 0
    assert list(state.parent.glob(".state.duckdb.convert-*")) == []
    assert storage_tag(state) == OLDEST_READ_BY_1_1
    assert old_answer(site.warehouse, "SELECT count(*) AS runs FROM runs", tmp_path) == [
        [("runs", "1")]
    ]
    assert old_cli("-readonly", str(site.warehouse), "-c", "SELECT 1", cwd=tmp_path).returncode == 0


def test_a_rollback_to_a_copy_kept_by_an_earlier_release_publishes_for_the_1x_cli(
    tmp_path: Path,
) -> None:
    site = sample_site(tmp_path)
    site.run(NIGHT_1)
    [kept] = kept_copies(site)
    as_earlier_releases_left_it(kept)
    second_night_inbox(site)
    site.run(NIGHT_2)

    code = cli.main(
        [
            "rollback",
            "--to",
            NIGHT_1,
            "--warehouse",
            str(site.warehouse),
            "--outbox",
            str(site.outbox),
        ]
    )

    assert code == 0
    state = state_db(site.params(NIGHT_1))
    assert storage_tag(state) == OLDEST_READ_BY_1_1
    answer = old_answer(
        site.warehouse, "SELECT max(business_date)::VARCHAR AS n FROM runs", tmp_path
    )
    assert answer == [[("n", NIGHT_1)]]
