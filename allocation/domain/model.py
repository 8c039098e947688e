"""The allocation domain: order lines, batches of stock, and the rule that matches them.

This module is deliberately standard library only, so the business rules can be read, tested
and reasoned about without DuckDB, polars or Prefect in the picture (the repository and the
flow adapt to it, never the other way round). It is the book's chapter 7 model (`OrderLine`,
`Batch`, the `Product` aggregate, `allocate`, an out-of-stock error), and `Product.allocate`
is the book's loop: the first batch, in order of preference, that `can_allocate` the line
`allocate`s it. Where it differs, a measurement says what the difference buys: CPU time a line
of `frame_allocation.allocate_lines` over 1M generated lines (one process, best of 3, each variant
beside this one in the same session; this module: 1.42 µs a line).

* A batch keeps its available quantity as a running figure (the book sums its lines on every
  question), and `Product` sorts its batches once (the book: on every line) and finds a line
  it already holds in one dict look-up. Without them a line's cost grows with the lines
  already placed: the book's loop takes about 10 times longer a line at 10k lines than at
  2.5k (`benchmarks/book.py`, docs/benchmarks.md).
* `Product` leaves a batch with nothing left out of its search: no difference on a fresh
  catalogue, 0.7 µs a line (2.32 against 1.64, -30 %) once every sku also has ten fully
  allocated batches from earlier nights, which the warehouse keeps and loads.
* `OrderLine` is a named tuple (built, hashed and compared in C), not the book's frozen
  dataclass: a frozen dataclass costs 0.53 µs more a line (1.95 against 1.42, +37 %), since
  a night builds one per line and hashes it three times. Being a tuple, it needs `__new__`
  to check the qty, `_make` so that `_replace` checks it too, and `__eq__`/`__ne__` so that
  a line never equals a plain tuple of the same values.

Tricks that measured under 5 % went: an `OutOfStockError` without `__init__` (0.26 µs a
raise, timed alone; one line in ten raises: about 2 %), `tuple.__new__` kept in a module
global (0.03 µs a line, about 2 %), a sort key cached on the batch (read only when a product
sorts, once per sku). `Product` working through `Batch`'s public methods costs 0.22 µs a line
against `Batch`'s bookkeeping written out inside `Product.allocate` (1.42 against 1.20): paid,
so that a batch's rules live in `Batch` alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, NamedTuple, Self


class OutOfStockError(Exception):
    """No batch of the line's sku has room for it; the line stays open for another night."""

    def __init__(self, sku: str) -> None:
        super().__init__(sku)  # the sku alone in `args`, so the error pickles across processes
        self.sku = sku

    def __str__(self) -> str:
        return f"Out of stock for sku {self.sku}"


class _LineValues(NamedTuple):
    orderid: str
    sku: str
    qty: int


