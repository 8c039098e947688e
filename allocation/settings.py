"""The run's settings and parameters, typed once with pydantic.

`Settings` is read from the environment (`ALLOCATION_*`), so a deployment, a shell and a test set
the same knobs the same way. `RunParameters` is what one night runs with: the settings' paths,
overridden by whatever the CLI or the Prefect UI passed, plus the business date.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    workers: int = Field(
        1, ge=0, description="Processes that allocate skus in parallel (0 = one per CPU core)."
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
    workers: int = 1

    @classmethod
    def build(
        cls,
        *,
        inbox: str | Path | None = None,
        warehouse: str | Path | None = None,
        outbox: str | Path | None = None,
        business_date: str | dt.date,
        dry_run: bool = False,
        settings: Settings | None = None,
    ) -> RunParameters:
        """Merges explicit values over the settings; empty strings mean 'use the default'."""
        base = settings or Settings()
        return cls(
            inbox=Path(inbox or base.inbox).expanduser().absolute(),
            warehouse=Path(warehouse or base.warehouse).expanduser().absolute(),
            outbox=Path(outbox or base.outbox).expanduser().absolute(),
            business_date=parse_business_date(business_date),
            dry_run=dry_run,
            lock_timeout_seconds=base.lock_timeout_seconds,
            keep_published=base.keep_published,
            workers=base.workers,
        )

    @property
    def state_dir(self) -> Path:
        """Where the pipeline keeps its working state, beside (never inside) the analysts' file."""
        return state_dir_for(self.warehouse)


def state_dir_for(warehouse: Path) -> Path:
    """`data/warehouse.duckdb` -> `data/.warehouse.duckdb.pipeline/`: hidden, so analysts' tools
    pointed at the warehouse never open the working copy and block a night."""
    return warehouse.parent / f".{warehouse.name}.pipeline"
