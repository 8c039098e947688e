"""The allocation domain: order lines, batches of stock, and the rule that matches them.

This module is deliberately standard library only, so the business rules can be read, tested
and reasoned about without DuckDB, polars or Prefect in the picture (the repository and the
flow adapt to it, never the other way round).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class OrderLine:
    """A customer wants `qty` of `sku` for order `orderid`.

    A value object: two lines with the same values are the same line, which is what lets a
    re-delivered order be recognised and allocated only once.
    """

    orderid: str
    sku: str
    qty: int

    def __post_init__(self) -> None:
        # A line of zero or fewer units would silently corrupt a batch's running totals.
        if self.qty <= 0:
            raise ValueError(f"order line {self.orderid}/{self.sku} needs a positive qty")


class OutOfStockError(Exception):
    """No batch of the line's sku has room for it; the line stays open for another night."""

    def __init__(self, sku: str) -> None:
        super().__init__(f"Out of stock for sku {sku}")
        self.sku = sku

    def __reduce__(self) -> tuple[type[OutOfStockError], tuple[str]]:
        # Rebuild from the sku (not the message) when pickled across worker processes.
        return (OutOfStockError, (self.sku,))


class Batch:
    """Stock we have bought: in the warehouse now (eta None) or arriving on `eta`.

    An entity, identified by its reference however its quantity or eta change.
    `previously_allocated` stands for units given on earlier nights to lines this object does
    not hold (the repository restores big histories as a number); they count against
    availability but cannot be released one by one.
    """

    def __init__(
        self, ref: str, sku: str, qty: int, eta: date | None, *, previously_allocated: int = 0
    ) -> None:
        if qty < 0 or previously_allocated < 0:
            raise ValueError(f"batch {ref}: quantities cannot be negative")
        if previously_allocated > qty:
            raise ValueError(
                f"batch {ref}: {previously_allocated} previously allocated exceeds "
                f"the purchased quantity {qty}"
            )
        self._reference = ref
        self._sku = sku
        self._eta = eta
        self._sort_key = (eta is not None, eta or date.min, ref)
        self._purchased_quantity = qty
        self._previously_allocated = previously_allocated
        # A dict keeps arrival order (to release newest first) with O(1) membership checks.
        self._allocations: dict[OrderLine, None] = {}
        self._held_quantity = 0  # running total of the held lines, so queries stay O(1)

    @property
    def reference(self) -> str:
        return self._reference

    @property
    def sku(self) -> str:
        return self._sku

    @property
    def eta(self) -> date | None:
        return self._eta

    @property
    def purchased_quantity(self) -> int:
        return self._purchased_quantity

    @property
    def previously_allocated(self) -> int:
        return self._previously_allocated

    @property
    def allocations(self) -> tuple[OrderLine, ...]:
        """The lines this object holds, oldest first (a copy: change them via the methods)."""
        return tuple(self._allocations)

    @property
    def allocated_quantity(self) -> int:
        return self._previously_allocated + self._held_quantity

    @property
    def available_quantity(self) -> int:
        return self._purchased_quantity - self.allocated_quantity

    def holds(self, line: OrderLine) -> bool:
        return line in self._allocations

    def can_allocate(self, line: OrderLine) -> bool:
        return self.sku == line.sku and self.available_quantity >= line.qty

    def allocate(self, line: OrderLine) -> None:
        """Take the line if it fits; a line already held is not counted twice."""
        if not self.holds(line) and self.can_allocate(line):
            self._take(line)

    def _take(self, line: OrderLine) -> None:
        self._allocations[line] = None
        self._held_quantity += line.qty

    def deallocate(self, line: OrderLine) -> None:
        if self.holds(line):
            del self._allocations[line]
            self._held_quantity -= line.qty

    def change_eta(self, eta: date | None) -> None:
        """A manifest update: the shipment moved (None means it has arrived)."""
        self._eta = eta
        self._sort_key = (eta is not None, eta or date.min, self._reference)

    def change_purchased_quantity(self, qty: int) -> list[OrderLine]:
        """A manifest update: set the quantity and release lines, newest first, until they fit.

        Returns the released lines in release order, so the caller can re-allocate them.
        Nothing changes if the batch cannot be made to fit: the repository must then load the
        lines behind `previously_allocated` and try again.
        """
        if qty < 0:
            raise ValueError(f"batch {self.reference}: purchased quantity cannot be negative")
        if self._previously_allocated > qty:
            raise ValueError(
                f"batch {self.reference}: {self._previously_allocated} units were allocated to "
                f"lines not loaded, more than the new quantity {qty}; load those lines first"
            )
        self._purchased_quantity = qty
        released: list[OrderLine] = []
        while self.available_quantity < 0:
            line, _ = self._allocations.popitem()  # dicts pop their newest entry
            self._held_quantity -= line.qty
            released.append(line)
        return released

    @property
    def sort_key(self) -> tuple[bool, date, str]:
        """In stock first, then the earliest arrival, ties broken by reference."""
        return self._sort_key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return self.sort_key < other.sort_key

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return self.sort_key > other.sort_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return self.reference == other.reference

    def __hash__(self) -> int:
        return hash(self.reference)

    def __repr__(self) -> str:
        return (
            f"<Batch {self.reference} {self.sku} eta={self.eta} "
            f"allocated={self.allocated_quantity}/{self.purchased_quantity}>"
        )


def _by_preference(batch: Batch) -> tuple[bool, date, str]:
    return batch._sort_key


def allocate(line: OrderLine, batches: Iterable[Batch]) -> str:
    """Give the line, whole, to the preferred batch that has room, and return its reference.

    Allocating a line twice changes nothing, so a re-run night gives the same answer.
    """
    # Called once per order line every night: attribute reads instead of property calls, and a
    # sort key computed when the eta changes rather than on every comparison.
    candidates = [batch for batch in batches if batch._sku == line.sku]
    for batch in candidates:
        if line in batch._allocations:
            return batch._reference
    for batch in sorted(candidates, key=_by_preference):
        if batch.can_allocate(line):
            batch._take(line)  # not held (checked above) and it fits: no need to check again
            return batch._reference
    raise OutOfStockError(line.sku)
