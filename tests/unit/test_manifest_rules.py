"""The manifest rules (the book's chapter 9) through the service layer, on a fake repository: no
DuckDB. A known batch gets a new eta or quantity; a shrinking batch gives back its newest lines,
which the same night places elsewhere or leaves out of stock, and each one's destination is kept."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import polars as pl
import pytest
from fakes import FakeRepository, FakeUnitOfWork

from allocation.service.manifest import apply_manifest_updates

DAY = dt.date(2026, 11, 26)
RUN = "run-1"
NEXT_WEEK = DAY + dt.timedelta(days=7)
LATER = DAY + dt.timedelta(days=21)


def manifest(*rows: tuple[str, int, dt.date | None]) -> pl.DataFrame:
    """Tonight's changes to known batches, in the order received: reference, qty, eta."""
    return pl.DataFrame(
        [
            (ref, qty, eta, "batches/manifest.csv", line)
            for line, (ref, qty, eta) in enumerate(rows, 2)
        ],
        schema={
            "reference": pl.String,
            "qty": pl.Int64,
            "eta": pl.Date,
            "source_file": pl.String,
            "line": pl.Int64,
        },
        orient="row",
    )


@pytest.fixture
def repo() -> FakeRepository:
    """Two clock batches: B-CLOCK-1 in stock holding three lines (oldest first), B-CLOCK-2 due
    next week and empty."""
    repo = FakeRepository()
    repo.add_batch("B-CLOCK-1", "RETRO-CLOCK", 10)
    repo.add_batch("B-CLOCK-2", "RETRO-CLOCK", 10, NEXT_WEEK)
    repo.add_allocated_line("o1", "RETRO-CLOCK", 3, "B-CLOCK-1")
    repo.add_allocated_line("o2", "RETRO-CLOCK", 3, "B-CLOCK-1")
    repo.add_allocated_line("o3", "RETRO-CLOCK", 3, "B-CLOCK-1")
    return repo


def test_an_eta_change_moves_the_batch_and_keeps_its_lines(repo: FakeRepository) -> None:
    changes = apply_manifest_updates(repo, manifest(("B-CLOCK-2", 10, LATER)), DAY, RUN)

    assert repo.batch("B-CLOCK-2") == ("RETRO-CLOCK", 10, LATER)
    assert [c["change"] for c in repo.batch_changes] == ["eta"]
    assert (repo.batch_changes[0]["old_eta"], repo.batch_changes[0]["new_eta"]) == (
        NEXT_WEEK,
        LATER,
    )
    assert changes.counts["eta_changes"] == 1
    assert changes.counts["lines_released"] == 0


def test_a_quantity_increase_keeps_every_line_and_is_logged_as_qty_up(repo: FakeRepository) -> None:
    changes = apply_manifest_updates(repo, manifest(("B-CLOCK-1", 25, None)), DAY, RUN)

    assert repo.batch("B-CLOCK-1") == ("RETRO-CLOCK", 25, None)
    assert [(c["change"], c["old_qty"], c["new_qty"]) for c in repo.batch_changes] == [
        ("qty_up", 10, 25)
    ]
    assert changes.counts["qty_increases"] == 1
    assert changes.released.height == 0
    assert {line.batchref for line in repo.lines} == {"B-CLOCK-1"}


def test_a_quantity_decrease_releases_the_newest_lines_until_the_rest_fit(
    repo: FakeRepository,
) -> None:
    changes = apply_manifest_updates(repo, manifest(("B-CLOCK-1", 4, None)), DAY, RUN)

    assert changes.released["orderid"].to_list() == ["o3", "o2"]
    assert set(changes.released["reason_code"]) == {"qty_down"}
    assert changes.released["reason"][0] == "batch B-CLOCK-1 quantity reduced from 10 to 4"
    assert (repo.line("o1", "RETRO-CLOCK").status, repo.line("o3", "RETRO-CLOCK").status) == (
        "allocated",
        "out_of_stock",
    )
    assert changes.counts["qty_decreases"] == 1
    assert changes.counts["lines_released"] == 2


