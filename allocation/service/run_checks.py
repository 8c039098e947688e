"""The night's checks, run inside its transaction: figures gathered, evaluated, results kept.

The checks themselves are plain rules over plain figures (`allocation.service.night_checks`);
this module is the glue around them: it gathers tonight's figures from the open transaction
(`uow.figures`, `allocation.service.storage.CheckFigures`), evaluates them, and writes the
`night_checks` rows, with the night's transaction when it commits, or in a transaction of their
own when a check stopped it (so the next night knows this one stopped).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import polars as pl

from allocation.io.unit_of_work import DuckDBUnitOfWork
from allocation.service import night_checks
from allocation.service.loading import ValidatedInbox
from allocation.service.state import state_db
from allocation.settings import RunParameters
from allocation.settings.storage_version import working_storage_version

log = logging.getLogger("allocation")


def check_night(
    params: RunParameters,
    uow: DuckDBUnitOfWork,
    inbox: ValidatedInbox,
    counts: dict[str, int],
    before: tuple[int, int] | None,
    lines_tried: int,
) -> list[night_checks.CheckResult]:
    """Tonight's figures, gathered in the open transaction, through every configured check;
    failures logged as warnings."""
    orders = inbox.files.filter(pl.col("kind") == "orders").height
    figures = night_checks.gather_figures(
        uow.figures,
        params.business_date,
        counts,
        order_files=orders + sum(name.startswith("orders/") for name in inbox.skipped),
        manifests_without_eta=inbox.manifests_without_eta,
        before=before,
        lines_tried=lines_tried,
    )
    results = night_checks.evaluate(
        night_checks.configured(params),
        figures,
        night_checks.accepted_names(params.accept_checks),
        empty_night_ok=params.empty_night_ok,
        min_history=params.check_min_history,
    )
    for result in results:
        if result.result == "accepted":
            log.warning("Check failed, accepted by this run: %s", result.line())
        elif result.result == "failed" and result.level == "warn":
            log.warning("Check failed (warn): %s", result.line())
    return results


def add_check_rows(
    uow: DuckDBUnitOfWork,
    run_id: str,
    day: dt.date,
    results: Sequence[night_checks.CheckResult],
    *,
    committed: bool,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        {
            "business_date": day,
            "run_id": run_id,
            "checked_at": now,
            "check_name": r.check,
            "level": r.level,
            "figure": r.figure,
            "threshold": r.threshold,
            "result": r.result,
            "detail": r.detail,
            "committed": committed,
        }
        for r in results
    ]
    uow.repo.add_rows("night_checks", pl.DataFrame(rows, schema=CHECK_ROWS_SCHEMA))


CHECK_ROWS_SCHEMA: dict[str, pl.DataType] = {
    "business_date": pl.Date(),
    "run_id": pl.String(),
    "checked_at": pl.Datetime("us"),
    "check_name": pl.String(),
    "level": pl.String(),
    "figure": pl.Float64(),
    "threshold": pl.Float64(),
    "result": pl.String(),
    "detail": pl.String(),
    "committed": pl.Boolean(),
}


def record_stopped_checks(
    params: RunParameters, run_id: str, results: Sequence[night_checks.CheckResult]
) -> None:
    """A stopped night's check results, committed on their own (nothing else of the night)."""
    with DuckDBUnitOfWork(
        state_db(params),
        params.duckdb_limits,
        create_in=working_storage_version(params.warehouse_storage_version),
    ) as uow:
        add_check_rows(uow, run_id, params.business_date, results, committed=False)
        uow.commit()
