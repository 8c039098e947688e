"""The night's allocation chunk of skus by chunk of skus: the domain rule for every line, and the
same answer whatever the chunks and wherever they run (worker processes are forced below the size
where the allocator would go parallel on its own)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import polars as pl
import pytest

from allocation import allocator
from allocation.allocator import allocate_lines

BATCH_SCHEMA = {
    "reference": pl.String,
    "sku": pl.String,
    "eta": pl.Date,
    "purchased": pl.Int64,
    "allocated": pl.Int64,
}
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


def _night(seed: int, lines: int, repeat_lines: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
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
    if repeat_lines:  # the same line twice: the domain places it once, on the same batch
        rows += [(orderid, sku, qty, seq + lines) for orderid, sku, qty, seq in rows[::7]]
    shuffled = rng.sample(rows, len(rows))  # arrival order is arrival_seq, not row order
    return pl.DataFrame(shuffled, schema=LINE_SCHEMA, orient="row"), batches


class HelpersUpFirst(allocator._Helpers):
    """Waits for its worker processes to be up, so they surely get shards (a small night would
    otherwise be done by this process before they have started)."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        for started in self._started:
            started.result()


@pytest.mark.parametrize("repeat_lines", [False, True])
def test_chunks_in_worker_processes_match_one_process(
    monkeypatch: pytest.MonkeyPatch, repeat_lines: bool
) -> None:
    lines, batches = _night(11, 3_000, repeat_lines)
    one = allocate_lines(lines, batches, workers=1)
    monkeypatch.setattr(allocator, "PARALLEL_MIN_LINES", 0)
    monkeypatch.setattr(allocator, "_Helpers", HelpersUpFirst)
    two = allocate_lines(lines, batches, workers=2, chunk_lines=200)
    assert one.equals(two)
    assert one["arrival_seq"].is_sorted()
    assert 0 < one["batchref"].null_count() < one.height


@pytest.mark.parametrize("chunk_lines", [1, 37, 500, 10_000])
def test_the_size_of_the_chunks_does_not_change_any_answer(chunk_lines: int) -> None:
    lines, batches = _night(7, 2_000, repeat_lines=True)
    assert allocate_lines(lines, batches, chunk_lines=chunk_lines).equals(
        allocate_lines(lines, batches)
    )


def test_chunks_keep_each_sku_whole_in_arrival_order_biggest_first() -> None:
    hot = [(f"h{n}", "HOT-LAMP", 1, 1000 - n) for n in range(300)]  # arrives in reverse
    cold = [(f"c{n}", f"SKU-{n % 40:02d}", 1, 2000 + n) for n in range(400)]
    lines = pl.DataFrame(hot + cold, schema=LINE_SCHEMA, orient="row")
    candidates = allocator.FrameCandidates(lines, pl.DataFrame([], schema=BATCH_SCHEMA))

    chunks = list(candidates.chunks(100))

    sizes = [chunk.height for chunk in chunks]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) == 700
    assert chunks[0]["sku"].unique().to_list() == ["HOT-LAMP"]  # the hot sku first, alone
    assert max(sizes[1:]) < 200  # about 100 lines each: a sku of 10 lines may overshoot
    seen: set[str] = set()
    for chunk in chunks:
        skus = set(chunk["sku"])
        assert not skus & seen, "a sku split between chunks"
        seen |= skus
        for (_sku,), group in chunk.group_by("sku"):
            assert group["arrival_seq"].is_sorted()


class RecordingCandidates(allocator.FrameCandidates):
    """Notes which chunk sizes were handed out, in order."""

    def __init__(self, lines: pl.DataFrame, batches: pl.DataFrame) -> None:
        super().__init__(lines, batches)
        self.handed: list[int] = []

    def chunks(self, chunk_lines: int) -> Iterator[pl.DataFrame]:
        for chunk in super().chunks(chunk_lines):
            self.handed.append(chunk.height)
            yield chunk


def test_a_chunk_that_comes_back_with_more_placements_than_lines_fails_the_night(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, batches = _night(3, 50, repeat_lines=False)
    allocate_chunk = allocator.allocate_chunk

    def twice(chunk: pl.DataFrame, batches: pl.DataFrame, *progress: object) -> pl.DataFrame:
        return pl.concat([allocate_chunk(chunk, batches)] * 2)

    monkeypatch.setattr(allocator, "allocate_chunk", twice)
    with pytest.raises(RuntimeError, match=r"chunk of \d+ lines came back with \d+ placements"):
        allocator.allocate_candidates(allocator.FrameCandidates(lines, batches))


def test_helpers_get_the_biggest_chunks_and_every_chunk_is_recorded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines, batches = _night(13, 3_000, repeat_lines=False)
    monkeypatch.setattr(allocator, "PARALLEL_MIN_LINES", 0)
    monkeypatch.setattr(allocator, "_Helpers", HelpersUpFirst)
    candidates = RecordingCandidates(lines, batches)
    reported: list[tuple[int, int]] = []

    allocator.allocate_candidates(
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

    placed = allocator.allocate_shard(lines, batches)

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
    from allocation.domain import Batch, OrderLine, OutOfStockError, allocate

    lines, batches = _night(5, 2_000, repeat_lines=False)
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
