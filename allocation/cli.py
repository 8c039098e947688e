"""The `allocation` command.

    allocation run --inbox DIR --warehouse FILE --outbox DIR [--business-date YYYY-MM-DD] [--dry-run]
                   [--task-runner local|dask] [--dask-address tcp://HOST:8786]
                   [--accept CHECK[,CHECK] | --accept all]
    allocation publish --warehouse FILE
    allocation rollback --to YYYY-MM-DD [--warehouse FILE] [--outbox DIR]

Exit 0 when the night completed (also with rejected rows and out-of-stock lines); otherwise one
clear line on stderr saying what is wrong and what to do, and a non-zero code:
2 a parameter or the inbox, 3 the warehouse (cannot be opened, or another run holds it),
4 the night committed but the analysts' copy could not be published, 5 a check of the night
stopped it before its commit (nothing committed; the line names the check and the way on),
6 the night is complete but Prefect could not be told (its run may show Running),
1 anything unexpected.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any, get_args

from allocation.io.outbox import OutboxError
from allocation.io.publish import PublishError
from allocation.io.readers import InboxError
from allocation.io.run_lock import RunLockError, RunLockTimeout
from allocation.io.unit_of_work import WarehouseError
from allocation.service import after_commit, preflight
from allocation.service.check_definitions import CHECK_NAMES
from allocation.service.night_checks import NightStopped
from allocation.service.state import state_db, warehouse_lock
from allocation.settings import ParameterError, RunParameters, Settings, TaskRunnerName

EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (ParameterError, 2),
    (InboxError, 2),
    (WarehouseError, 3),
    (RunLockTimeout, 3),
    (RunLockError, 3),
    (PublishError, 4),
    (OutboxError, 2),
    (NightStopped, 5),
]


class CommandError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class NightCompleteUntold(CommandError):
    """The night is complete (committed, reports written, published), but Prefect was not
    told: the run's state in the UI may still say Running (exit 6)."""

    def __init__(self, summary: dict[str, Any], cause: str) -> None:
        super().__init__(
            f"the night {summary['business_date']} is complete (reports in "
            f"{summary['outbox_folder']}, warehouse published), but Prefect could not be told "
            f"({cause}): its flow run {summary['run_id']} may still show Running; nothing needs "
            'running again (docs/operations.md, "Prefect could not be told", says how to mark '
            "the run Completed)",
            6,
        )
        self.summary = summary


def _parser() -> argparse.ArgumentParser:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="allocation", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one night: load, validate, allocate, report")
    run.add_argument("--inbox", type=Path, default=settings.inbox, help="inbox folder")
    run.add_argument("--warehouse", type=Path, default=settings.warehouse, help="DuckDB file")
    run.add_argument("--outbox", type=Path, default=settings.outbox, help="reports folder")
    run.add_argument(
        "--business-date",
        default=dt.datetime.now(dt.UTC).date().isoformat(),
        help="night to run, YYYY-MM-DD (default: today in UTC)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="write the reports to OUTBOX/<date>/dry-run/ only; commit and publish nothing",
    )
    run.add_argument(
        "--task-runner",
        choices=get_args(TaskRunnerName),
        default=settings.task_runner,
        help="allocate sku shards here (local, the default) or as tasks on a Dask cluster",
    )
    run.add_argument(
        "--dask-address",
        default=settings.dask_address,
        metavar="ADDR",
        help="Dask scheduler address for --task-runner dask (default: a temporary local cluster)",
    )
    run.add_argument(
        "--accept",
        default="",
        metavar="CHECK[,CHECK]",
        help="commit although these checks of the night fail (they are kept as accepted): "
        f"all, or names among {', '.join(CHECK_NAMES)}",
    )
    publish = commands.add_parser("publish", help="publish the committed state to analysts again")
    publish.add_argument("--warehouse", type=Path, default=settings.warehouse, help="DuckDB file")
    rollback = commands.add_parser(
        "rollback",
        help="undo nights: restore the state kept after a committed night, republish it and "
        "point latest at it",
    )
    rollback.add_argument(
        "--to", required=True, metavar="YYYY-MM-DD", help="the committed night to go back to"
    )
    rollback.add_argument("--warehouse", type=Path, default=settings.warehouse, help="DuckDB file")
    rollback.add_argument("--outbox", type=Path, default=settings.outbox, help="reports folder")
    return parser


def _rollback(args: argparse.Namespace) -> None:
    from allocation.service.rollback import rollback

    params = RunParameters.build(
        warehouse=args.warehouse, outbox=args.outbox, business_date=args.to
    )
    done = rollback(params)
    print(f"Rolled back to night {done.business_date} (state restored from {done.restored_from}).")
    print(f"  reports:   {done.reports} (latest)")
    print(f"  warehouse: {params.warehouse} (republished)")
    if done.moved_aside:
        print(
            f"  moved aside the reports of {len(done.moved_aside)} later night(s) to "
            f"{done.moved_aside[0].parent}"
        )
    from allocation.flows.rollback_marks import mark_rolled_back

    print(f"  {mark_rolled_back(done)}")