class OrderLine(_LineValues):
    """A customer wants `qty` of `sku` for order `orderid`.

    A value object: two lines with the same values are the same line, which is what lets a
    re-delivered order be recognised and allocated only once. A night builds and hashes one
    per open line, so it is a named tuple (built, hashed and compared in C), not the book's
    frozen dataclass (see the module docstring for what that buys).
    """

    __slots__ = ()

    def __new__(cls, orderid: str, sku: str, qty: int) -> OrderLine:
        # A line of zero or fewer units would silently corrupt a batch's running totals.
        if qty <= 0:
            raise ValueError(f"order line {orderid}/{sku} needs a positive qty")
        return tuple.__new__(cls, (orderid, sku, qty))

    @classmethod
    def _make(cls, iterable: Iterable[Any]) -> Self:  # type: ignore[override]  # mypy's own
        return cls(*iterable)  # so `_replace` checks the qty too

    # Equal to another order line only, never to a plain tuple that happens to hold the values
    # (NotImplemented would let the tuple compare itself with the line, and say yes).
    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = _LineValues.__hash__


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
        self.reference = ref
        self.sku = sku
        self.eta = eta
        self._purchased_quantity = qty
        self._previously_allocated = previously_allocated
        # A dict keeps arrival order (to release newest first) with O(1) membership checks.
        self._allocations: dict[OrderLine, None] = {}
        # Kept up to date by every change, where the book sums the lines on each question.
        self._available_quantity = qty - previously_allocated

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
        return self._purchased_quantity - self._available_quantity

    @property
    def available_quantity(self) -> int:
        return self._available_quantity

    def holds(self, line: OrderLine) -> bool:
        return line in self._allocations

    def can_allocate(self, line: OrderLine) -> bool:
        return self.sku == line.sku and self._available_quantity >= line.qty

    def allocate(self, line: OrderLine) -> None:
        """Take the line if it fits; a line already held is not counted twice."""
        if line not in self._allocations and self.can_allocate(line):
            self._allocations[line] = None
            self._available_quantity -= line.qty

    def deallocate(self, line: OrderLine) -> None:
        if self.holds(line):
            del self._allocations[line]
            self._available_quantity += line.qty

    def change_eta(self, eta: date | None) -> None:
        """A manifest update: the shipment moved (None means it has arrived)."""
        self.eta = eta

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
        self._available_quantity += qty - self._purchased_quantity
        self._purchased_quantity = qty
        released: list[OrderLine] = []
        while self._available_quantity < 0:
            line, _ = self._allocations.popitem()  # dicts pop their newest entry
            self._available_quantity += line.qty
            released.append(line)
        return released

    @property
    def sort_key(self) -> tuple[bool, date, str]:
        """In stock first, then the earliest arrival, ties broken by reference."""
        return (self.eta is not None, self.eta or date.min, self.reference)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        return self.sort_key < other.sort_key

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


class Product:
    """One sku and its batches: the aggregate (the book's chapter 7) a night allocates through.

    The same rule as the book's, at a cost that does not grow with the batches or the lines
    already placed: the batches are sorted once (again only when an eta changes), the lines
    they hold are indexed, and a batch with nothing left leaves the search (no line has a qty
    below 1). Change the batches through the product, so that order and index stay right.
    """

    def __init__(self, sku: str, batches: Iterable[Batch]) -> None:
        self.sku = sku
        self._batches = sorted(batches)
        if any(batch.sku != sku for batch in self._batches):
            raise ValueError(f"product {sku}: every batch must be of sku {sku}")
        self._holder = {line: batch for batch in self._batches for line in batch.allocations}
        self._open = self._batches_with_room()

    @property
    def batches(self) -> tuple[Batch, ...]:
        """In preference order (a copy: change them through the product)."""
        return tuple(self._batches)

    def allocate(self, line: OrderLine) -> str:
        """Give the line, whole, to the preferred batch that has room, and return its reference.

        A line already held stays where it is, so a re-run night gives the same answer.
        """
        held = self._holder.get(line)
        if held is not None:
            return held.reference
        for batch in self._open:
            if batch.can_allocate(line):
                batch.allocate(line)
                self._holder[line] = batch
                if batch.available_quantity == 0:
                    self._open.remove(batch)
                return batch.reference
        raise OutOfStockError(line.sku)

    def change_eta(self, reference: str, eta: date | None) -> None:
        """A manifest update: the shipment moved, so the order of preference may change."""
        self._batch(reference).change_eta(eta)
        self._batches.sort()
        self._open = self._batches_with_room()

    def change_purchased_quantity(self, reference: str, qty: int) -> list[OrderLine]:
        """A manifest update (see `Batch.change_purchased_quantity`); the released lines are no
        longer held, so allocating them again may place them elsewhere."""
        released = self._batch(reference).change_purchased_quantity(qty)
        for line in released:
            del self._holder[line]
        self._open = self._batches_with_room()
        return released

    def _batch(self, reference: str) -> Batch:
        for batch in self._batches:
            if batch.reference == reference:
                return batch
        raise KeyError(f"product {self.sku} has no batch {reference}")

    def _batches_with_room(self) -> list[Batch]:
        return [batch for batch in self._batches if batch.available_quantity > 0]


def allocate(line: OrderLine, batches: Iterable[Batch]) -> str:
    """Give the line, whole, to the preferred batch of its sku that has room, and return its
    reference (`Product.allocate` over those batches).

    Allocating a line twice changes nothing, so a re-run night gives the same answer.
    """
    return Product(line.sku, [batch for batch in batches if batch.sku == line.sku]).allocate(line)