def test_a_cancelled_batch_releases_its_lines_to_the_next_batch(repo: FakeRepository) -> None:
    changes = apply_manifest_updates(repo, manifest(("B-CLOCK-1", 0, None)), DAY, RUN)
    repo.allocate_open_lines()  # the night's decision, with every other open line

    replaced = changes.record_destinations(repo, DAY, RUN)

    assert changes.counts["cancellations"] == 1
    assert [(r["orderid"], r["from_batchref"], r["to_batchref"]) for r in repo.reallocations] == [
        ("o3", "B-CLOCK-1", "B-CLOCK-2"),
        ("o2", "B-CLOCK-1", "B-CLOCK-2"),
        ("o1", "B-CLOCK-1", "B-CLOCK-2"),
    ]
    assert {r["reason"] for r in repo.reallocations} == {"batch B-CLOCK-1 cancelled"}
    assert {(r["business_date"], r["run_id"]) for r in repo.reallocations} == {(DAY, RUN)}
    assert replaced == 3


def test_a_released_line_no_batch_can_take_is_kept_as_going_nowhere(
    repo: FakeRepository,
) -> None:
    changes = apply_manifest_updates(
        repo, manifest(("B-CLOCK-2", 4, NEXT_WEEK), ("B-CLOCK-1", 0, None)), DAY, RUN
    )
    repo.allocate_open_lines()

    replaced = changes.record_destinations(repo, DAY, RUN)

    assert [(r["orderid"], r["to_batchref"]) for r in repo.reallocations] == [
        ("o3", None),
        ("o2", None),
        ("o1", "B-CLOCK-2"),
    ]
    assert replaced == 1


def test_a_manifest_row_that_repeats_the_batch_counts_an_update_and_changes_nothing(
    repo: FakeRepository,
) -> None:
    changes = apply_manifest_updates(repo, manifest(("B-CLOCK-2", 10, NEXT_WEEK)), DAY, RUN)

    assert changes.counts["batches_updated"] == 1
    assert sum(changes.counts.values()) == 1
    assert repo.batch_changes == []


def test_changes_to_the_same_batch_apply_in_the_order_received(repo: FakeRepository) -> None:
    changes = apply_manifest_updates(
        repo, manifest(("B-CLOCK-1", 4, None), ("B-CLOCK-1", 12, None)), DAY, RUN
    )

    assert [c["change"] for c in repo.batch_changes] == ["qty_down", "qty_up"]
    assert repo.batch("B-CLOCK-1") == ("RETRO-CLOCK", 12, None)
    assert changes.counts["lines_released"] == 2


class Untouchable(FakeRepository):
    """A repository that must not be asked anything."""

    def __getattribute__(self, name: str) -> object:
        if name in (
            "batches_with_lines",
            "save_batch_changes",
            "destinations",
            "record_reallocations",
        ):
            raise AssertionError(f"the repository was asked {name}")
        return super().__getattribute__(name)


def test_a_night_without_manifest_changes_asks_nothing_of_the_repository() -> None:
    repo = Untouchable()

    changes = apply_manifest_updates(repo, manifest(), DAY, RUN)

    assert changes.counts == dict.fromkeys(changes.counts, 0)
    assert changes.record_destinations(repo, DAY, RUN) == 0


def test_the_manifest_rules_run_without_duckdb() -> None:
    """Only the service layer's protocols, the domain and polars: no database to start."""
    code = (
        "import sys, allocation.service.manifest, allocation.service.storage; "
        "assert 'duckdb' not in sys.modules, 'duckdb imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_manifest_changes_in_a_unit_of_work_that_does_not_commit_are_not_kept(
    repo: FakeRepository,
) -> None:
    with FakeUnitOfWork(repo) as uow:
        apply_manifest_updates(uow.repo, manifest(("B-CLOCK-1", 0, None)), DAY, RUN)

    assert repo.batch("B-CLOCK-1") == ("RETRO-CLOCK", 10, None)
    assert repo.batch_changes == []
    assert uow.commits == 0


def test_manifest_changes_in_a_unit_of_work_that_commits_are_kept(repo: FakeRepository) -> None:
    with FakeUnitOfWork(repo) as uow:
        apply_manifest_updates(uow.repo, manifest(("B-CLOCK-1", 0, None)), DAY, RUN)
        uow.commit()

    assert repo.batch("B-CLOCK-1") == ("RETRO-CLOCK", 0, None)
    assert {line.status for line in repo.lines} == {"out_of_stock"}
