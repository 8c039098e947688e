"""Step times from a flow run's task-run records (benchmarks/steps.py), given as plain data."""

from __future__ import annotations

import datetime as dt

import pytest

from benchmarks.steps import FlowRecord, TaskRecord, log_rates, step_name, steps_from_records

T0 = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def task(name: str, start: float, end: float, key: str = "") -> TaskRecord:
    return TaskRecord(name, at(start), at(end), key)


def test_task_runs_are_named_for_their_step() -> None:
    assert step_name("load-3a9", "3a9f0c") == "load"
    assert step_name("check-already-ingested-0", "0") == "check-already-ingested"
    assert step_name("write-reports-b71d2e0a", "b71d2e0a") == "write-reports"
    assert step_name("allocate-shard-001-of-002", "0") == "allocate-shard-N-of-N"


def test_a_nights_steps_start_up_gaps_and_wrap_up_come_from_the_timestamps() -> None:
    flow = FlowRecord(
        "night-2026-11-26",
        start=at(1.5),
        end=at(10.0),
        tasks=[
            task("load-1a2", 2.0, 4.0, "1a2b"),
            task("allocate-9f0", 4.5, 8.0, "9f0e"),
            task("write-reports-c3d", 8.0, 9.5, "c3d4"),
        ],
    )
    steps = steps_from_records(flow, process_start=T0, process_end=at(11.25))
    assert steps.startup == pytest.approx(1.5)
    assert steps.seconds == pytest.approx({"load": 2.0, "allocate": 3.5, "write-reports": 1.5})
    assert steps.between == pytest.approx(8.5 - 7.0)  # 0.5 + 0.5 + 0.5
    assert steps.wrap_up == pytest.approx(1.25)
    assert steps.flow == pytest.approx(8.5)
    assert steps.nested == {}


def test_tasks_run_inside_a_step_are_reported_within_it_and_not_counted_twice() -> None:
    flow = FlowRecord(
        "night",
        start=at(0.0),
        end=at(10.0),
        tasks=[
            task("allocate-9f0", 1.0, 9.0, "9f0e"),
            task("allocate-shard-001-of-002", 2.0, 6.0, "0"),
            task("allocate-shard-002-of-002", 2.5, 7.0, "1"),
        ],
    )
    steps = steps_from_records(flow, process_start=at(0.0), process_end=at(10.0))
    assert steps.seconds["allocate-shard-N-of-N"] == pytest.approx(5.0)  # first start, last end
    assert steps.nested == {"allocate-shard-N-of-N": "allocate"}
    assert steps.between == pytest.approx(2.0)


def test_a_step_run_several_times_spans_its_first_start_to_its_last_end() -> None:
    flow = FlowRecord(
        "bench-trivial",
        start=at(0.0),
        end=at(1.0),
        tasks=[task(f"noop-{n}", 0.1 + 0.2 * n, 0.2 + 0.2 * n, str(n)) for n in range(5)],
    )
    steps = steps_from_records(flow, process_start=at(-2.0), process_end=at(1.5))
    assert steps.seconds == pytest.approx({"noop": 0.9})
    assert steps.between == pytest.approx(1.0 - 0.9)  # outside the step's span only
    assert steps.startup == pytest.approx(2.0)


def test_the_allocation_loggers_rates_are_read_from_log_text() -> None:
    log = (
        "02:00:01.000 | INFO    | allocation - Loaded 11 file(s): orders 10,000,000 rows in 1.68s\n"
        "02:00:03.000 | INFO    | allocation - Validated 10,000,000 rows in 2.38s (4.2M rows/s)\n"
        "02:00:13.000 | INFO    | allocation - Allocated 10,000,000 rows in 9.57s\n"
    )
    assert log_rates(log) == {"Loaded": 1.68, "Validated": 2.38, "Allocated": 9.57}
    assert log_rates("no such lines") == {}


def test_a_steps_cpu_is_the_tree_cpu_sampled_at_its_end_less_at_its_start() -> None:
    from benchmarks.process import Timed

    start = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
    at = [start + dt.timedelta(seconds=s) for s in range(6)]
    run = Timed(
        wall=5.0,
        cpu=9.0,
        max_rss_mb=1.0,
        tree_rss_mb=1.0,
        tree_procs=1,
        output="",
        started=at[0],
        ended=at[5],
        code=0,
        cpu_samples=[(at[1], 1.0), (at[2], 2.5), (at[3], 4.0), (at[4], 7.0)],
    )
    assert run.cpu_between(at[1], at[3]) == 3.0
    assert run.cpu_between(at[2] + dt.timedelta(milliseconds=500), at[4]) == 4.5
    assert run.cpu_between(at[4], at[5]) == 2.0  # to the end: the process's own total
    assert run.cpu_between(at[0], at[1]) == 1.0  # before the first sample: nothing yet