def _run(args: argparse.Namespace) -> dict[str, Any]:
    params = RunParameters.build(
        inbox=args.inbox,
        warehouse=args.warehouse,
        outbox=args.outbox,
        business_date=args.business_date,
        dry_run=args.dry_run,
        task_runner=args.task_runner,
        dask_address=args.dask_address,
        accept_checks=args.accept,
    )
    preflight.check_run_paths(params)
    preflight.check_business_date_if_idle(params)  # one clean line; the flow checks again
    from allocation.flows import prefect_api

    try:
        prefect_api.check_prefect_home()  # a full disk there: one line, not 3,000 log lines
    except prefect_api.PrefectHomeFull as full:
        raise CommandError(str(full), 1) from None

    from allocation.flows.heartbeats import without_heartbeats
    from allocation.flows.nightly import completed_nights, nightly_allocation

    before = len(completed_nights)  # tests run several nights in one process
    try:
        with without_heartbeats():
            state = nightly_allocation(
                inbox=str(params.inbox),
                warehouse=str(params.warehouse),
                outbox=str(params.outbox),
                business_date=params.business_date.isoformat(),
                dry_run=params.dry_run,
                task_runner=params.task_runner,
                dask_address=params.dask_address,
                accept_checks=list(params.accept_checks),
                return_state=True,
            )
        result = state.result(raise_on_failure=False)
    except Exception as error:
        # A night that completed is never reported as failed, whatever Prefect answered.
        if len(completed_nights) > before:
            untold = prefect_api.describe_error(error)
            raise NightCompleteUntold(completed_nights[-1], untold) from error
        if prefect_api.is_api_error(error):
            raise CommandError(prefect_api.unreachable(error), 1) from error
        raise
    if len(completed_nights) > before and not (state.is_completed() and isinstance(result, dict)):
        raise NightCompleteUntold(completed_nights[-1], f"{state.name}: {state.message}")
    if isinstance(result, BaseException):
        raise result
    if not state.is_completed():
        raise CommandError(f"the night ended as {state.name}: see the log above", 1)
    summary: dict[str, Any] = result
    return summary


def _publish(args: argparse.Namespace) -> Path:
    params = RunParameters.build(warehouse=args.warehouse, business_date=dt.date.today())
    if not state_db(params).exists():
        raise WarehouseError(f"no committed state beside {params.warehouse}: run a night first")
    with warehouse_lock(params, "publish", for_night=False):
        finished = after_commit.finish_committed_night(params, "publish")
        if finished is not None:  # its reports are written and it is published, as its label
            return params.state_folder.published / f"{finished.label}.duckdb"
        label = f"republished-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
        return after_commit.publish(params, label)


def _report(summary: dict[str, Any]) -> None:
    orders, batches = summary["orders"], summary["batches"]
    print(f"Night {summary['business_date']} completed (run {summary['run_id']}).")
    print(f"  reports:   {summary['outbox_folder']}")
    print(f"  warehouse: {summary['warehouse']}")
    for name, c in (("orders", orders), ("batches", batches)):
        print(
            f"  {name + ':':9}  received {c['received']:,}, accepted {c['accepted']:,}, "
            f"duplicate {c['duplicate']:,}, rejected {c['rejected']:,}"
        )
    print(f"  allocated {summary['allocated']:,}, out of stock {summary['out_of_stock']:,}")
    if summary["files"]["rejected"]:
        print(f"  rejected files: {summary['files']['rejected']:,} (see rejected.csv)")
    for warning in summary.get("warnings", []):
        print(f"  WARNING: {warning}")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)  # reads the ALLOCATION_* settings for its defaults
        if args.command == "run":
            try:
                _report(_run(args))
            except NightCompleteUntold as untold:
                _report(untold.summary)
                raise
        elif args.command == "rollback":
            _rollback(args)
        else:
            print(f"Published {args.warehouse} (kept as {_publish(args)})")
        return 0
    except CommandError as error:
        print(f"allocation: {error}", file=sys.stderr)
        return error.code
    except Exception as error:
        for kind, code in EXIT_CODES:
            if isinstance(error, kind):
                print(f"allocation: {error}", file=sys.stderr)
                return code
        print(
            f"allocation: unexpected error {type(error).__name__}: {error} (see the log above)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "allocation: interrupted. Run the same night again: a rerun converges whether or not "
            "this run had committed (docs/operations.md)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
