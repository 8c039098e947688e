"""The night's allocation chunk of skus by chunk of skus: the domain rule for every line, and the
same answer whatever the chunks and wherever they run (worker processes are forced below the size
where the allocator would go parallel on its own)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.domain import OrderLine, Product
from allocation.service.engine import by_chunks, chunk_decision, scheduling, sources
from allocation.service.engine.columns import allocate_columns
from benchmarks import frame_allocation
from benchmarks.frame_allocation import BATCH_FRAME_SCHEMA as BATCH_SCHEMA
from benchmarks.frame_allocation import allocate_lines

LINE_SCHEMA = {"orderid": pl.String, "sku": pl.String, "qty": pl.Int64, "arrival_seq": pl.Int64}


def test_previous_allocations_count_against_a_batch() -> None:
    batches = pl.DataFrame(
        [("b1", "RETRO-CLOCK", None, 10, 8), ("b2", "RETRO-CLOCK", dt.date(2026, 12, 1), 10, 0)],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    lines = pl.DataFrame(
        [("o1", "RETRO-CLOCK", 3, 1), ("o2", "RETRO-CLOCK", 2, 2)], schema=LINE_SCHEMA, orient="row"
    )
    placed = allocate_lines(lines, batches)
    assert placed.select("orderid", "batchref", "eta").rows() == [
        ("o1", "b2", dt.date(2026, 12, 1)),
        ("o2", "b1", None),
    ]


def _night(seed: int, lines: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A night of distinct lines (as every night is: tonight's are deduplicated against the
    warehouse and each other), over 50 skus with 1-4 batches each."""
    rng = random.Random(seed)
    skus = [f"SKU-{i}" for i in range(50)]
    batches = pl.DataFrame(
        [
            (f"b{i}-{j}", sku, None if j == 0 else dt.date(2026, 12, 1 + j), rng.randint(0, 30), 0)
            for i, sku in enumerate(skus)
            for j in range(rng.randint(1, 4))
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    rows = [(f"o{n}", rng.choice(skus), rng.randint(1, 9), n) for n in range(lines)]
    shuffled = rng.sample(rows, len(rows))  # arrival order is arrival_seq, not row order
    return pl.DataFrame(shuffled, schema=LINE_SCHEMA, orient="row"), batches


class HelpersUpFirst(by_chunks._Helpers):
    """Waits for its worker processes to be up, so they surely get shards (a small night would
    otherwise be done by this process before they have started)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        for started in self._started:
            started.result()


def test_chunks_in_worker_processes_match_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    lines, batches = _night(11, 3_000)
    one = allocate_lines(lines, batches, workers=1)
    monkeypatch.setattr(by_chunks, "PARALLEL_MIN_LINES", 0)
    monkeypatch.setattr(by_chunks, "_Helpers", HelpersUpFirst)
    two = allocate_lines(lines, batches, workers=2, chunk_lines=200)
    assert one.equals(two)
    assert one["arrival_seq"].is_sorted()
    assert 0 < one["batchref"].null_count() < one.height


@pytest.mark.parametrize("chunk_lines", [1, 37, 500, 10_000])
def test_the_size_of_the_chunks_does_not_change_any_answer(chunk_lines: int) -> None:
    lines, batches = _night(7, 2_000)
    assert allocate_lines(lines, batches, chunk_lines=chunk_lines).equals(
        allocate_lines(lines, batches)
    )


def test_chunks_keep_each_sku_whole_in_arrival_order_biggest_first() -> None:
    hot = [(f"h{n}", "HOT-LAMP", 1, 1000 - n) for n in range(300)]  # arrives in reverse
    cold = [(f"c{n}", f"SKU-{n % 40:02d}", 1, 2000 + n) for n in range(400)]
    lines = pl.DataFrame(hot + cold, schema=LINE_SCHEMA, orient="row")
    candidates = frame_allocation.FrameCandidates(lines, pl.DataFrame([], schema=BATCH_SCHEMA))

    with candidates.chunks(100) as (streamed_pieces, streamed_whole):
        pieces, chunks = list(streamed_pieces), [chunk.collect() for chunk in streamed_whole]

    # the hot sku, bigger than a chunk, in consecutive pieces of at most 100 lines
    assert [piece.height for piece in pieces] == [100, 100, 100]
    hot_lines = pl.concat(pieces)
    assert hot_lines["sku"].unique().to_list() == ["HOT-LAMP"]
    assert hot_lines["arrival_seq"].is_sorted() and hot_lines["arrival_seq"].is_unique().all()
    sizes = [chunk.height for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 400
    assert max(sizes) < 200  # whole chunks: a sku of 10 lines may overshoot
    seen: set[str] = {"HOT-LAMP"}
    for chunk in chunks:
        skus = set(chunk["sku"])
        assert not skus & seen, "a sku split between chunks"
        seen |= skus
        for (_sku,), group in chunk.group_by("sku"):
            assert group["arrival_seq"].is_sorted()


_Frame = TypeVar("_Frame", pl.DataFrame, pl.LazyFrame)


class RecordingCandidates(frame_allocation.FrameCandidates):
    """Notes the sizes of the whole chunks and of the pieces handed out, in order."""

    def __init__(self, lines: pl.DataFrame, batches: pl.DataFrame) -> None:
        super().__init__(lines, batches)
        self.handed: list[int] = []
        self.pieces: list[int] = []

    @contextmanager
    def chunks(self, chunk_lines: int) -> Iterator[sources.Streams]:
        with super().chunks(chunk_lines) as (pieces, whole):
            yield self._note(pieces, self.pieces), self._note(whole, self.handed)

    @staticmethod
    def _note(frames: Iterator[_Frame], sizes: list[int]) -> Iterator[_Frame]:
        for frame in frames:
            sizes.append(frame.lazy().select(pl.len()).collect().item())
            yield frame


def test_a_chunk_that_comes_back_with_more_placements_than_lines_fails_the_night(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, batches = _night(3, 50)
    allocate_chunk = chunk_decision.allocate_chunk

    def twice(chunk: pl.DataFrame, batches: pl.DataFrame, *progress: object) -> pl.DataFrame:
        return pl.concat([allocate_chunk(chunk, batches)] * 2)

    monkeypatch.setattr(scheduling, "allocate_chunk", twice)
    with pytest.raises(RuntimeError, match=r"chunk of \d+ lines came back with \d+ placements"):
        by_chunks.allocate_candidates(frame_allocation.FrameCandidates(lines, batches))


def test_helpers_get_the_biggest_chunks_and_every_chunk_is_recorded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, batches = _night(13, 3_000)
    monkeypatch.setattr(by_chunks, "PARALLEL_MIN_LINES", 0)
    monkeypatch.setattr(by_chunks, "_Helpers", HelpersUpFirst)
    candidates = RecordingCandidates(lines, batches)
    reported: list[tuple[int, int]] = []

    by_chunks.allocate_candidates(
        candidates, 2, lambda done, total: reported.append((done, total)), chunk_lines=150
    )

    assert candidates.handed == sorted(candidates.handed, reverse=True)
    placed = pl.concat(candidates.placed)
    assert placed["arrival_seq"].is_unique().all()
    assert reported[-1] == (3_000, 3_000) and len(reported) >= len(candidates.handed)
    assert [done for done, _ in reported] == sorted(done for done, _ in reported)


def test_a_shard_answers_line_by_line_in_the_order_given() -> None:
    batches = pl.DataFrame(
        [
            ("b1", "RETRO-CLOCK", None, 5, 0, 10),
            ("b2", "RETRO-CLOCK", dt.date(2026, 12, 1), 5, 0, 11),
            ("b3", "SMALL-TABLE", None, 1, 0, 12),
        ],
        schema={**BATCH_SCHEMA, "__batch": pl.Int64},
        orient="row",
    )
    lines = pl.DataFrame(
        [
            ("o1", "SMALL-TABLE", 1, 7),
            ("o2", "SMALL-TABLE", 1, 3),
            ("o3", "RETRO-CLOCK", 4, 5),
            ("o4", "RETRO-CLOCK", 4, 0),
            ("o5", "RETRO-CLOCK", 4, 9),
            ("o6", "LARGE-SOFA", 1, 1),
        ],
        schema={"orderid": pl.String, "sku": pl.String, "qty": pl.Int64, "__row": pl.Int64},
        orient="row",
    )

    placed = chunk_decision.allocate_shard(lines, batches)

    assert placed.rows() == [(7, 12), (3, -1), (5, 10), (0, 11), (9, -1), (1, -1)]


def test_an_empty_night_and_skus_without_batches() -> None:
    batches = pl.DataFrame([], schema=BATCH_SCHEMA)
    lines = pl.DataFrame([("o1", "RETRO-CLOCK", 1, 1)], schema=LINE_SCHEMA, orient="row")

    placed = allocate_lines(lines, batches)
    nothing = allocate_lines(lines.clear(), batches)

    assert placed.select("orderid", "batchref", "eta").rows() == [("o1", None, None)]
    assert nothing.height == 0
    assert nothing.columns == [*LINE_SCHEMA, "batchref", "eta"]


def test_each_line_gets_the_domain_answer_in_arrival_order() -> None:
    """Against the domain itself, line by line in arrival order: the first in-stock batch with
    room, else the earliest arrival with room; full batches are skipped."""
    from allocation.domain import Batch, OutOfStockError, allocate

    lines, batches = _night(5, 2_000)
    placed = allocate_lines(lines, batches)
    stock = {
        sku: [Batch(r, s, q, e) for r, s, e, q, _ in group.rows()]
        for (sku,), group in batches.group_by("sku")
    }
    expected: list[str | None] = []
    for orderid, sku, qty, _ in lines.sort("arrival_seq").rows():
        try:
            expected.append(allocate(OrderLine(orderid, sku, qty), stock.get(sku, [])))
        except OutOfStockError:
            expected.append(None)
    assert placed["batchref"].to_list() == expected


def _hot_night(hot_lines: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One sku far bigger than a chunk, whose batches (in stock, partly allocated on earlier
    nights, and three shipments) run out one after another in the middle of the night, beside
    a few small skus."""
    rng = random.Random(hot_lines)
    batches = pl.DataFrame(
        [
            ("lamp-stock", "HOT-LAMP", None, 40, 25),
            ("lamp-dec", "HOT-LAMP", dt.date(2026, 12, 1), 30, 0),
            ("lamp-jan", "HOT-LAMP", dt.date(2027, 1, 5), 55, 10),
            ("lamp-feb", "HOT-LAMP", dt.date(2027, 2, 9), 70, 0),
            ("clock-stock", "RETRO-CLOCK", None, 9, 3),
            ("sofa-mar", "LARGE-SOFA", dt.date(2027, 3, 1), 5, 0),
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    skus = ["HOT-LAMP"] * 8 + ["RETRO-CLOCK", "LARGE-SOFA", "SMALL-TABLE"]
    rows = [(f"o{n}", rng.choice(skus), rng.randint(1, 4), n) for n in range(hot_lines)]
    return pl.DataFrame(rng.sample(rows, len(rows)), schema=LINE_SCHEMA, orient="row"), batches


@pytest.mark.parametrize("chunk_lines", [1, 2, 7, 10, 33, 100_000])
def test_a_sku_far_bigger_than_a_chunk_gets_the_same_answers_in_pieces(chunk_lines: int) -> None:
    lines, batches = _hot_night(300)
    whole = allocate_lines(lines, batches, chunk_lines=10_000_000)
    used = dict(whole.group_by("batchref").agg(pl.col("qty").sum()).rows())
    # every lamp batch is used up during the night, across the pieces' boundaries
    assert {ref: used.get(ref) for ref in ("lamp-stock", "lamp-dec", "lamp-jan", "lamp-feb")} == {
        "lamp-stock": 15,
        "lamp-dec": 30,
        "lamp-jan": 45,
        "lamp-feb": 70,
    }
    assert whole.filter(pl.col("sku") == "HOT-LAMP")["batchref"].null_count() > 0

    assert allocate_lines(lines, batches, chunk_lines=chunk_lines).equals(whole)


def test_pieces_of_a_hot_sku_in_this_process_match_one_process_with_helpers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, batches = _hot_night(2_000)
    one = allocate_lines(lines, batches)
    monkeypatch.setattr(by_chunks, "PARALLEL_MIN_LINES", 0)
    monkeypatch.setattr(by_chunks, "_Helpers", HelpersUpFirst)
    candidates = RecordingCandidates(lines, batches)

    by_chunks.allocate_candidates(candidates, 2, chunk_lines=50)

    assert len(candidates.pieces) > 10 and max(candidates.pieces) == 50
    placed = pl.concat(candidates.placed)
    assert placed["arrival_seq"].is_unique().all()
    two = allocate_lines(lines, batches, workers=2, chunk_lines=50)
    assert one.equals(two)


class CountingProduct(Product):
    """A domain `Product` that notes the most lines it was ever handed at once."""

    most = 0

    def allocate_quantities(self, quantities: Sequence[int]) -> list[int | None]:
        CountingProduct.most = max(CountingProduct.most, len(quantities))
        return super().allocate_quantities(quantities)


def test_no_product_holds_more_lines_than_a_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = pl.DataFrame(
        [(f"o{n}", "HOT-LAMP", 1, n) for n in range(100)], schema=LINE_SCHEMA, orient="row"
    )
    batches = pl.DataFrame(
        [("lamp-stock", "HOT-LAMP", None, 1_000, 0)], schema=BATCH_SCHEMA, orient="row"
    )
    monkeypatch.setattr(chunk_decision, "Product", CountingProduct)

    placed = allocate_lines(lines, batches, chunk_lines=10)

    assert placed["batchref"].to_list() == ["lamp-stock"] * 100
    assert CountingProduct.most == 10


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.sampled_from(["HOT-LAMP", "RETRO-CLOCK", "SOFA"]), st.integers(1, 6)),
        max_size=120,
    ),
    stock=st.lists(
        st.tuples(
            st.sampled_from(["HOT-LAMP", "RETRO-CLOCK", "SOFA"]),
            st.none() | st.integers(1, 60),
            st.integers(0, 40),
            st.integers(0, 40),
        ),
        max_size=8,
    ),
    chunk_lines=st.integers(1, 130),
    order=st.randoms(use_true_random=False),
)
def test_any_chunk_size_places_every_line_as_one_chunk_of_everything(
    data: list[tuple[str, int]],
    stock: list[tuple[str, int | None, int, int]],
    chunk_lines: int,
    order: random.Random,
) -> None:
    rows = [(f"o{n}", sku, qty, n) for n, (sku, qty) in enumerate(data)]
    lines = pl.DataFrame(order.sample(rows, len(rows)), schema=LINE_SCHEMA, orient="row")
    batches = pl.DataFrame(
        [
            (
                f"b{n}",
                sku,
                None if days is None else dt.date(2026, 12, 1) + dt.timedelta(days=days),
                bought,
                min(before, bought),
            )
            for n, (sku, days, bought, before) in enumerate(stock)
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    assert allocate_lines(lines, batches, chunk_lines=chunk_lines).equals(
        allocate_lines(lines, batches, chunk_lines=1_000)
    )


class FrameColumns:
    """`sources.Columns` over frames in memory: skus ranked in sku order, as DuckDB ranks them."""

    def __init__(self, lines: pl.DataFrame, batches: pl.DataFrame) -> None:
        self._skus = (
            lines.group_by("sku")
            .len("lines")
            .sort("sku")
            .select(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("sku_rank"), "sku", "lines")
        )
        self._lines = lines.join(self._skus, on="sku").select("sku_rank", "qty", "arrival_seq")
        self._batches = (
            batches.with_columns(pl.int_range(pl.len()).alias(sources.BATCH_ID))
            .join(self._skus.select("sku", "sku_rank"), on="sku")
            .sort("sku_rank", "reference")
            .select("sku_rank", "reference", "eta", "purchased", "allocated", sources.BATCH_ID)
        )
        self.recorded: list[pl.DataFrame] = []
        self.sizes: list[int] = []

    def skus(self) -> pl.DataFrame:
        return self._skus

    def sku_batches(self) -> pl.DataFrame:
        return self._batches

    @contextmanager
    def column_slices(self, sizes: list[int]) -> Iterator[Iterator[pl.DataFrame]]:
        self.sizes = sizes
        ordered = self._lines.sort("sku_rank", "arrival_seq")
        starts = [0, *itertools.accumulate(sizes)]
        assert starts[-1] == ordered.height
        yield (ordered.slice(start, size) for start, size in zip(starts[:-1], sizes, strict=True))

    def record(self, placed: pl.DataFrame) -> None:
        self.recorded.append(placed)

    def load_placements(self) -> int:
        return sum(frame.height for frame in self.recorded)

    def placed(self) -> pl.DataFrame:
        """The placements in arrival order, as the warehouse records them."""
        schema = {"arrival_seq": pl.Int64, "batch": pl.Int64, "qty": pl.Int64}
        return pl.concat([pl.DataFrame(schema=schema), *self.recorded]).sort("arrival_seq")


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(st.sampled_from(["HOT-LAMP", "RETRO-CLOCK", "SOFA", "STOOL"]), st.integers(1, 6)),
        max_size=120,
    ),
    stock=st.lists(
        st.tuples(
            st.sampled_from(["HOT-LAMP", "RETRO-CLOCK", "SOFA"]),
            st.none() | st.integers(1, 60),
            st.integers(0, 40),
            st.integers(0, 40),
        ),
        max_size=8,
    ),
    slice_lines=st.integers(1, 130),
    order=st.randoms(use_true_random=False),
)
def test_the_night_decided_over_integer_columns_places_every_line_as_the_chunked_night(
    data: list[tuple[str, int]],
    stock: list[tuple[str, int | None, int, int]],
    slice_lines: int,
    order: random.Random,
) -> None:
    """The default decision (each sku's quantities as a column, slices of whole skus, answers
    put back by position) against the chunked one through `allocate_lines`: every line gets the
    same batch; no slice holds more than `slice_lines` lines unless one sku has more."""
    rows = [(f"o{n}", sku, qty, 10 + 3 * n) for n, (sku, qty) in enumerate(data)]
    lines = pl.DataFrame(order.sample(rows, len(rows)), schema=LINE_SCHEMA, orient="row")
    batches = pl.DataFrame(
        [
            (
                f"b{n}",
                sku,
                None if days is None else dt.date(2026, 12, 1) + dt.timedelta(days=days),
                bought,
                min(before, bought),
            )
            for n, (sku, days, bought, before) in enumerate(stock)
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    columns = FrameColumns(lines, batches)
    count = allocate_columns(columns, slice_lines=slice_lines)
    placed = columns.placed()

    expected = allocate_lines(lines, batches, chunk_lines=1_000).filter(
        pl.col("batchref").is_not_null()
    )
    references = batches["reference"]
    assert placed["arrival_seq"].to_list() == expected["arrival_seq"].to_list()
    assert [references[i] for i in placed["batch"]] == expected["batchref"].to_list()
    assert placed["qty"].to_list() == expected["qty"].to_list()
    assert count == expected.height
    biggest = max(columns.skus()["lines"].to_list(), default=0)
    assert all(size <= max(slice_lines, biggest) for size in columns.sizes)
