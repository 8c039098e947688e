"""The allocation domain: order lines, batches of stock, and the rule that matches them.

This module is deliberately standard library only, so the business rules can be read, tested
and reasoned about without DuckDB, polars or Prefect in the picture (the repository and the
flow adapt to it, never the other way round). It is the book's chapter 7 model (`OrderLine`,
`Batch`, the `Product` aggregate, `allocate`, an out-of-stock error).

The rule is written once, in `place`: each line, in arrival order, goes whole to the first
batch, in order of preference (in stock first, then the earliest eta, then the reference), that
has room for it. It works over plain integers (the lines' quantities and the batches' room), so
a night can hand a sku's lines to `Product.allocate_quantities` as a column of quantities and
get a column of batch positions back; `Product.allocate` and the module's `allocate` put one
`OrderLine` through the same function. What each shape costs is measured in
docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    re-delivered order be recognised and allocated only once. A named tuple (built, hashed and
    compared in C) rather than the book's frozen dataclass: it needs `__new__` to check the
    qty, `_make` so that `_replace` checks it too, and `__eq__`/`__ne__` so that a line never
    equals a plain tuple of the same values.
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

    def take(self, units: int) -> None:
        """Units given to lines this object does not hold (`Product.allocate_quantities`): like
        `previously_allocated`, they count against availability but cannot be released one by
        one."""
        if units < 0 or units > self._available_quantity:
            raise ValueError(
                f"batch {self.reference}: cannot take {units} units, "
                f"{self._available_quantity} available"
            )
        self._previously_allocated += units
        self._available_quantity -= units

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


def place(quantities: Iterable[int], room: list[int]) -> list[int | None]:
    """The rule, over plain integers: each line's quantity, in arrival order, goes whole to the
    first batch (`room` holds each batch's available quantity, in order of preference) with room
    for it, whose room shrinks by that much. Returns each line's batch position in `room`, None
    when no batch has room (out of stock). `room` is updated in place.

    A batch with no room left leaves the search (no line has a quantity below 1), so a sku's
    full batches of earlier nights cost nothing."""
    placed: list[int | None] = []
    append = placed.append
    open_ = [position for position, free in enumerate(room) if free > 0]
    for qty in quantities:
        for position in open_:
            free = room[position]
            if free >= qty:
                room[position] = free - qty
                if free == qty:
                    open_.remove(position)
                append(position)
                break
        else:
            append(None)
    return placed


class Product:
    """One sku and its batches: the aggregate (the book's chapter 7) a night allocates through.

    The batches are sorted once (again only when an eta changes) and the lines they hold are
    indexed; every line goes through `place`, the one rule. Change the batches through the
    product, so that order and index stay right.
    """

    def __init__(self, sku: str, batches: Iterable[Batch]) -> None:
        self.sku = sku
        self._batches = sorted(batches)
        if any(batch.sku != sku for batch in self._batches):
            raise ValueError(f"product {sku}: every batch must be of sku {sku}")
        self._holder = {line: batch for batch in self._batches for line in batch.allocations}

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
        if line.sku == self.sku:
            (position,) = place([line.qty], [b.available_quantity for b in self._batches])
            if position is not None:
                batch = self._batches[position]
                batch.allocate(line)
                self._holder[line] = batch
                return batch.reference
        raise OutOfStockError(line.sku)

    def allocate_quantities(self, quantities: Sequence[int]) -> list[int | None]:
        """A night's lines of this sku, given as their quantities in arrival order: each goes
        through the same rule as `allocate`. Returns each line's batch as its position in
        `batches` (None: out of stock). The lines are new (a night's lines are distinct), so no
        line is looked up among the held ones; the units placed count against each batch as
        given to lines it does not hold (`Batch.take`)."""
        if quantities and min(quantities) < 1:
            raise ValueError(f"product {self.sku}: every line needs a positive qty")
        room = [batch.available_quantity for batch in self._batches]
        placed = place(quantities, room)
        for batch, left in zip(self._batches, room, strict=True):
            batch.take(batch.available_quantity - left)
        return placed

    def change_eta(self, reference: str, eta: date | None) -> None:
        """A manifest update: the shipment moved, so the order of preference may change."""
        self._batch(reference).change_eta(eta)
        self._batches.sort()

    def change_purchased_quantity(self, reference: str, qty: int) -> list[OrderLine]:
        """A manifest update (see `Batch.change_purchased_quantity`); the released lines are no
        longer held, so allocating them again may place them elsewhere."""
        released = self._batch(reference).change_purchased_quantity(qty)
        for line in released:
            del self._holder[line]
        return released

    def _batch(self, reference: str) -> Batch:
        for batch in self._batches:
            if batch.reference == reference:
                return batch
        raise KeyError(f"product {self.sku} has no batch {reference}")


def allocate(line: OrderLine, batches: Iterable[Batch]) -> str:
    """Give the line, whole, to the preferred batch of its sku that has room, and return its
    reference (`Product.allocate` over those batches).

    Allocating a line twice changes nothing, so a re-run night gives the same answer.
    """
    return Product(line.sku, [batch for batch in batches if batch.sku == line.sku]).allocate(line)
