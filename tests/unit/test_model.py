"""Unit tests for the allocation domain, in the style of Cosmic Python chapters 1 and 9."""

from __future__ import annotations

import pickle
from datetime import date, timedelta

import pytest

from allocation.domain import Batch, OrderLine, OutOfStockError, Product, allocate

today = date(2026, 11, 26)
tomorrow = today + timedelta(days=1)
later = tomorrow + timedelta(days=10)


def make_batch_and_line(sku: str, batch_qty: int, line_qty: int) -> tuple[Batch, OrderLine]:
    return Batch("batch-001", sku, batch_qty, eta=today), OrderLine("order-123", sku, line_qty)


# Batch: allocating and deallocating


def test_allocating_to_a_batch_reduces_the_available_quantity() -> None:
    batch = Batch("batch-001", "SMALL-TABLE", qty=20, eta=today)
    line = OrderLine("order-ref", "SMALL-TABLE", 2)

    batch.allocate(line)

    assert batch.available_quantity == 18
    assert batch.allocated_quantity == 2


def test_can_allocate_if_available_greater_than_required() -> None:
    large_batch, small_line = make_batch_and_line("ELEGANT-LAMP", 20, 2)
    assert large_batch.can_allocate(small_line)


def test_cannot_allocate_if_available_smaller_than_required() -> None:
    small_batch, large_line = make_batch_and_line("ELEGANT-LAMP", 2, 20)
    assert small_batch.can_allocate(large_line) is False


def test_can_allocate_if_available_equal_to_required() -> None:
    batch, line = make_batch_and_line("ELEGANT-LAMP", 2, 2)
    assert batch.can_allocate(line)


def test_cannot_allocate_if_skus_do_not_match() -> None:
    batch = Batch("batch-001", "UNCOMFORTABLE-CHAIR", 100, eta=None)
    different_sku_line = OrderLine("order-123", "EXPENSIVE-TOASTER", 10)
    assert batch.can_allocate(different_sku_line) is False


def test_a_batch_ignores_a_line_it_cannot_take() -> None:
    batch, line = make_batch_and_line("ELEGANT-LAMP", 2, 20)

    batch.allocate(line)

    assert batch.available_quantity == 2
    assert batch.allocations == ()


def test_can_only_deallocate_allocated_lines() -> None:
    batch, unallocated_line = make_batch_and_line("DECORATIVE-TRINKET", 20, 2)

    batch.deallocate(unallocated_line)

    assert batch.available_quantity == 20


def test_deallocating_gives_the_quantity_back() -> None:
    batch, line = make_batch_and_line("DECORATIVE-TRINKET", 20, 2)
    batch.allocate(line)

    batch.deallocate(line)

    assert batch.available_quantity == 20
    assert batch.allocations == ()


def test_allocation_is_idempotent() -> None:
    batch, line = make_batch_and_line("ANGULAR-DESK", 20, 2)

    batch.allocate(line)
    batch.allocate(line)

    assert batch.available_quantity == 18
    assert batch.allocations == (line,)


def test_allocations_are_listed_in_the_order_they_arrived() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 100, eta=None)
    lines = [OrderLine(f"order-{n}", "RETRO-CLOCK", 1) for n in (3, 1, 2)]

    for line in lines:
        batch.allocate(line)

    assert list(batch.allocations) == lines


def test_changing_the_allocations_copy_does_not_change_the_batch() -> None:
    batch, line = make_batch_and_line("RETRO-CLOCK", 20, 2)
    batch.allocate(line)

    copy = list(batch.allocations)
    copy.clear()

    assert batch.allocations == (line,)
    assert batch.available_quantity == 18


def test_available_quantity_counts_previous_allocations() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 10, eta=None, previously_allocated=7)

    assert batch.allocated_quantity == 7
    assert batch.available_quantity == 3
    assert batch.can_allocate(OrderLine("order-1", "RETRO-CLOCK", 3))
    assert batch.can_allocate(OrderLine("order-2", "RETRO-CLOCK", 4)) is False


def test_previous_allocations_cannot_be_released_line_by_line() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 10, eta=None, previously_allocated=7)

    batch.deallocate(OrderLine("order-from-last-night", "RETRO-CLOCK", 7))

    assert batch.available_quantity == 3


