"""The product's shortcuts (batches sorted once, an index of held lines, full batches left out
of the search, a running available quantity) must never change an answer: any night of lines
and manifest changes gives what the book's plain rule and the module-level `allocate` give."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.domain import Batch, OrderLine, OutOfStockError, Product, allocate, place

SKU = "RETRO-CLOCK"
today = date(2026, 11, 26)
ETAS = [None, today, today + timedelta(days=1), today + timedelta(days=10)]


def preference(batch: Batch) -> tuple[bool, date, str]:
    """In stock first, then the earliest eta, then the lower reference."""
    return (batch.eta is not None, batch.eta or date.min, batch.reference)


def book_rule(line: OrderLine, batches: Iterable[Batch]) -> str | None:
    """The rule as the book writes it: every batch sorted on every line, the first that can
    take the line takes it (a line already held stays where it is; ties go to the lower
    reference)."""
    batches = list(batches)
    for batch in batches:
        if batch.holds(line):
            return batch.reference
    for batch in sorted(batches, key=preference):
        if batch.can_allocate(line):
            batch.allocate(line)
            return batch.reference
    return None


batch_specs = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.sampled_from(ETAS)),
    max_size=5,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("line"), st.integers(0, 12), st.integers(1, 9)),
        st.tuples(st.just("eta"), st.integers(0, 4), st.sampled_from(ETAS)),
        st.tuples(st.just("qty"), st.integers(0, 4), st.integers(0, 30)),
    ),
    max_size=80,
)


def make_batches(specs: list[tuple[int, int, date | None]]) -> list[Batch]:
    return [
        Batch(f"batch-{n}", SKU, qty, eta, previously_allocated=min(already, qty))
        for n, (qty, already, eta) in enumerate(specs)
    ]


def product_answer(product: Product, line: OrderLine) -> str | None:
    try:
        return product.allocate(line)
    except OutOfStockError as error:
        assert error.sku == SKU
        return None


def module_answer(batches: list[Batch], line: OrderLine) -> str | None:
    try:
        return allocate(line, batches)
    except OutOfStockError:
        return None


@pytest.mark.fuzz
@settings(max_examples=max(200, settings().max_examples))  # a few ms an example
@given(batch_specs, steps)
def test_a_product_places_every_line_as_the_books_rule_and_allocate_do(
    specs: list[tuple[int, int, date | None]],
    night: list[tuple[str, int, object]],
) -> None:
    ours, plain, via_allocate = make_batches(specs), make_batches(specs), make_batches(specs)
    product = Product(SKU, ours)
    by_ref = [{b.reference: b for b in side} for side in (plain, via_allocate)]

    for kind, n, value in night:
        if kind == "line":
            assert isinstance(value, int)
            line = OrderLine(f"order-{n}", SKU, value)
            expected = book_rule(line, plain)
            assert product_answer(product, line) == expected
            assert module_answer(via_allocate, line) == expected
        elif n < len(specs):
            reference = f"batch-{n}"
            if kind == "eta":
                assert value is None or isinstance(value, date)
                product.change_eta(reference, value)
                for side in by_ref:
                    side[reference].change_eta(value)
            else:
                assert isinstance(value, int)
                if value < by_ref[0][reference].previously_allocated:
                    continue  # below what earlier nights hold: refused, see test_model
                released = product.change_purchased_quantity(reference, value)
                for side in by_ref:
                    assert side[reference].change_purchased_quantity(value) == released

    assert [b.reference for b in product.batches] == [
        b.reference for b in sorted(plain, key=preference)
    ]
    for batch, book_batch in zip(ours, plain, strict=True):
        assert batch.allocations == book_batch.allocations
        held = sum(line.qty for line in batch.allocations)  # the book sums them every time
        assert batch.allocated_quantity == batch.previously_allocated + held
        assert batch.available_quantity == batch.purchased_quantity - batch.allocated_quantity
        assert batch.available_quantity >= 0


@settings(max_examples=max(200, settings().max_examples))  # well under a ms an example
@given(batch_specs, st.lists(st.integers(1, 12), max_size=60))
def test_a_column_of_quantities_is_placed_as_allocate_places_each_line(
    specs: list[tuple[int, int, date | None]], quantities: list[int]
) -> None:
    """The night's form (a sku's lines as a column of quantities, in arrival order) gives every
    line the batch the book's `allocate` gives it line by line, and leaves the batches with the
    same room."""
    column_side, line_side = make_batches(specs), make_batches(specs)
    product = Product(SKU, column_side)
    positions = product.allocate_quantities(quantities)
    got = [None if p is None else product.batches[p].reference for p in positions]

    expected = [
        module_answer(line_side, OrderLine(f"order-{n}", SKU, qty))
        for n, qty in enumerate(quantities)
    ]
    assert got == expected
    for ours, theirs in zip(column_side, line_side, strict=True):
        assert ours.available_quantity == theirs.available_quantity
        assert ours.allocated_quantity == theirs.allocated_quantity


def test_a_column_of_quantities_needs_every_quantity_positive() -> None:
    product = Product(SKU, [Batch("batch-0", SKU, 10, None)])
    with pytest.raises(ValueError, match="positive qty"):
        product.allocate_quantities([2, 0])
    assert product.batches[0].available_quantity == 10


def test_a_product_without_batches_places_no_quantity() -> None:
    assert Product(SKU, []).allocate_quantities([1, 2]) == [None, None]


@settings(max_examples=max(200, settings().max_examples))  # well under a ms an example
@given(st.lists(st.integers(-3, 12), max_size=6), st.lists(st.integers(1, 12), max_size=60))
def test_a_line_larger_than_every_batchs_room_can_be_left_out_without_changing_an_answer(
    room: list[int], quantities: list[int]
) -> None:
    """What lets a night leave unread the waiting lines of skus that gained no room: room only
    shrinks while lines are placed, and a line that is not placed changes nothing, so a line
    larger than every batch's room at the start is never placed, and the others are placed
    exactly as they would be beside it."""
    largest = max(room, default=0)
    everything = place(quantities, room_all := list(room))
    kept = [qty for qty in quantities if qty <= largest]
    only_kept = place(kept, room_kept := list(room))

    assert [p for qty, p in zip(quantities, everything, strict=True) if qty > largest] == [
        None for qty in quantities if qty > largest
    ]
    assert [p for qty, p in zip(quantities, everything, strict=True) if qty <= largest] == (
        only_kept
    )
    assert room_all == room_kept
