"""The run's settings and parameters, typed once with pydantic.

`Settings` is read from the environment (`ALLOCATION_*`), so a deployment, a shell and a test set
the same knobs the same way. `RunParameters` is what one night runs with: the settings' paths,
overridden by whatever the CLI or the Prefect UI passed, plus the business date.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TaskRunnerName = Literal["local", "dask"]
TASK_RUNNERS: tuple[TaskRunnerName, ...] = ("local", "dask")


class ParameterError(ValueError):
    """A run parameter a person must correct; the message says how."""


def parse_business_date(text: str | dt.date) -> dt.date:
    """Reads a `YYYY-MM-DD` business date, refusing anything looser (no times, no other formats)."""
    if isinstance(text, dt.date):
        return text
    value = text.strip()
    if not ISO_DATE.match(value):
        raise ParameterError(
            f"business_date {text!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-26"
        )
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ParameterError(
            f"business_date {text!r} is not a real calendar date: use YYYY-MM-DD, e.g. 2026-11-26"
        ) from None


class Settings(BaseSettings):
    """Defaults for every run; each one can be set as `ALLOCATION_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="ALLOCATION_", extra="ignore")

    inbox: Path = Field(Path("data/inbox"), description="Folder with batches/ and orders/ files.")
    warehouse: Path = Field(
        Path("data/warehouse.duckdb"), description="The analysts' DuckDB file (published copy)."
    )
    outbox: Path = Field(Path("data/outbox"), description="Folder for the nightly report folders.")
    lock_timeout_seconds: float = Field(
        120.0, ge=0, description="How long a run waits for another run on the same warehouse."
    )
    keep_published: int = Field(7, ge=1, description="Published nights kept for rollback.")
    order_retry_seconds: float = Field(
        120.0,
        gt=0,
        description="Deployment runs: how soon a night that waits for an earlier night (or for "
        "the warehouse lock) tries again, after giving its concurrency slot back.",
    )
    order_max_wait_seconds: float = Field(
        6 * 3600.0,
        ge=0,
        description="Deployment runs: how long a night may keep waiting for an earlier night "
        "(or the warehouse lock) before it fails, saying what to run first.",
    )
    workers: int = Field(
        0,
        ge=0,
        description="Processes that allocate skus in parallel, the run's own included (0 = one "
        "per CPU core). A night under 500,000 lines stays in one process either way.",
    )
    task_runner: TaskRunnerName = Field(
        "local",
        description="Where sku shards are allocated: local (this process and `workers`) or dask.",
    )
    dask_address: str = Field(
        "",
        description="Dask scheduler address (tcp://host:8786); empty: a temporary local cluster.",
    )
    dask_workers: int = Field(
        2, ge=1, description="Worker processes of the temporary local Dask cluster."
    )
    staging: str = Field(
        "",
        description="Folder or fsspec URL for the Dask shards' Parquet files; empty: "
        "<state dir>/staging. Every Dask worker must reach it.",
    )


class RunParameters(BaseModel):
    """Everything one night needs; paths are resolved so logs and reports name real places."""

    model_config = ConfigDict(frozen=True)

    inbox: Path
    warehouse: Path
    outbox: Path
    business_date: Annotated[dt.date, BeforeValidator(parse_business_date)]  # or str
    dry_run: bool = False
    lock_timeout_seconds: float = 120.0
    keep_published: int = 7
    workers: int = 0  # 0: one per CPU core
    task_runner: TaskRunnerName = "local"
    dask_address: str = ""
    dask_workers: int = 2
    staging: str = ""

    @classmethod
    def build(
        cls,
        *,
        inbox: str | Path | None = None,
        warehouse: str | Path | None = None,
        outbox: str | Path | None = None,
        business_date: str | dt.date,
        dry_run: bool = False,
        task_runner: str | None = None,
        dask_address: str | None = None,
        dask_workers: int | None = None,
        staging: str | None = None,
        settings: Settings | None = None,
    ) -> RunParameters:
        """Merges explicit values over the settings; empty strings (and 0 workers) mean 'use
        the default'."""
        base = settings or Settings()
        runner = (task_runner or "").strip().lower() or base.task_runner
        if runner not in TASK_RUNNERS:
            raise ParameterError(
                f"task_runner {task_runner!r} is not one of {', '.join(TASK_RUNNERS)}: use local "
                "(the default) or dask"
            )
        if dask_workers is not None and dask_workers < 0:
            raise ParameterError(f"dask_workers {dask_workers} must be 1 or more (0 = default)")
        return cls(
            inbox=Path(inbox or base.inbox).expanduser().absolute(),
            warehouse=Path(warehouse or base.warehouse).expanduser().absolute(),
            outbox=Path(outbox or base.outbox).expanduser().absolute(),
            business_date=parse_business_date(business_date),
            dry_run=dry_run,
            lock_timeout_seconds=base.lock_timeout_seconds,
            keep_published=base.keep_published,
            workers=base.workers,
            task_runner=runner,
            dask_address=(dask_address or "").strip() or base.dask_address,
            dask_workers=dask_workers or base.dask_workers,
            staging=(staging or "").strip() or base.staging,
        )

    @property
    def state_dir(self) -> Path:
        """Where the pipeline keeps its working state, beside (never inside) the analysts' file."""
        return state_dir_for(self.warehouse)


def state_dir_for(warehouse: Path) -> Path:
    """`data/warehouse.duckdb` -> `data/.warehouse.duckdb.pipeline/`: hidden, so analysts' tools
    pointed at the warehouse never open the working copy and block a night."""
    return warehouse.parent / f".{warehouse.name}.pipeline"
