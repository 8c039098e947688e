"""Where a measured run's time went, read from the Prefect API: the flow run and its task runs.

The harness runs `allocation run` (or the trivial flow) as a whole process against its own
Prefect server, then asks that server for the newest run of the flow started after the process
was: its start and end, and every task run's name, start and end. The pure part
(`steps_from_records`) turns those records into the table's columns; it knows no step by name,
so it keeps working when the pipeline's tasks change.

One figure still comes from the run's log text: the `allocation` logger's rates (`Loaded … rows
in …s`, `Validated …`, `Allocated …`), which no task boundary measures. They are labelled
log-derived in the table and left out when a run logs none.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskRecord:
    """One task run as the API returns it: `name` is the task run's name (`load-3a9`: the
    task's name and the start of the run's `dynamic_key`, unless the task names its runs)."""

    name: str
    start: dt.datetime
    end: dt.datetime
    dynamic_key: str = ""


@dataclass(frozen=True)
class FlowRecord:
    name: str
    start: dt.datetime
    end: dt.datetime
    tasks: list[TaskRecord]


@dataclass
class Steps:
    """Seconds of one run: `startup` (process start to flow run start), each step's span (its
    first task run's start to its last's end; `nested` names the steps that ran inside another
    step's span, such as Dask shards inside `allocate`), `between` (flow run time outside every
    top-level step: orchestration and flow code between tasks), `wrap_up` (flow run end to
    process exit: result persistence, log flush, interpreter exit)."""

    startup: float = float("nan")
    seconds: dict[str, float] = field(default_factory=dict)
    nested: dict[str, str] = field(default_factory=dict)  # step -> the step it ran inside
    between: float = float("nan")
    wrap_up: float = float("nan")
    flow: float = float("nan")  # the flow run itself, start to end
    rates: dict[str, float] = field(default_factory=dict)  # log-derived: kind -> seconds


def step_name(task_run_name: str, dynamic_key: str = "") -> str:
    """The step a task run belongs to: `load-3a9` (dynamic key `3a9…`) -> `load`; a run the
    task named itself, `allocate-shard-001-of-002` -> `allocate-shard-N-of-N`."""
    for suffix in (dynamic_key, dynamic_key[:3]):
        if suffix and task_run_name.endswith("-" + suffix):
            return task_run_name[: -len(suffix) - 1]
    return re.sub(r"\d+", "N", task_run_name)


def _union_seconds(spans: Sequence[tuple[dt.datetime, dt.datetime]]) -> float:
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is None or start > reach:
            total += (end - start).total_seconds()
            reach = end
        elif end > reach:
            total += (end - reach).total_seconds()
            reach = end
    return total


def steps_from_records(
    flow: FlowRecord, process_start: dt.datetime, process_end: dt.datetime
) -> Steps:
    """The table's columns from plain records (all datetimes timezone-aware)."""
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for task in sorted(flow.tasks, key=lambda t: t.start):
        name = step_name(task.name, task.dynamic_key)
        start, end = spans.get(name, (task.start, task.end))
        spans[name] = (min(start, task.start), max(end, task.end))
    nested: dict[str, str] = {}
    for name, (start, end) in spans.items():
        for other, (o_start, o_end) in spans.items():
            if other != name and o_start <= start and end <= o_end and other not in nested:
                nested[name] = other
                break
    top = [span for name, span in spans.items() if name not in nested]
    flow_seconds = (flow.end - flow.start).total_seconds()
    return Steps(
        startup=(flow.start - process_start).total_seconds(),
        seconds={name: (end - start).total_seconds() for name, (start, end) in spans.items()},
        nested=nested,
        between=flow_seconds - _union_seconds(top),
        wrap_up=(process_end - flow.end).total_seconds(),
        flow=flow_seconds,
    )


_RATE = re.compile(
    r"allocation - (Loaded|Validated|Allocated) (?:\d+ file\(s\): )?(?:orders )?([\d,]+) rows "
    r"in ([\d.]+)s"
)


def log_rates(text: str) -> dict[str, float]:
    """Seconds of the `allocation` logger's rate lines, by kind (the last line of each kind)."""
    return {kind: float(seconds) for kind, _, seconds in _RATE.findall(text)}


PAGE = 200


def read_flow_run(api_url: str, flow_name: str, since: dt.datetime) -> FlowRecord:
    """The newest run of `flow_name` that started after `since`, with its task runs, from the
    Prefect server at `api_url`."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.objects import TaskRun
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        if not runs:
            raise LookupError(f"no run of flow {flow_name!r} started after {since} at {api_url}")
        run = runs[0]
        tasks: list[TaskRun] = []
        while True:  # the server answers at most PAGE rows a call
            page = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])),
                limit=PAGE,
                offset=len(tasks),
            )
            tasks += page
            if len(page) < PAGE:
                break
    if run.start_time is None or run.end_time is None:
        raise LookupError(f"flow run {run.name} ({run.id}) has not finished: {run.state_name}")
    return FlowRecord(
        name=run.name,
        start=run.start_time,
        end=run.end_time,
        tasks=[
            TaskRecord(task.name, task.start_time, task.end_time, task.dynamic_key)
            for task in tasks
            if task.start_time is not None and task.end_time is not None
        ],
    )
