"""Undo a night: `allocation rollback --to DATE` restores the working state kept after that
night, republishes it, and points `latest` back at it. And the copies it restores from are the
pipeline's own: nothing an analyst opens for writing changes them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from allocation import cli, services
from conftest import Site


def kept_copies(site: Site) -> list[Path]:
    return sorted((site.params("2026-11-25").state_dir / "published").glob("*.duckdb"))


def analyst_edits(warehouse: Path) -> None:
    """An analyst opens the published file read-write and changes a table."""
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("UPDATE batches SET purchased = 999")
        con.execute("CREATE TABLE my_notes AS SELECT 1 AS x")
    finally:
        con.close()


def purchased_in(path: Path) -> list[tuple[str, int]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.sql("SELECT reference, purchased FROM batches ORDER BY 1").fetchall()
    finally:
        con.close()


def test_the_kept_copies_do_not_share_anything_with_the_analysts_file(
    site: Site, day: Callable[[int], str]
) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,3,")
    site.run(day(0))
    [kept] = kept_copies(site)
    assert not os.path.samefile(kept, site.warehouse)

    analyst_edits(site.warehouse)

    assert purchased_in(kept) == [("b1", 3)]
