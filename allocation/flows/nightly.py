"""The Prefect flow `nightly-allocation`: a short script of named steps.

load (read and validate each file) -> allocate (one warehouse transaction) -> write reports ->
publish. The steps and their order live in `allocation.service.night` (`NightRun.run`, the same
for `run_night`); each task here is a service function wrapped as it is: it only names the step,
retries it on I/O errors and never caches (every step that writes must really run); `as_tasks`
hands them to `NightRun.run`, the load and the allocation moving the progress bar. A retry never applies a night
twice: the allocate step commits once per flow run, and a retry that finds its run already
committed goes on to the reports instead of allocating again.

Deployed by `prefect.yaml` as `nightly-allocation/nightly` (see docs/prefect.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import duckdb
from prefect import flow, get_client, get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import Abort
from prefect.states import Cancelled, Failed

from allocation.flows import error_logs, naming, ordering
from allocation.flows.artifacts import publish_artifacts, publish_stopped_artifact
from allocation.flows.check_alerts import announce_warnings
from allocation.flows.parameters import (
    AcceptChecks,
    BusinessDate,
    Count,
    TaskRunnerChoice,
    confine_to_data_roots,
)
from allocation.flows.progress import NightProgress
from allocation.flows.recovery import retry_crashed_night_once
from allocation.flows.run_context import deployment_id
from allocation.flows.sharding import allocator_for
from allocation.io.disk import is_disk_full
from allocation.io.memory_limit import is_out_of_memory
from allocation.io.outbox import read_summary
from allocation.service import after_commit, loading, night_transaction, state
from allocation.service.night import NightRun, NightSteps
from allocation.service.night_checks import NightStopped
from allocation.service.night_transaction import NightOutcome
from allocation.service.preflight import check_run_paths
from allocation.settings import RunParameters

logging.getLogger("allocation").setLevel(logging.INFO)
error_logs.install()  # an expected error logs its one-line cause, not a traceback


def worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition of the I/O steps: only what a retry a few seconds later can fix, an I/O
    error (a file system hiccup, a DuckDB file another process holds for a moment) or one raised
    from it. Never a full disk (it stays full for the seconds a retry waits), DuckDB out of its
    memory (a stream read through Arrow carries it in an OSError), a contract error
    (a bad parameter, a file that is not ours) or a bug: they fail the same way again, and a retry
    only delays the alert and repeats the traceback."""
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None or is_disk_full(error) or is_out_of_memory(error):
        return False
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError | duckdb.IOException):
            return True
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return False


IO_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": worth_retrying,
}
NO_RESULTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
# A hung night must not hold the deployment's slot for ever: it fails after 4 hours, far more
# than the largest night measured takes (docs/benchmarks.md).
NIGHT_TIMEOUT_SECONDS = 4 * 3600


#: The result of every night this process completed (reports written, published unless a dry
#: run), in order: the `allocation` command reads it to tell a complete night that Prefect
#: could not be told about (exit 6) from a night that failed.
completed_nights: list[dict[str, Any]] = []


def scheduled_business_date() -> dt.date:
    """The date the run was scheduled for (UTC), not when a worker happened to start it."""
    scheduled = runtime.flow_run.scheduled_start_time
    if scheduled is None:
        return dt.datetime.now(dt.UTC).date()
    return dt.datetime.fromtimestamp(scheduled.timestamp(), dt.UTC).date()


def night_name() -> str:
    day = str(runtime.flow_run.parameters.get("business_date") or "").strip()
    dry = " (dry run)" if runtime.flow_run.parameters.get("dry_run") else ""
    return f"night-{day or scheduled_business_date().isoformat()}{dry}"


# -- each step of the night (`NightSteps`) as a task ------------------------------------------
finish_committed = task(name="finish-committed-night", **IO_RETRIES, **NO_RESULTS)(
    after_commit.finish_committed_night
)
check_already_ingested = task(name="check-already-ingested", **IO_RETRIES, **NO_RESULTS)(
    state.already_ingested
)
load = task(name="load", **IO_RETRIES, **NO_RESULTS)(loading.load_inbox)
allocate = task(name="allocate", **IO_RETRIES, **NO_RESULTS)(night_transaction.allocate_night_once)
write_reports = task(name="write-reports", **IO_RETRIES, **NO_RESULTS)(after_commit.write_reports)
publish = task(name="publish", **IO_RETRIES, **NO_RESULTS)(after_commit.publish)