def test_a_batch_cannot_start_over_allocated_or_negative() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        Batch("batch-001", "RETRO-CLOCK", 5, eta=None, previously_allocated=6)
    with pytest.raises(ValueError, match="negative"):
        Batch("batch-001", "RETRO-CLOCK", -1, eta=None)


def test_an_order_line_needs_a_positive_quantity() -> None:
    with pytest.raises(ValueError, match="positive"):
        OrderLine("order-1", "RETRO-CLOCK", 0)


def test_order_lines_are_values() -> None:
    line = OrderLine("order-1", "RETRO-CLOCK", 2)
    same_line_again = OrderLine("order-1", "RETRO-CLOCK", 2)

    assert line == same_line_again
    assert len({line, same_line_again}) == 1
    assert line != OrderLine("order-1", "RETRO-CLOCK", 3)


def test_order_lines_cannot_be_changed() -> None:
    line = OrderLine("order-1", "RETRO-CLOCK", 2)

    with pytest.raises(AttributeError):
        line.qty = 5  # type: ignore[misc]

    assert line.qty == 2


def test_an_order_line_is_not_a_plain_tuple_of_its_values() -> None:
    line = OrderLine("order-1", "RETRO-CLOCK", 2)
    values = ("order-1", "RETRO-CLOCK", 2)

    assert line != values
    assert values != line  # the tuple's own comparison must not say yes either
    assert {values: "plain"}.get(line) is None


def test_a_line_made_from_another_is_checked_too() -> None:
    line = OrderLine("order-1", "RETRO-CLOCK", 2)

    assert line._replace(qty=3) == OrderLine("order-1", "RETRO-CLOCK", 3)
    with pytest.raises(ValueError, match="positive"):
        line._replace(qty=0)


def test_order_lines_survive_pickling_between_processes() -> None:
    line = OrderLine("order-1", "RETRO-CLOCK", 2)

    assert pickle.loads(pickle.dumps(line)) == line


def test_batches_are_entities_identified_by_reference() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 10, eta=None)
    same_batch_later = Batch("batch-001", "RETRO-CLOCK", 99, eta=later)

    assert batch == same_batch_later
    assert batch != Batch("batch-002", "RETRO-CLOCK", 10, eta=None)
    assert len({batch, same_batch_later}) == 1


def test_a_batch_repr_names_its_reference() -> None:
    assert "batch-001" in repr(Batch("batch-001", "RETRO-CLOCK", 10, eta=None))


# Choosing a batch


