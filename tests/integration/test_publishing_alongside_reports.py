"""The committed state is copied for the analysts and for rollbacks while the night's reports
are written (the copies wait on the disk, the reports on the CPU), and put in place only once
the reports are there: what analysts see, and when, is unchanged."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import duckdb
import pytest

from allocation.io.publish import PublishError
from allocation.service import after_commit
from allocation.service.night import NightRun, NightSteps
from allocation.service.night_transaction import NightOutcome
from allocation.service.state import state_db
from allocation.settings import RunParameters
from conftest import Site


def a_night(site: Site, orders: str = "o.csv") -> None:
    site.batches("b.csv", "B1,RETRO-CLOCK,10,")
    site.orders(orders, "o1,RETRO-CLOCK,3", "o2,RETRO-CLOCK,4")


def _complete_copy_beside(warehouse: Path, state: Path, wait: float = 20.0) -> bool:
    """Whether a complete copy of `state` appears under a temporary name beside `warehouse`
    within `wait` seconds."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for copy in warehouse.parent.glob(f".{warehouse.name}.publish-*"):
            if copy.stat().st_size == state.stat().st_size:
                return True
        time.sleep(0.01)
    return False


def test_the_analysts_copy_is_made_while_the_reports_are_written(site: Site) -> None:
    a_night(site)
    params = site.params("2026-11-25")
    seen: list[bool] = []

    def reports_once_the_copy_is_there(params: RunParameters, outcome: NightOutcome) -> Path:
        seen.append(_complete_copy_beside(params.warehouse, state_db(params)))
        assert not params.warehouse.exists(), "published before its reports were written"
        return after_commit.write_reports(params, outcome)

    steps = dataclasses.replace(NightSteps.plain(), write_reports=reports_once_the_copy_is_there)
    ran = NightRun.start(params).run(steps)

    assert seen == [True]
    state = state_db(params)
    assert params.warehouse.read_bytes() == state.read_bytes()
    assert ran.published is not None
    assert ran.published.read_bytes() == state.read_bytes()
    assert site.query("SELECT count(*) FROM allocations") == [(2,)]
    assert list(site.warehouse.parent.glob(".*.publish-*")) == []
    assert list(params.state_folder.published.glob(".*.partial")) == []


def test_reports_that_fail_leave_the_analysts_their_night_and_no_copies_behind(
    site: Site,
) -> None:
    a_night(site)
    site.run("2026-11-25")
    before = site.warehouse.read_bytes()
    kept_before = sorted(p.name for p in site.params("2026-11-25").state_folder.published.iterdir())
    site.orders("o2.csv", "o3,RETRO-CLOCK,1")
    params = site.params("2026-11-26")

    def reports_that_fail(params: RunParameters, outcome: NightOutcome) -> Path:
        assert _complete_copy_beside(params.warehouse, state_db(params))
        raise OSError(28, "No space left on device")

    steps = dataclasses.replace(NightSteps.plain(), write_reports=reports_that_fail)
    with pytest.raises(OSError, match="No space left"):
        NightRun.start(params).run(steps)

    assert site.warehouse.read_bytes() == before
    assert list(site.warehouse.parent.glob(".*.publish-*")) == []
    assert sorted(p.name for p in params.state_folder.published.iterdir()) == kept_before


def test_a_dry_run_copies_nothing(site: Site) -> None:
    a_night(site)
    params = site.params("2026-11-25", dry_run=True)
    copies: list[str] = []

    def reports_noting_copies(params: RunParameters, outcome: NightOutcome) -> Path:
        copies.extend(p.name for p in params.warehouse.parent.glob(".*.publish-*"))
        return after_commit.write_reports(params, outcome)

    steps = dataclasses.replace(NightSteps.plain(), write_reports=reports_noting_copies)
    NightRun.start(params).run(steps)

    assert copies == []
    assert not site.warehouse.exists()


def test_nights_published_alongside_their_reports_are_the_committed_state_byte_for_byte(
    site: Site,
) -> None:
    a_night(site)
    first = NightRun.start(site.params("2026-11-25")).run()
    site.batches("b2.csv", "B1,RETRO-CLOCK,5,", "B2,RETRO-CLOCK,20,2026-12-01")  # qty down
    site.orders("o2.csv", "o3,RETRO-CLOCK,6")
    params = site.params("2026-11-26")

    second = NightRun.start(params).run()

    state = state_db(params).read_bytes()
    assert site.warehouse.read_bytes() == state
    assert second.published is not None and second.published.read_bytes() == state
    assert first.published is not None and first.published.read_bytes() != state
    assert site.query("SELECT count(*) FROM order_lines") == [(3,)]


def test_a_file_put_at_the_warehouse_path_while_the_reports_are_written_is_kept(
    site: Site,
) -> None:
    a_night(site)
    params = site.params("2026-11-25")

    def someone_takes_the_path_meanwhile(params: RunParameters, outcome: NightOutcome) -> Path:
        assert _complete_copy_beside(params.warehouse, state_db(params))
        con = duckdb.connect(str(params.warehouse))
        con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
        con.close()
        return after_commit.write_reports(params, outcome)

    steps = dataclasses.replace(NightSteps.plain(), write_reports=someone_takes_the_path_meanwhile)
    with pytest.raises(PublishError, match="did not create"):
        NightRun.start(params).run(steps)

    assert site.query("SELECT answer FROM precious") == [(42,)]
    assert list(site.warehouse.parent.glob(".*.publish-*")) == []
    assert list(params.state_folder.published.glob("*")) == []