def as_tasks(night: NightRun, bar: NightProgress) -> NightSteps:
    """`NightRun.run`'s steps, each run as its task above. What the flow adds to a step is not a
    second definition of it: the load and the allocation are given the bar's progress callables
    (and the allocation the Dask allocator when the run asks for it), and the bar is full once
    the reports are written. The tasks are looked up here, when the night starts."""
    allocating = bar.step("allocate")

    def write_reports_and_fill_the_bar(params: RunParameters, outcome: NightOutcome) -> Path:
        folder = write_reports(params, outcome)
        bar.set(100.0, f"reports written to {folder}")
        return folder

    return NightSteps(
        finish_committed=finish_committed,
        already_ingested=check_already_ingested,
        load=partial(load, progress=bar.step("load")),
        allocate=partial(
            allocate,
            allocator=allocator_for(night.params, night.run_id, allocating),
            progress=allocating,
        ),
        write_reports=write_reports_and_fill_the_bar,
        publish=publish,
        copying_state=after_commit.copying_state,
    )


def cancelled_after_commit(what: str) -> NoReturn:
    """A deployment run cancelled (or its worker stopped) after its night committed: the
    night wrote its reports and published copy first (`NightRun.run`); the run ends Cancelled,
    its state message saying so, and its process exits quietly."""
    message = f"Cancelled after the night committed. {what}: nothing of the night is lost"
    me = runtime.flow_run.id
    if me is not None:
        try:
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(me, Cancelled(message=message), force=True)
        except Exception as error:  # the night is whole either way
            logging.getLogger("allocation").warning("Could not tell Prefect: %s", error)
    raise Abort(message)


def complete_despite_stop(what: str) -> None:
    """A run of the `allocation` command (Ctrl-C, or SIGTERM from a service manager) stopped
    after its night committed: the night is whole, so the run ends as the completed night it
    is (exit 0, its summary printed), never as an interrupted or failed one."""
    logging.getLogger("allocation").warning(
        "%s: the night is complete, so this run ends as completed, not interrupted", what
    )


def check_parameters(
    inbox: str,
    warehouse: str,
    outbox: str,
    business_date: dt.date | None,
    dry_run: bool,
    task_runner: str | None = None,
    dask_address: str = "",
    dask_workers: int = 0,
    staging: str = "",
    accept_checks: list[str] | None = None,
) -> RunParameters:
    """The run's parameters, or a ParameterError/InboxError/WarehouseError saying what to fix,
    raised before anything is read or written. Relative paths are relative to the working
    directory (the repo checkout, for deployment runs); empty ones mean the settings' defaults.
    A run of a deployment (the UI, the API, `prefect deployment run`) is untrusted: its paths
    must lie inside the data roots (ALLOCATION_DATA_ROOTS). The flow called in-process (the
    `allocation` command, run by a person in a shell) is not confined."""
    params = RunParameters.build(
        inbox=inbox,
        warehouse=warehouse,
        outbox=outbox,
        business_date=business_date or scheduled_business_date(),
        dry_run=dry_run,
        task_runner=task_runner,
        dask_address=dask_address,
        dask_workers=dask_workers,
        staging=staging,
        accept_checks=accept_checks or (),
    )
    if deployment_id() is not None:
        confine_to_data_roots(params, params.data_root_paths, staging)
    check_run_paths(params, flow_run=True)
    return params


