"""Issue 15 item 1: which night may run now, given the deployment's other unfinished runs.
Plain values, no Prefect server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.client.schemas.objects import FlowRun, State, StateType

from allocation.flows.ordering import GiveUp, OtherNight, Proceed, Wait, decide, other_nights
from allocation.flows.recovery import first_crash
from allocation.settings import Settings

NOW = dt.datetime(2026, 11, 27, 2, 31, tzinfo=dt.UTC)
RETRY = dt.timedelta(minutes=2)
LIMIT = dt.timedelta(hours=6)


def night(
    day: str, *, starts: dt.datetime = NOW, state: str = "AwaitingConcurrencySlot"
) -> OtherNight:
    return OtherNight(f"run-{day}", f"night-{day}", state, dt.date.fromisoformat(day), starts)


def decide_for(day: str, *others: OtherNight, since: dt.datetime = NOW) -> Proceed | Wait | GiveUp:
    return decide(
        dt.date.fromisoformat(day),
        others,
        now=NOW,
        waiting_since=since,
        retry_in=RETRY,
        give_up_after=LIMIT,
    )


def test_a_night_with_no_earlier_night_pending_runs_now() -> None:
    assert decide_for("2026-11-26") == Proceed()


def test_later_nights_and_reruns_of_the_same_night_do_not_hold_a_night_back() -> None:
    tomorrow = NOW + dt.timedelta(days=1)
    assert (
        decide_for(
            "2026-11-26",
            night("2026-11-27"),
            night("2026-11-28", starts=tomorrow),
            night("2026-11-26"),
        )
        == Proceed()
    )


def test_a_later_night_waits_for_an_earlier_pending_night_and_names_it() -> None:
    decision = decide_for("2026-11-27", night("2026-11-26", state="Late"), night("2026-11-25"))

    assert isinstance(decision, Wait)
    assert decision.until == NOW + RETRY
    # Named oldest first, with its run and state, so the operator sees what it waits for.
    assert decision.message.index("night-2026-11-25") < decision.message.index("night-2026-11-26")
    assert "run-2026-11-26, Late" in decision.message


def test_a_night_waits_until_an_earlier_night_scheduled_later_is_due() -> None:
    due = NOW + dt.timedelta(hours=1)
    decision = decide_for("2026-11-27", night("2026-11-26", starts=due, state="Scheduled"))

    assert isinstance(decision, Wait) and decision.until == due + RETRY


def test_a_night_that_waited_past_the_limit_fails_saying_what_to_run_first() -> None:
    decision = decide_for("2026-11-27", night("2026-11-26"), since=NOW - LIMIT)

    assert isinstance(decision, GiveUp)
    assert "night-2026-11-26" in decision.message
    assert "Run the earlier night(s) first" in decision.message
    assert "then run 2026-11-27 again" in decision.message


def test_a_night_whose_earlier_night_is_due_only_after_the_limit_fails_at_once() -> None:
    decision = decide_for("2026-11-27", night("2026-11-20", starts=NOW + 2 * LIMIT))

    assert isinstance(decision, GiveUp)
    assert "night-2026-11-20" in decision.message and "waiting limit" in decision.message


def test_the_last_wait_never_goes_past_the_limit() -> None:
    since = NOW - LIMIT + dt.timedelta(seconds=30)
    decision = decide_for("2026-11-27", night("2026-11-26"), since=since)

    assert isinstance(decision, Wait) and decision.until == since + LIMIT


def flow_run(**parameters: object) -> FlowRun:
    return FlowRun(
        id=uuid4(),
        flow_id=uuid4(),
        name="wise-otter",
        parameters=parameters,
        expected_start_time=dt.datetime(2026, 11, 26, 2, 30, tzinfo=dt.UTC),
        state=State(type=StateType.SCHEDULED, name="Late"),
    )


def test_only_runs_that_could_commit_to_the_same_warehouse_count(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    me = flow_run(warehouse=str(warehouse), business_date="2026-11-27")
    counted = flow_run(warehouse=str(warehouse), business_date="2026-11-24")
    scheduled = flow_run(warehouse=str(warehouse), business_date="")  # the night it is due
    others = [
        me,
        counted,
        scheduled,
        flow_run(warehouse=str(warehouse), business_date="2026-11-24", dry_run=True),
        flow_run(warehouse=str(tmp_path / "other.duckdb"), business_date="2026-11-24"),
        flow_run(warehouse=str(warehouse), business_date="2026-02-30"),  # fails on its own
    ]

    nights = other_nights(others, str(me.id), warehouse, Settings())

    assert [(n.run_id, n.business_date.isoformat(), n.state) for n in nights] == [
        (str(counted.id), "2026-11-24", "Late"),
        (str(scheduled.id), "2026-11-26", "Late"),
    ]


def test_an_empty_warehouse_parameter_is_the_default_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    default = Path("data/warehouse.duckdb").absolute()
    nights = other_nights(
        [flow_run(warehouse="", business_date="2026-11-24")], "me", default, Settings()
    )
    assert len(nights) == 1


def test_a_crashed_night_is_retried_on_its_first_crash_only() -> None:
    running = State(type=StateType.RUNNING)
    crashed = State(type=StateType.CRASHED)
    assert first_crash([running, crashed])
    assert not first_crash([running, crashed, State(type=StateType.SCHEDULED), running, crashed])


def test_runs_spelling_the_warehouse_through_a_symlink_or_dotdot_count(tmp_path: Path) -> None:
    """Issue 27: the paths were compared as spelled, so `whlink/w.duckdb` (whlink -> wh) and
    `wh/sub/../w.duckdb` were other warehouses and the later night did not wait."""
    real = tmp_path / "wh"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "whlink").symlink_to(real)
    warehouse = real / "w.duckdb"
    others = [
        flow_run(warehouse=str(tmp_path / "whlink" / "w.duckdb"), business_date="2026-11-24"),
        flow_run(warehouse=str(real / "sub" / ".." / "w.duckdb"), business_date="2026-11-25"),
        flow_run(warehouse=str(real / "sub" / "w.duckdb"), business_date="2026-11-25"),
    ]

    nights = other_nights(others, "me", warehouse, Settings())

    assert [n.run_id for n in nights] == [str(others[0].id), str(others[1].id)]
