"""A sequence of nights times real nights: one that read fewer lines than were generated for it
(left waiting for the inbox to settle, as every night of `--nights` was once) stops the run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks.nights import read_every_line
from benchmarks.run import bench_settings


def night_folder(tmp_path: Path, received: int) -> Path:
    folder = tmp_path / "2026-11-25"
    folder.mkdir()
    summary = {"orders": {"received": received, "accepted": received}}
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def test_a_night_that_received_every_generated_line_passes(tmp_path: Path) -> None:
    read_every_line(night_folder(tmp_path, 1_000), 1_000, 1)


def test_a_night_that_received_nothing_stops_the_sequence(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="night 2 received 0 of the 1,000 order lines"):
        read_every_line(night_folder(tmp_path, 0), 1_000, 2)


def test_every_measured_night_reads_its_just_written_inbox_at_once() -> None:
    args = argparse.Namespace(workers="0", dask_workers=2)
    assert bench_settings(args)["ALLOCATION_INBOX_SETTLE_SECONDS"] == "0"


def test_the_one_file_nights_read_their_just_written_inbox_at_once() -> None:
    from benchmarks.one_file import night_env

    assert night_env({"PREFECT_HOME": "/x"})["ALLOCATION_INBOX_SETTLE_SECONDS"] == "0"


def test_the_one_file_inboxes_hold_every_order_line_once(tmp_path: Path) -> None:
    """Each one-file shape holds the many-file inbox's order lines, in order; the Parquet shapes
    keep polars' row groups or put every line in one row group, as their names say."""
    import polars as pl
    import pyarrow.parquet as pq

    from benchmarks.generate import generate
    from benchmarks.one_file import SHAPES, one_file_inboxes

    many = tmp_path / "inbox-many"
    generate(30_000, many)  # enough lines for polars to write more than one row group
    inboxes = one_file_inboxes(many, tmp_path, list(SHAPES))
    lines = pl.read_csv(sorted((many / "orders").glob("*.csv")), infer_schema=False)

    for shape in SHAPES[1:]:
        [only] = list((inboxes[shape] / "orders").iterdir())
        read = (
            pl.read_csv(only, infer_schema=False)
            if only.suffix == ".csv"
            else pl.read_parquet(only).cast(pl.String)
        )
        assert read.equals(lines), shape
        assert sorted(p.name for p in (inboxes[shape] / "batches").iterdir()) == sorted(
            p.name for p in (many / "batches").iterdir()
        )
    groups = pq.ParquetFile(next((inboxes["parquet-one-group"] / "orders").iterdir()))
    assert groups.metadata.num_row_groups == 1
