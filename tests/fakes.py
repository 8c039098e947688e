"""Plain-Python stand-ins for the warehouse, as the book's `FakeRepository` and `FakeUnitOfWork`:
the service layer's storage protocols (`allocation.service.storage`) kept in lists and dicts,
so its rules run in unit tests without DuckDB.

The fake keeps what the manifest rules and the night's checks read and write: batches, order
lines (with their status and batch), tonight's placements, the change log, the reallocations,
and the figures of earlier nights.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import polars as pl

from allocation.domain import Batch, OrderLine, OutOfStockError, allocate


@dataclass
class Line:
    """An order line as the warehouse keeps it: open (`batchref` None) or allocated."""

    orderid: str
    sku: str
    qty: int
    batchref: str | None = None

    @property
    def status(self) -> str:
        return "out_of_stock" if self.batchref is None else "allocated"


@dataclass
class FakeRepository:
    """`Repository` in memory. Lines are kept in arrival order."""

    batches: dict[str, tuple[str, int, dt.date | None]] = field(default_factory=dict)
    lines: list[Line] = field(default_factory=list)
    #: Tonight's decision, before it is recorded: (orderid, sku) -> batch reference.
    placements: dict[tuple[str, str], str] = field(default_factory=dict)
    batch_changes: list[dict[str, Any]] = field(default_factory=list)
    reallocations: list[dict[str, Any]] = field(default_factory=list)

    # -- set-up, as earlier nights would have left the warehouse --------------------------------
    def add_batch(self, reference: str, sku: str, qty: int, eta: dt.date | None = None) -> None:
        self.batches[reference] = (sku, qty, eta)

    def add_allocated_line(self, orderid: str, sku: str, qty: int, batchref: str) -> None:
        self.lines.append(Line(orderid, sku, qty, batchref))

    def add_open_line(self, orderid: str, sku: str, qty: int) -> None:
        self.lines.append(Line(orderid, sku, qty))

    # -- the protocol ------------------------------------------------------------------------
    def batches_with_lines(self, references: list[str]) -> dict[str, Batch]:
        found = {}
        for reference in references:
            if reference in self.batches:
                sku, qty, eta = self.batches[reference]
                found[reference] = Batch(reference, sku, qty, eta)
        for line in self.lines:
            if line.batchref in found:
                found[line.batchref].allocate(OrderLine(line.orderid, line.sku, line.qty))
        return found

    def save_batch_changes(
        self,
        batches: list[Batch],
        changes: pl.DataFrame,
        released: pl.DataFrame,
        business_date: dt.date,
    ) -> None:
        for batch in batches:
            self.batches[batch.reference] = (batch.sku, batch.purchased_quantity, batch.eta)
        self.batch_changes.extend(changes.to_dicts())
        given_back = {(row["orderid"], row["sku"]) for row in released.to_dicts()}
        for line in self.lines:
            if (line.orderid, line.sku) in given_back:
                line.batchref = None

    def destinations(self, released: pl.DataFrame) -> pl.DataFrame:
        open_keys = {(line.orderid, line.sku) for line in self.lines if line.batchref is None}
        went = [
            self.placements.get((orderid, sku)) if (orderid, sku) in open_keys else None
            for orderid, sku in released.select("orderid", "sku").iter_rows()
        ]
        return released.with_columns(to_batchref=pl.Series(went, dtype=pl.String))

    def record_reallocations(self, moved: pl.DataFrame) -> None:
        self.reallocations.extend(moved.to_dicts())

    # -- the night's decision, as the allocator and the recording would make it ------------------
    def allocate_open_lines(self) -> None:
        """Places every open line, oldest first, in its sku's batches by the domain's rule
        (earliest eta first, in stock before shipments), into `placements`, not yet recorded."""
        room = self.batches_with_lines(list(self.batches))
        for line in self.lines:
            if line.batchref is not None:
                continue
            order_line = OrderLine(line.orderid, line.sku, line.qty)
            try:
                reference = allocate(order_line, [b for b in room.values() if b.sku == line.sku])
            except OutOfStockError:
                continue
            self.placements[(line.orderid, line.sku)] = reference

    def record_placements(self) -> None:
        for line in self.lines:
            if line.batchref is None and (line.orderid, line.sku) in self.placements:
                line.batchref = self.placements[(line.orderid, line.sku)]
        self.placements.clear()

    # -- what the tests read ------------------------------------------------------------------
    def batch(self, reference: str) -> tuple[str, int, dt.date | None]:
        return self.batches[reference]

    def line(self, orderid: str, sku: str) -> Line:
        return next(line for line in self.lines if (line.orderid, line.sku) == (orderid, sku))


@dataclass
class FakeCheckFigures:
    """`CheckFigures` from given values: earlier nights as the warehouse would report them."""

    history: list[int] = field(default_factory=list)
    earlier_today: int = 0
    out_of_stock_share: float | None = None
    stopped: list[tuple[dt.date, str]] = field(default_factory=list)
    allocated: int = 0
    active: int = 0
    waits: tuple[int, int | None] = (0, None)
    asked: list[str] = field(default_factory=list)

    def order_history(self, day: dt.date) -> list[int]:
        self.asked.append(f"order_history {day}")
        return list(self.history)

    def accepted_earlier_today(self, day: dt.date) -> int:
        self.asked.append(f"accepted_earlier_today {day}")
        return self.earlier_today

    def last_out_of_stock_share(self) -> float | None:
        return self.out_of_stock_share

    def stopped_nights(self, day: dt.date) -> list[tuple[dt.date, str]]:
        self.asked.append(f"stopped_nights {day}")
        return [night for night in self.stopped if night[0] < day]

    def allocated_lines(self) -> int:
        return self.allocated

    def active_batches(self) -> int:
        return self.active

    def waiting(self, day: dt.date) -> tuple[int, int | None]:
        self.asked.append(f"waiting {day}")
        return self.waits


class FakeUnitOfWork:
    """`UnitOfWork` over a `FakeRepository`. Like the DuckDB one, leaving the block without
    `commit()` keeps nothing of it: the repository goes back to what it held at the last commit
    (or when the block began). `commits` counts the commits."""

    def __init__(self, repo: FakeRepository | None = None) -> None:
        self._repo = repo if repo is not None else FakeRepository()
        self._kept = copy.deepcopy(self._repo)
        self.commits = 0

    @property
    def repo(self) -> FakeRepository:
        return self._repo

    def __enter__(self) -> FakeUnitOfWork:
        self._kept = copy.deepcopy(self._repo)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def commit(self) -> None:
        self._kept = copy.deepcopy(self._repo)
        self.commits += 1

    def rollback(self) -> None:
        # In place: the service code holds `uow.repo` itself.
        self._repo.__dict__.update(copy.deepcopy(self._kept).__dict__)
