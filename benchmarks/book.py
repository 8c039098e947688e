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
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.generate import generate


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


LINES_PER_SKU = 25


def growth(sizes: list[int], seed: int) -> list[tuple[int, float, float]]:
    """(lines, book seconds, ours seconds) in this process, on generated inboxes with one sku per
    25 lines: the catalogue grows with the night, as the batches the book's service lists do.
    Ours is `benchmarks.frame_allocation.allocate_lines` in one process."""
    import polars as pl

    from benchmarks.frame_allocation import allocate_lines

    rows = []
    for lines in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-book-") as folder:
            inbox = generate(lines, Path(folder), seed, max(1, lines // LINES_PER_SKU)).path
            orders = pl.read_csv(sorted((inbox / "orders").glob("*.csv")), infer_schema=False)
            manifest = pl.read_csv(sorted((inbox / "batches").glob("*.csv")), infer_schema=False)
        orders = orders.with_columns(pl.col("qty").cast(pl.Int64))
        manifest = manifest.with_columns(pl.col("qty").cast(pl.Int64), pl.col("eta").str.to_date())
        tick = time.perf_counter()
        allocate_all(orders.rows(), manifest.rows())
        book_seconds = time.perf_counter() - tick
        lines_frame = orders.with_row_index("arrival_seq").with_columns(
            pl.col("arrival_seq").cast(pl.Int64)
        )
        batches = manifest.select(
            "reference", "sku", "eta", pl.col("qty").alias("purchased"), allocated=pl.lit(0)
        )
        tick = time.perf_counter()
        allocate_lines(lines_frame, batches, workers=1)
        ours = time.perf_counter() - tick
        print(f"book {lines:,} lines: {book_seconds:.2f}s, ours {ours:.3f}s", flush=True)
        rows.append((lines, book_seconds, ours))
    return rows


def table(rows: list[tuple[int, float, float]]) -> list[str]:
    out = [
        "",
        "The book's per-line loop (re-sorts every batch and re-sums every batch's allocations"
        " on each call; `benchmarks/book.py`) against ours (`allocate_lines`, one process), "
        f"same generated lines (one sku per {LINES_PER_SKU} lines, 1–4 batches each), "
        "in-process:",
        "",
        "| lines | skus | book | ours | book ÷ ours | book per line | ours per line |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lines, slow, fast in rows:
        out.append(
            f"| {lines:,} | {lines // LINES_PER_SKU:,} | {slow:.2f} s | "
            f"{fast:.3f} s | {slow / fast:,.0f}× | {slow / lines * 1e6:,.0f} µs | "
            f"{fast / lines * 1e6:,.1f} µs |"
        )
    return out
