"""Publishing writes two copies of the closed working state: the analysts' file and the copy
kept for rollbacks. Each is whole, and a night that was not published keeps no copy and leaves
nothing half-written."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from allocation.io import publish
from allocation.io.publish import PublishError, publish_copy
from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION


def a_working_state(path: Path, rows: int = 200_000) -> Path:
    con = duckdb.connect(str(path), config={"storage_compatibility_version": "v1.1.0"})
    try:
        con.execute(
            "CREATE TABLE order_lines AS SELECT 'ORDER-' || i AS orderid, 'RETRO-CLOCK' AS sku, "
            "i % 7 + 1 AS qty FROM range($rows) t(i)",
            {"rows": rows},
        )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path


def kept_files(folder: Path) -> list[str]:
    """Everything in the kept copies' folder, if there is one."""
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_analysts_copy_and_the_kept_copy_are_both_whole_copies(tmp_path: Path) -> None:
    state = a_working_state(tmp_path / "state.duckdb")
    warehouse = tmp_path / "warehouse.duckdb"

    kept = publish_copy(
        state, warehouse, tmp_path / "published", "night-1", 3, DEFAULT_STORAGE_VERSION
    )

    assert kept == tmp_path / "published" / "night-1.duckdb"
    assert warehouse.read_bytes() == state.read_bytes() == kept.read_bytes()
    assert sorted(p.name for p in (tmp_path / "published").iterdir()) == ["night-1.duckdb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "published",
        "state.duckdb",
        "warehouse.duckdb",
    ]


def test_a_night_not_published_keeps_no_copy_and_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    state = a_working_state(tmp_path / "state.duckdb")
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.mkdir()  # the analysts' path taken by a folder: the night cannot be published

    with pytest.raises(PublishError, match="could not be replaced"):
        publish_copy(
            state, warehouse, tmp_path / "published", "night-1", 3, DEFAULT_STORAGE_VERSION
        )

    assert kept_files(tmp_path / "published") == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "published") == [
        "state.duckdb",
        "warehouse.duckdb",
    ]


def test_a_kept_copy_that_cannot_be_written_is_said_after_the_night_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = a_working_state(tmp_path / "state.duckdb")
    warehouse = tmp_path / "warehouse.duckdb"

    def no_room(state_db: Path, partial: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish, "copy_for_rollbacks", no_room)

    with pytest.raises(PublishError, match="committed and published, but its copy for rollbacks"):
        publish_copy(
            state, warehouse, tmp_path / "published", "night-1", 3, DEFAULT_STORAGE_VERSION
        )

    assert warehouse.read_bytes() == state.read_bytes()
    assert kept_files(tmp_path / "published") == []
