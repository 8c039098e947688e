"""One way through a night (issue 16 item 1): `run_night` and the Prefect flow go through the same
`NightRun.run`, so they check the same things first, take the same lock and never apply one run id
twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import duckdb
import pytest

from allocation import cli
from allocation.io.run_lock import RunLockTimeout
from allocation.io.unit_of_work import WarehouseError
from allocation.service.night import NightRun, NightSteps, run_night
from allocation.service.rollback import rollback
from allocation.service.state import state_db, warehouse_lock
from allocation.settings import RunParameters
from conftest import Site

NIGHT = "2026-11-25"
RUN_ID = "5f0c1e4e-2d7a-4b8e-9c61-0a9d3f6b7e21"


def a_night(site: Site) -> None:
    site.batches("b.csv", "B1,RETRO-CLOCK,10,")
    site.orders("o.csv", "o1,RETRO-CLOCK,3", "o2,RETRO-CLOCK,4")


def test_run_night_again_with_a_committed_run_id_does_not_apply_the_night_twice(
    site: Site,
) -> None:
    """As in the flow: a retried run (same run id) whose first attempt committed goes on to the
    reports from the committed state instead of allocating again."""
    a_night(site)
    first = run_night(site.params(NIGHT), run_id=RUN_ID)
    site.orders("late.csv", "o3,RETRO-CLOCK,1")  # arrives between the two attempts

    again = run_night(site.params(NIGHT), run_id=RUN_ID)

    assert site.query("SELECT run_id, orders_received FROM runs") == [(RUN_ID, 2)]
    assert site.query("SELECT count(*) FROM allocations") == [(2,)]
    assert again["allocated"] == first["allocated"] == 2


def test_run_night_refuses_a_warehouse_path_it_could_never_publish_before_anything(
    site: Site,
) -> None:
    """The flow's pre-checks: a foreign DuckDB file at the warehouse path is refused up front
    (run_night used to commit the night, then fail to publish it)."""
    a_night(site)
    con = duckdb.connect(str(site.warehouse))
    con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    con.close()

    with pytest.raises(WarehouseError, match="did not create"):
        site.run(NIGHT)

    assert not site.params(NIGHT).state_dir.exists()
    assert not site.outbox.exists()


def recorded(calls: list[str]) -> NightSteps:
    """The night's own steps, each noting its call first."""
    plain = NightSteps.plain()

    def noted(name: str, step: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls.append(name)
            return step(*args)

        return call

    return NightSteps(
        finish_committed=noted("finish-committed-night", plain.finish_committed),
        already_ingested=noted("check-already-ingested", plain.already_ingested),
        load=noted("load", plain.load),
        allocate=noted("allocate", plain.allocate),
        write_reports=noted("write-reports", plain.write_reports),
        publish=noted("publish", plain.publish),
        copying_state=plain.copying_state,
    )


@pytest.mark.parametrize(
    ("dry_run", "steps"),
    [
        (
            False,
            [
                "finish-committed-night",
                "check-already-ingested",
                "load",
                "allocate",
                "write-reports",
                "publish",
            ],
        ),
        (
            True,
            [
                "finish-committed-night",
                "check-already-ingested",
                "load",
                "allocate",
                "write-reports",
            ],
        ),
    ],
)
def test_the_steps_run_in_order_and_a_dry_run_publishes_nothing(
    site: Site, dry_run: bool, steps: list[str]
) -> None:
    a_night(site)
    night = NightRun.start(site.params(NIGHT, dry_run=dry_run))
    calls: list[str] = []

    ran = night.run(recorded(calls))

    assert calls == steps
    assert (ran.published is None) == dry_run
    assert site.warehouse.exists() != dry_run


def test_every_writer_takes_the_same_lock_and_names_who_holds_it(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a_night(site)
    site.run(NIGHT)  # something to publish and roll back to
    monkeypatch.setenv("ALLOCATION_LOCK_TIMEOUT_SECONDS", "0")
    holder = "a-manual-run"
    with warehouse_lock(site.params(NIGHT), holder):
        with pytest.raises(RunLockTimeout, match=holder):
            site.run(NIGHT)
        with pytest.raises(RunLockTimeout, match=holder):
            rollback(site.params(NIGHT))
        with pytest.raises(RunLockTimeout, match=holder):
            NightRun.start(site.params(NIGHT)).run(when_locked=_refused)
        assert cli.main(["publish", "--warehouse", str(site.warehouse)]) == 3
        assert holder in capsys.readouterr().err
    assert site.query("SELECT count(*) FROM runs") == [(1,)]


def _refused(holder: str) -> NoReturn:
    raise RunLockTimeout(holder)


def test_the_analysts_copy_is_written_in_the_storage_version_of_the_runs_parameters(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher takes the storage version from the night's parameters (io reads no
    environment): given here, it wins over ALLOCATION_WAREHOUSE_STORAGE_VERSION."""
    a_night(site)
    monkeypatch.setenv("ALLOCATION_WAREHOUSE_STORAGE_VERSION", "v1.1.0")
    params = RunParameters.build(
        inbox=site.inbox,
        warehouse=site.warehouse,
        outbox=site.outbox,
        business_date=NIGHT,
        warehouse_storage_version="pipeline",
    )

    run_night(params)

    assert site.warehouse.read_bytes() == state_db(params).read_bytes()  # byte for byte
