"""The storage the service layer speaks to, as the book's `AbstractRepository` and
`AbstractUnitOfWork`: what the service functions ask of the warehouse, by what each question
or write does, never by table or connection.

They live here, with the service layer that uses them, not beside their DuckDB implementation:
the service says what it needs and `allocation.io` answers it (the import-linter layers let io
never import the service layer, so the DuckDB classes satisfy these protocols by shape:
`io.repository.DuckDBRepository`, `io.unit_of_work.DuckDBUnitOfWork`,
`io.check_figures.DuckDBCheckFigures`, `io.run_history.DuckDBRunHistory`). The test doubles,
plain Python, are in `tests/fakes.py`.
"""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import polars as pl

from allocation.domain import Batch


class Repository(Protocol):
    """The batches the manifest rules change and the record of what they did."""

    def batches_with_lines(self, references: list[str]) -> dict[str, Batch]:
        """The batches `references` names (each known), with the lines each holds, in arrival
        order: the domain needs them to say which lines a shrinking batch gives back."""
        ...

    def save_batch_changes(
        self,
        batches: list[Batch],
        changes: pl.DataFrame,
        released: pl.DataFrame,
        business_date: dt.date,
    ) -> None:
        """Writes back the changed batches, their change log (`manifest.CHANGE_SCHEMA`) and
        the lines they gave back (`manifest.released_lines_frame`): open again, no batch."""
        ...

    def destinations(self, released: pl.DataFrame) -> pl.DataFrame:
        """`released` (lines given back tonight) with `to_batchref`, the batch each was placed
        in tonight (null: out of stock), in the order given."""
        ...

    def record_reallocations(self, moved: pl.DataFrame) -> None:
        """Keeps where each released line went (`reallocations`)."""
        ...


class UnitOfWork(Protocol):
    """One transaction over the warehouse: `with uow: ...; uow.commit()`; anything not
    committed is undone when the block ends."""

    @property
    def repo(self) -> Repository:
        """The batches of this transaction."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class CheckFigures(Protocol):
    """What the night's checks (`night_checks`) read of the warehouse, inside the night's
    transaction."""

    def order_history(self, day: dt.date) -> list[int]:
        """New order lines of each committed night before `day`, newest first."""
        ...

    def accepted_earlier_today(self, day: dt.date) -> int:
        """New order lines that committed runs of `day` stored before this run."""
        ...

    def last_out_of_stock_share(self) -> float | None:
        """Share of the lines it tried that the last committed run left out of stock."""
        ...

    def stopped_nights(self, day: dt.date) -> list[tuple[dt.date, str]]:
        """Nights before `day` a check stopped and none committed since (date, checks)."""
        ...

    def allocated_lines(self) -> int:
        """Lines allocated now."""
        ...

    def active_batches(self) -> int:
        """Batches with a quantity now."""
        ...

    def waiting(self, day: dt.date) -> tuple[int, int | None]:
        """Open lines that arrived before `day`, and the days the oldest has waited (None: no
        open line)."""
        ...


class RunHistory(Protocol):
    """The read-only questions about committed nights (`state`, `rollback`): answered from the
    warehouse as it is, without upgrading its schema or taking a transaction to write."""

    def ingested_files(self, business_date: dt.date) -> set[tuple[str, str]]:
        """Files (name, sha256) committed for `business_date`."""
        ...

    def has_run(self, run_id: str) -> bool:
        """Whether run `run_id` is committed."""
        ...

    def last_committed_date(self) -> dt.date | None:
        """The business date of the latest committed run, None before the first."""
        ...

    def runs_after(self, business_date: dt.date) -> list[tuple[dt.date, str]]:
        """The committed runs (business date, run id) of nights after `business_date`, in order."""
        ...

    def last_finished_before(self, business_date: dt.date) -> dt.datetime | None:
        """When the last run of a night before `business_date` finished (UTC, naive)."""
        ...


if TYPE_CHECKING:  # mypy checks here that the DuckDB adapters keep to the protocols above
    from allocation.io.check_figures import DuckDBCheckFigures
    from allocation.io.run_history import DuckDBRunHistory
    from allocation.io.unit_of_work import DuckDBUnitOfWork

    def _kept_by(
        uow: DuckDBUnitOfWork, figures: DuckDBCheckFigures, history: DuckDBRunHistory
    ) -> tuple[UnitOfWork, CheckFigures, RunHistory]:
        return uow, figures, history
