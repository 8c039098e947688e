"""The book's approach, for scale: one line at a time, every batch re-sorted and every batch's
allocations re-summed on each call (Cosmic Python, chapters 1-4). A faithful, tiny
reimplementation kept here, never in the package.

    allocate(line, batches) = next(b for b in sorted(batches) if b.can_allocate(line))

with ``Batch.allocated_quantity = sum(line.qty for line in self._allocations)`` and the service
passing every batch the repository lists (``repo.list()``), so each line costs time proportional
to the batches and to the lines already allocated: the whole night grows quadratically.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class OrderLine:
    orderid: str
    sku: str
    qty: int


class OutOfStock(Exception):
    pass


class Batch:
    def __init__(self, ref: str, sku: str, qty: int, eta: dt.date | None) -> None:
        self.reference = ref
        self.sku = sku
        self.eta = eta
        self._purchased_quantity = qty
        self._allocations: set[OrderLine] = set()

    def allocate(self, line: OrderLine) -> None:
        if self.can_allocate(line):
            self._allocations.add(line)

    @property
    def allocated_quantity(self) -> int:
        return sum(line.qty for line in self._allocations)

    @property
    def available_quantity(self) -> int:
        return self._purchased_quantity - self.allocated_quantity

    def can_allocate(self, line: OrderLine) -> bool:
        return self.sku == line.sku and self.available_quantity >= line.qty

    def __gt__(self, other: Batch) -> bool:
        if self.eta is None:
            return False
        if other.eta is None:
            return True
        return self.eta > other.eta


def allocate(line: OrderLine, batches: list[Batch]) -> str:
    try:
        batch = next(b for b in sorted(batches) if b.can_allocate(line))
    except StopIteration:
        raise OutOfStock(f"Out of stock for sku {line.sku}") from None
    batch.allocate(line)
    return batch.reference


def allocate_all(
    lines: list[tuple[str, str, int]], batches: list[tuple[str, str, int, dt.date | None]]
) -> list[str | None]:
    """The service loop: every line against every batch the repository holds."""
    stock = [Batch(*row) for row in batches]
    placed: list[str | None] = []
    for orderid, sku, qty in lines:
        try:
            placed.append(allocate(OrderLine(orderid, sku, qty), stock))
        except OutOfStock:
            placed.append(None)
    return placed