@flow(
    name="nightly-allocation",
    flow_run_name=night_name,
    validate_parameters=True,
    timeout_seconds=NIGHT_TIMEOUT_SECONDS,
    on_crashed=[retry_crashed_night_once],
)
def nightly_allocation(
    inbox: str = "data/inbox",
    warehouse: str = "data/warehouse.duckdb",
    outbox: str = "data/outbox",
    business_date: BusinessDate = None,
    dry_run: bool = False,
    task_runner: TaskRunnerChoice = None,
    dask_address: str = "",
    dask_workers: Count = 0,
    staging: str = "",
    accept_checks: AcceptChecks = [],  # noqa: B006 (the form's empty multi-choice; never mutated)
) -> dict[str, Any]:
    """Allocates every open order line of the night to batches of stock and writes the reports.

    The descriptions below are what the Prefect UI shows beside each field of a custom run.

    Args:
        inbox: Folder with batches/ and orders/ files (CSV, Parquet or JSON Lines); relative to the repo checkout, inside the data roots (ALLOCATION_DATA_ROOTS, default data/).
        warehouse: The analysts' DuckDB file (the pipeline's own state sits beside it); relative to the repo checkout, inside the data roots.
        outbox: Folder that receives one BUSINESS_DATE/ folder of reports per night and the latest link; relative to the repo checkout, inside the data roots.
        business_date: Night to run: pick it in the date picker (typed there, the picker takes mm/dd/yyyy; the API and the CLI take YYYY-MM-DD). None: the date (UTC) the run was scheduled for.
        dry_run: Compute the night and write its reports to OUTBOX/BUSINESS_DATE/dry-run/ only: nothing is committed to the warehouse, nothing is published.
        task_runner: Where the sku shards are allocated: local (in the worker's process) or dask (one task per shard on a Dask cluster). None: the ALLOCATION_TASK_RUNNER setting, else local.
        dask_address: With dask: the scheduler's address, e.g. tcp://10.0.0.5:8786. Empty: ALLOCATION_DASK_ADDRESS, else a temporary local cluster.
        dask_workers: With dask and no address: worker processes of the temporary local cluster, a whole number. 0: ALLOCATION_DASK_WORKERS, else 2.
        staging: With dask: folder (inside the data roots) where shards exchange Parquet files; every Dask worker must reach it. Empty: ALLOCATION_STAGING (which may be an fsspec URL), else the state folder's staging/.
        accept_checks: Checks of the night to accept after a stopped night was looked at: the night commits although they fail, and they are kept as accepted. Empty: none; all: every check.
    """
    logger = get_run_logger()
    params = check_parameters(
        inbox,
        warehouse,
        outbox,
        business_date,
        dry_run,
        task_runner,
        dask_address,
        dask_workers,
        staging,
        list(accept_checks),
    )
    deployment = deployment_id()
    if deployment:  # Prefect names a queued run only when it starts
        naming.name_the_queue(deployment)
    # A deployment run waits (rescheduled, visibly) while an earlier night is pending.
    ordering.earlier_nights_first(params)
    night = NightRun.start(params, str(runtime.flow_run.id or uuid.uuid4()))
    bar = NightProgress.create(params.business_date.isoformat(), params.dry_run)
    logger.info(
        "Night %s%s: inbox %s, warehouse %s, outbox %s",
        params.business_date,
        " (dry run)" if params.dry_run else "",
        params.inbox,
        params.warehouse,
        params.outbox,
    )
    # Another writer holds the warehouse: the `allocation` command exits 3 with the message; a
    # deployment run is rescheduled (its slot given back) to try again.
    waiting = partial(ordering.wait_for_warehouse, params) if deployment else None
    stopped = cancelled_after_commit if deployment else complete_despite_stop
    try:
        ran = night.run(as_tasks(night, bar), when_locked=waiting, when_stopped=stopped)
    except NightStopped as stopped_by_check:
        # Nothing committed: the run ends Failed with the check's one line as its message.
        publish_stopped_artifact(params, stopped_by_check)
        return Failed(message=str(stopped_by_check), data=stopped_by_check)  # type: ignore[return-value]
    folder, published = ran.folder, ran.published
    summary = read_summary(folder)
    result = {**summary, "outbox_folder": str(folder), "warehouse": str(params.warehouse)}
    # From here on the night is complete, whatever Prefect hears of it.
    completed_nights.append(result)
    publish_artifacts(summary, folder, params, published)
    warned = announce_warnings(summary, params.dry_run)
    if warned:
        logger.warning(
            "Night %s committed with failed warn-level checks: %s", params.business_date, warned
        )
    logger.info(
        "Night %s done: %d allocated, %d out of stock; reports in %s",
        params.business_date,
        summary["allocated"],
        summary["out_of_stock"],
        folder,
    )
    return result


if __name__ == "__main__":
    nightly_allocation()