def test_prefers_in_stock_batches_to_shipments() -> None:
    in_stock_batch = Batch("in-stock-batch", "RETRO-CLOCK", 100, eta=None)
    shipment_batch = Batch("shipment-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    line = OrderLine("oref", "RETRO-CLOCK", 10)

    allocate(line, [shipment_batch, in_stock_batch])

    assert in_stock_batch.available_quantity == 90
    assert shipment_batch.available_quantity == 100


def test_prefers_earlier_batches() -> None:
    earliest = Batch("speedy-batch", "MINIMALIST-SPOON", 100, eta=today)
    medium = Batch("normal-batch", "MINIMALIST-SPOON", 100, eta=tomorrow)
    latest = Batch("slow-batch", "MINIMALIST-SPOON", 100, eta=later)
    line = OrderLine("order1", "MINIMALIST-SPOON", 10)

    allocate(line, [medium, earliest, latest])

    assert earliest.available_quantity == 90
    assert medium.available_quantity == 100
    assert latest.available_quantity == 100


def test_ties_on_eta_go_to_the_lower_reference() -> None:
    batch_b = Batch("batch-b", "RETRO-CLOCK", 100, eta=tomorrow)
    batch_a = Batch("batch-a", "RETRO-CLOCK", 100, eta=tomorrow)
    line = OrderLine("oref", "RETRO-CLOCK", 10)

    assert allocate(line, [batch_b, batch_a]) == "batch-a"


def test_sorting_puts_in_stock_first_then_earliest_eta_then_reference() -> None:
    shipment_late = Batch("a-late", "RETRO-CLOCK", 1, eta=later)
    shipment_soon_b = Batch("b-soon", "RETRO-CLOCK", 1, eta=tomorrow)
    shipment_soon_a = Batch("a-soon", "RETRO-CLOCK", 1, eta=tomorrow)
    in_stock = Batch("z-in-stock", "RETRO-CLOCK", 1, eta=None)

    ordered = sorted([shipment_late, shipment_soon_b, in_stock, shipment_soon_a])

    assert [b.reference for b in ordered] == ["z-in-stock", "a-soon", "b-soon", "a-late"]
    assert sorted(ordered, reverse=True) == ordered[::-1]
    assert in_stock < shipment_soon_a
    assert shipment_late > shipment_soon_b


def test_returns_allocated_batch_ref() -> None:
    in_stock_batch = Batch("in-stock-batch-ref", "HIGHBROW-POSTER", 100, eta=None)
    shipment_batch = Batch("shipment-batch-ref", "HIGHBROW-POSTER", 100, eta=tomorrow)
    line = OrderLine("oref", "HIGHBROW-POSTER", 10)

    allocation = allocate(line, [in_stock_batch, shipment_batch])

    assert allocation == in_stock_batch.reference


def test_falls_back_to_a_later_batch_when_the_preferred_one_is_short() -> None:
    in_stock_batch = Batch("in-stock-batch", "RETRO-CLOCK", 5, eta=None)
    shipment_batch = Batch("shipment-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    line = OrderLine("oref", "RETRO-CLOCK", 10)

    assert allocate(line, [in_stock_batch, shipment_batch]) == "shipment-batch"
    assert in_stock_batch.available_quantity == 5


def test_a_line_goes_whole_to_one_batch() -> None:
    batch_1 = Batch("batch-1", "SMALL-TABLE", 6, eta=None)
    batch_2 = Batch("batch-2", "SMALL-TABLE", 6, eta=tomorrow)
    line = OrderLine("oref", "SMALL-TABLE", 10)

    with pytest.raises(OutOfStockError):
        allocate(line, [batch_1, batch_2])

    assert batch_1.available_quantity == 6
    assert batch_2.available_quantity == 6


def test_raises_out_of_stock_exception_if_cannot_allocate() -> None:
    batch = Batch("batch1", "SMALL-FORK", 10, eta=today)
    allocate(OrderLine("order1", "SMALL-FORK", 10), [batch])

    with pytest.raises(OutOfStockError, match="SMALL-FORK") as excinfo:
        allocate(OrderLine("order2", "SMALL-FORK", 1), [batch])

    assert excinfo.value.sku == "SMALL-FORK"
    assert str(excinfo.value) == "Out of stock for sku SMALL-FORK"


def test_raises_out_of_stock_when_there_are_no_batches() -> None:
    with pytest.raises(OutOfStockError, match="RETRO-CLOCK"):
        allocate(OrderLine("order1", "RETRO-CLOCK", 1), [])


def test_batches_of_other_skus_are_ignored() -> None:
    other_sku = Batch("a-other", "SMALL-TABLE", 100, eta=None)
    right_sku = Batch("b-right", "RETRO-CLOCK", 100, eta=later)

    assert allocate(OrderLine("order1", "RETRO-CLOCK", 1), [other_sku, right_sku]) == "b-right"
    assert other_sku.available_quantity == 100
    with pytest.raises(OutOfStockError, match="LARGE-SOFA"):
        allocate(OrderLine("order2", "LARGE-SOFA", 1), [other_sku, right_sku])


def test_allocating_the_same_line_twice_changes_nothing() -> None:
    shipment = Batch("shipment-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    in_stock = Batch("in-stock-batch", "RETRO-CLOCK", 100, eta=None)
    line = OrderLine("oref", "RETRO-CLOCK", 10)
    assert allocate(line, [shipment]) == "shipment-batch"

    # The in-stock batch would now be preferred, but the line already has a home.
    assert allocate(line, [in_stock, shipment]) == "shipment-batch"
    assert shipment.available_quantity == 90
    assert in_stock.available_quantity == 100


def test_allocate_accepts_any_iterable_of_batches() -> None:
    batches = (b for b in [Batch("batch-1", "RETRO-CLOCK", 10, eta=None)])
    assert allocate(OrderLine("oref", "RETRO-CLOCK", 1), batches) == "batch-1"


def test_out_of_stock_survives_pickling_between_processes() -> None:
    error = pickle.loads(pickle.dumps(OutOfStockError("RETRO-CLOCK")))

    assert error.sku == "RETRO-CLOCK"
    assert str(error) == "Out of stock for sku RETRO-CLOCK"


# The product: one sku's batches, the aggregate a night allocates through (chapter 7)


def test_a_product_prefers_in_stock_batches_to_shipments() -> None:
    shipment = Batch("shipment-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    in_stock = Batch("in-stock-batch", "RETRO-CLOCK", 100, eta=None)
    product = Product("RETRO-CLOCK", [shipment, in_stock])

    assert product.allocate(OrderLine("oref", "RETRO-CLOCK", 10)) == "in-stock-batch"
    assert in_stock.available_quantity == 90
    assert shipment.available_quantity == 100


def test_a_product_lists_its_batches_in_order_of_preference() -> None:
    late = Batch("late-batch", "RETRO-CLOCK", 1, eta=later)
    soon_b = Batch("b-soon", "RETRO-CLOCK", 1, eta=tomorrow)
    soon_a = Batch("a-soon", "RETRO-CLOCK", 1, eta=tomorrow)
    in_stock = Batch("z-in-stock", "RETRO-CLOCK", 1, eta=None)

    product = Product("RETRO-CLOCK", [late, soon_b, in_stock, soon_a])

    assert product.batches == (in_stock, soon_a, soon_b, late)


def test_a_product_moves_on_when_a_batch_fills_up() -> None:
    in_stock = Batch("in-stock-batch", "RETRO-CLOCK", 10, eta=None)
    shipment = Batch("shipment-batch", "RETRO-CLOCK", 10, eta=tomorrow)
    product = Product("RETRO-CLOCK", [in_stock, shipment])

    placed = [product.allocate(OrderLine(f"order-{n}", "RETRO-CLOCK", 4)) for n in range(4)]

    assert placed == ["in-stock-batch", "in-stock-batch", "shipment-batch", "shipment-batch"]
    assert in_stock.available_quantity == 2
    assert product.allocate(OrderLine("order-small", "RETRO-CLOCK", 2)) == "in-stock-batch"


def test_a_product_gives_a_line_it_already_holds_the_same_batch() -> None:
    in_stock = Batch("in-stock-batch", "RETRO-CLOCK", 10, eta=None)
    shipment = Batch("shipment-batch", "RETRO-CLOCK", 10, eta=tomorrow)
    product = Product("RETRO-CLOCK", [in_stock, shipment])
    line = OrderLine("oref", "RETRO-CLOCK", 10)
    assert product.allocate(line) == "in-stock-batch"

    # The batch is full now, and the shipment has room: the line still stays where it is.
    assert product.allocate(OrderLine("oref", "RETRO-CLOCK", 10)) == "in-stock-batch"
    assert in_stock.allocations == (line,)
    assert shipment.available_quantity == 10


def test_a_product_knows_the_lines_its_batches_held_before() -> None:
    shipment = Batch("shipment-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    line = OrderLine("oref", "RETRO-CLOCK", 10)
    shipment.allocate(line)
    in_stock = Batch("in-stock-batch", "RETRO-CLOCK", 100, eta=None)

    product = Product("RETRO-CLOCK", [in_stock, shipment])

    assert product.allocate(line) == "shipment-batch"
    assert shipment.available_quantity == 90
    assert in_stock.available_quantity == 100


def test_a_product_counts_previous_allocations() -> None:
    nearly_gone = Batch("in-stock-batch", "RETRO-CLOCK", 10, eta=None, previously_allocated=8)
    shipment = Batch("shipment-batch", "RETRO-CLOCK", 10, eta=tomorrow)
    product = Product("RETRO-CLOCK", [nearly_gone, shipment])

    assert product.allocate(OrderLine("order-1", "RETRO-CLOCK", 3)) == "shipment-batch"
    assert product.allocate(OrderLine("order-2", "RETRO-CLOCK", 2)) == "in-stock-batch"


def test_a_product_with_every_batch_full_is_out_of_stock() -> None:
    batch = Batch("batch-001", "SMALL-FORK", 10, eta=None)
    product = Product("SMALL-FORK", [batch])
    product.allocate(OrderLine("order-1", "SMALL-FORK", 10))

    with pytest.raises(OutOfStockError, match="SMALL-FORK") as excinfo:
        product.allocate(OrderLine("order-2", "SMALL-FORK", 1))

    assert excinfo.value.sku == "SMALL-FORK"
    assert batch.allocations == (OrderLine("order-1", "SMALL-FORK", 10),)


def test_a_product_without_batches_is_out_of_stock() -> None:
    with pytest.raises(OutOfStockError, match="RETRO-CLOCK"):
        Product("RETRO-CLOCK", []).allocate(OrderLine("order-1", "RETRO-CLOCK", 1))


def test_a_product_never_places_a_line_of_another_sku() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 100, eta=None)
    product = Product("RETRO-CLOCK", [batch])

    with pytest.raises(OutOfStockError, match="LARGE-SOFA"):
        product.allocate(OrderLine("order-1", "LARGE-SOFA", 1))

    assert batch.available_quantity == 100


def test_a_product_holds_batches_of_its_own_sku_only() -> None:
    with pytest.raises(ValueError, match="RETRO-CLOCK"):
        Product("RETRO-CLOCK", [Batch("batch-001", "LARGE-SOFA", 10, eta=None)])


def test_changing_eta_through_the_product_changes_its_preference() -> None:
    soon = Batch("soon-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    late = Batch("late-batch", "RETRO-CLOCK", 100, eta=later)
    product = Product("RETRO-CLOCK", [soon, late])
    assert product.allocate(OrderLine("order-1", "RETRO-CLOCK", 1)) == "soon-batch"

    product.change_eta("late-batch", None)  # the late shipment arrived early

    assert late.eta is None
    assert product.batches == (late, soon)
    assert product.allocate(OrderLine("order-2", "RETRO-CLOCK", 1)) == "late-batch"


def test_changing_the_eta_of_an_unknown_batch_is_an_error() -> None:
    product = Product("RETRO-CLOCK", [Batch("batch-001", "RETRO-CLOCK", 10, eta=None)])

    with pytest.raises(KeyError, match="batch-999"):
        product.change_eta("batch-999", today)


def test_lines_a_product_releases_can_be_allocated_again_elsewhere() -> None:
    shrinking = Batch("in-stock-batch", "RETRO-CLOCK", 10, eta=None)
    spare = Batch("shipment-batch", "RETRO-CLOCK", 10, eta=tomorrow)
    product = Product("RETRO-CLOCK", [shrinking, spare])
    older, newer = (OrderLine(f"order-{n}", "RETRO-CLOCK", 4) for n in range(2))
    product.allocate(older)
    product.allocate(newer)

    released = product.change_purchased_quantity("in-stock-batch", 5)

    assert released == [newer]
    assert product.allocate(newer) == "shipment-batch"
    assert product.allocate(older) == "in-stock-batch"  # still held: nothing changes
    assert shrinking.available_quantity == 1


def test_a_full_batch_given_more_stock_through_the_product_takes_lines_again() -> None:
    in_stock = Batch("in-stock-batch", "RETRO-CLOCK", 5, eta=None)
    shipment = Batch("shipment-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    product = Product("RETRO-CLOCK", [in_stock, shipment])
    product.allocate(OrderLine("order-1", "RETRO-CLOCK", 5))
    assert product.allocate(OrderLine("order-2", "RETRO-CLOCK", 1)) == "shipment-batch"

    assert product.change_purchased_quantity("in-stock-batch", 20) == []

    assert product.allocate(OrderLine("order-3", "RETRO-CLOCK", 1)) == "in-stock-batch"


# Manifest updates (chapter 9)


def test_changing_eta_moves_the_batch_in_the_order() -> None:
    soon = Batch("soon-batch", "RETRO-CLOCK", 100, eta=tomorrow)
    late = Batch("late-batch", "RETRO-CLOCK", 100, eta=later)

    late.change_eta(today)

    assert late.eta == today
    assert allocate(OrderLine("oref", "RETRO-CLOCK", 1), [soon, late]) == "late-batch"


def test_a_shipment_that_arrives_is_preferred_like_stock() -> None:
    in_stock = Batch("z-in-stock", "RETRO-CLOCK", 100, eta=None)
    shipment = Batch("a-shipment", "RETRO-CLOCK", 100, eta=tomorrow)

    shipment.change_eta(None)

    assert sorted([in_stock, shipment]) == [shipment, in_stock]


def test_reducing_quantity_releases_newest_lines_first() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 20, eta=None)
    oldest = OrderLine("order-1", "RETRO-CLOCK", 5)
    middle = OrderLine("order-2", "RETRO-CLOCK", 5)
    newest = OrderLine("order-3", "RETRO-CLOCK", 5)
    for line in (oldest, middle, newest):
        batch.allocate(line)

    released = batch.change_purchased_quantity(6)

    assert released == [newest, middle]
    assert batch.allocations == (oldest,)
    assert batch.purchased_quantity == 6
    assert batch.available_quantity == 1


def test_reducing_quantity_releases_only_what_no_longer_fits() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 20, eta=None)
    lines = [OrderLine(f"order-{n}", "RETRO-CLOCK", 5) for n in range(3)]
    for line in lines:
        batch.allocate(line)

    assert batch.change_purchased_quantity(15) == []
    assert batch.allocations == tuple(lines)
    assert batch.available_quantity == 0


def test_cancelling_a_batch_releases_every_line() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 20, eta=tomorrow)
    first = OrderLine("order-1", "RETRO-CLOCK", 3)
    second = OrderLine("order-2", "RETRO-CLOCK", 4)
    batch.allocate(first)
    batch.allocate(second)

    released = batch.change_purchased_quantity(0)

    assert released == [second, first]
    assert batch.allocations == ()
    assert batch.allocated_quantity == 0
    assert batch.available_quantity == 0


def test_increasing_quantity_releases_nothing() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 10, eta=None)
    line = OrderLine("order-1", "RETRO-CLOCK", 10)
    batch.allocate(line)

    assert batch.change_purchased_quantity(50) == []
    assert batch.allocations == (line,)
    assert batch.available_quantity == 40


def test_released_lines_can_be_reallocated_to_other_batches() -> None:
    shrinking = Batch("batch-1", "RETRO-CLOCK", 10, eta=None)
    spare = Batch("batch-2", "RETRO-CLOCK", 10, eta=tomorrow)
    lines = [OrderLine(f"order-{n}", "RETRO-CLOCK", 4) for n in range(2)]
    for line in lines:
        allocate(line, [shrinking, spare])

    released = shrinking.change_purchased_quantity(5)

    assert [allocate(line, [shrinking, spare]) for line in released] == ["batch-2"]
    assert spare.allocations == (lines[1],)


def test_negative_purchased_quantity_is_rejected() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 10, eta=None)

    with pytest.raises(ValueError, match="negative"):
        batch.change_purchased_quantity(-1)

    assert batch.purchased_quantity == 10


def test_reducing_below_previous_allocations_asks_for_the_lines_and_changes_nothing() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 20, eta=None, previously_allocated=8)
    line = OrderLine("order-1", "RETRO-CLOCK", 5)
    batch.allocate(line)

    with pytest.raises(ValueError, match="load those lines"):
        batch.change_purchased_quantity(7)

    assert batch.purchased_quantity == 20
    assert batch.allocations == (line,)
    assert batch.available_quantity == 7


def test_reducing_quantity_with_previous_allocations_releases_held_lines_only() -> None:
    batch = Batch("batch-001", "RETRO-CLOCK", 20, eta=None, previously_allocated=8)
    older = OrderLine("order-1", "RETRO-CLOCK", 5)
    newer = OrderLine("order-2", "RETRO-CLOCK", 5)
    batch.allocate(older)
    batch.allocate(newer)

    assert batch.change_purchased_quantity(13) == [newer]
    assert batch.allocated_quantity == 13
    assert batch.available_quantity == 0
