"""The Prefect flow `nightly-allocation`: a short script of named steps.

load -> validate -> allocate (one warehouse transaction) -> write reports -> publish.
The work lives in `allocation.services`; tasks only name the steps, retry the ones that do I/O,
and never cache (every step that writes must really run).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE

from allocation import services
from allocation.flows.artifacts import publish_artifacts
from allocation.io.run_lock import run_lock
from allocation.settings import RunParameters, Settings

logging.getLogger("allocation").setLevel(logging.INFO)

IO_RETRIES: dict[str, Any] = {"retries": 2, "retry_delay_seconds": [2, 10]}
NO_RESULTS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


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


@task(name="check-already-ingested", **IO_RETRIES, **NO_RESULTS)
def check_already_ingested(params: RunParameters) -> set[tuple[str, str]]:
    return services.already_ingested(params)


@task(name="load", **IO_RETRIES, **NO_RESULTS)
def load(inbox: Path, skip: set[tuple[str, str]]) -> services.LoadedInbox:
    return services.load_inbox(inbox, skip)


@task(name="validate", **NO_RESULTS)
def validate(loaded: services.LoadedInbox) -> services.ValidatedInbox:
    return services.validate_inbox(loaded)


@task(name="allocate", **IO_RETRIES, **NO_RESULTS)
def allocate(
    params: RunParameters, night: services.ValidatedInbox, run_id: str, started: dt.datetime
) -> services.NightOutcome:
    return services.allocate_night(params, night, run_id, started)


@task(name="write-reports", **IO_RETRIES, **NO_RESULTS)
def write_reports(params: RunParameters, outcome: services.NightOutcome) -> Path:
    return services.write_reports(params, outcome)


@task(name="publish", **IO_RETRIES, **NO_RESULTS)
def publish(params: RunParameters, label: str) -> Path:
    return services.publish(params, label)


@flow(name="nightly-allocation", flow_run_name=night_name, validate_parameters=True)
def nightly_allocation(
    inbox: str = "data/inbox",
    warehouse: str = "data/warehouse.duckdb",
    outbox: str = "data/outbox",
    business_date: str = "",
    dry_run: bool = False,
) -> dict[str, Any]:
    """Allocates every open order line of the night to batches of stock and writes the reports.

    Args:
        inbox: Folder with batches/ and orders/ files (CSV, Parquet or JSON Lines).
        warehouse: The analysts' DuckDB file; the pipeline's own state sits beside it.
        outbox: Folder that receives <business-date>/ report folders and the latest link.
        business_date: Night to run, YYYY-MM-DD. Empty: the date the run was scheduled for (UTC).
        dry_run: Compute the night and write its reports to <outbox>/<date>/dry-run/ only;
            nothing is committed to the warehouse and nothing is published.
    """
    logger = get_run_logger()
    params = RunParameters.build(
        inbox=inbox,
        warehouse=warehouse,
        outbox=outbox,
        business_date=business_date.strip() or scheduled_business_date(),
        dry_run=dry_run,
        settings=Settings(),
    )
    run_id = str(runtime.flow_run.id or uuid.uuid4())
    started = dt.datetime.now(dt.UTC)
    logger.info(
        "Night %s%s: inbox %s, warehouse %s, outbox %s",
        params.business_date,
        " (dry run)" if params.dry_run else "",
        params.inbox,
        params.warehouse,
        params.outbox,
    )
    services.check_inbox(params.inbox)
    with run_lock(
        params.state_dir / "run.lock",
        run_id=run_id,
        business_date=params.business_date.isoformat(),
        timeout=params.lock_timeout_seconds,
    ):
        skip = check_already_ingested(params)
        loaded = load(params.inbox, skip)
        night = validate(loaded)
        outcome = allocate(params, night, run_id, started)
        folder = write_reports(params, outcome)
        published = None
        if not params.dry_run:
            label = f"{params.business_date}-{started:%Y%m%dT%H%M%S}-{run_id[:8]}"
            published = publish(params, label)
    summary = services.read_summary(folder)
    publish_artifacts(summary, folder, params, published)
    logger.info(
        "Night %s done: %d allocated, %d out of stock; reports in %s",
        params.business_date,
        summary["allocated"],
        summary["out_of_stock"],
        folder,
    )
    return {**summary, "outbox_folder": str(folder), "warehouse": str(params.warehouse)}


if __name__ == "__main__":
    nightly_allocation()
