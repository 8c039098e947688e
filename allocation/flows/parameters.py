"""The flow's parameters as the Prefect UI's form shows them, and the rule that keeps a run
started from the UI inside the data roots.

Types, not text: a date picker for `business_date`, a drop-down for `task_runner`, whole numbers
of 0 or more for counts. The deployment enforces the schema they make, so the server refuses a
wrong type before any run exists. Empty values from older deployments or schedules (`""`) still
mean "the default", as they did when every field was text.

Anyone who can open the UI can start a night with any path, so a flow run's paths must resolve,
symlinks followed, inside `ALLOCATION_DATA_ROOTS`. The `allocation` command, run by a person in a
shell, is not confined.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from allocation.service.check_definitions import CheckName
from allocation.settings import (
    ParameterError,
    RunParameters,
    TaskRunnerName,
    parse_business_date,
)


def _date_or_none(value: Any) -> dt.date | None:
    """None or empty text: the scheduled date. Text: strictly YYYY-MM-DD (pydantic alone would
    also take timestamps and date-times)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dt.datetime):
        raise ParameterError(f"business_date {value!r} has a time: give the date, YYYY-MM-DD")
    if isinstance(value, dt.date | str):
        return parse_business_date(value)
    raise ParameterError(f"business_date {value!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-26")


def _empty_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


BusinessDate = Annotated[dt.date | None, BeforeValidator(_date_or_none)]
TaskRunnerChoice = Annotated[TaskRunnerName | None, BeforeValidator(_empty_is_none)]
Count = Annotated[int, Field(ge=0)]


def _accept_list(value: Any) -> Any:
    """None or empty text: none; text: comma-separated names (as on the command line)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [name.strip().lower() for name in value.split(",") if name.strip()]
    return value


#: The run form's multi-choice of checks to accept (or all of them).
AcceptChecks = Annotated[list[Literal[CheckName, "all"]], BeforeValidator(_accept_list)]


class OutsideDataRoots(ParameterError):
    """A path given to a flow run lies outside every data root."""


def _inside(path: Path, roots: Sequence[Path], *, strictly: bool = False) -> bool:
    real = path.resolve()
    return any(real.is_relative_to(root) and not (strictly and real == root) for root in roots)


def _refuse(name: str, given: object, roots: Sequence[Path]) -> OutsideDataRoots:
    named = ":".join(str(root) for root in roots) or "(none: ALLOCATION_DATA_ROOTS is empty)"
    return OutsideDataRoots(
        f"{name} {given} is outside the data roots {named}: a flow run may only use paths inside "
        "them (symlinks followed); give such a path, or have the worker's operator add the "
        "folder to ALLOCATION_DATA_ROOTS"
    )


def confine_to_data_roots(params: RunParameters, roots: Sequence[Path], staging: str) -> None:
    """Refuses, before anything is read or written, a run whose inbox, warehouse (and the state
    folder beside it), outbox or `staging` parameter resolves outside `roots`. A `staging` URL
    of another file system (s3://...) cannot be checked, so only the worker's own
    ALLOCATION_STAGING setting may name one."""
    for name, path in (("inbox", params.inbox), ("outbox", params.outbox)):
        if not _inside(path, roots):
            raise _refuse(name, path, roots)
    # The warehouse's folder holds the pipeline's state and the published copies: the file
    # must lie below a root, and a state folder that is a symlink must not lead out of it.
    if not _inside(params.warehouse, roots, strictly=True):
        raise _refuse("warehouse", params.warehouse, roots)
    if not _inside(params.state_dir, roots, strictly=True):
        raise _refuse("warehouse state folder", params.state_dir, roots)
    given = staging.strip()
    if not given:
        return
    scheme, sep, rest = given.partition("://")
    if sep and scheme != "file":
        raise _refuse("staging", given, roots)
    if not _inside(Path(rest if sep else given).expanduser().absolute(), roots):
        raise _refuse("staging", given, roots)
