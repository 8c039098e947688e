"""The one loop that shares a night's chunks of skus between this process and workers: the local
helper processes (`allocation.service.engine.by_chunks`) and the Dask shards
(`allocation.flows.sharding`). What differs between them is how a whole chunk is handed to a
worker and its placements come back (`Workers`), and what this process does when every worker
is full: allocate the next whole chunk itself (the helpers) or wait for a worker (Dask).

This process allocates the pieces of the big chunks (a hot sku) one after another, carrying the
batches' state; between pieces it hands the whole chunks out, biggest first, `IN_FLIGHT` per
worker, so the workers work while it does. Only the chunks in flight are in memory; the last
ones handed out are the smallest, so the processes finish close together.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

import polars as pl

from allocation.service.engine.chunk_decision import allocate_chunk, carry
from allocation.service.engine.sources import Candidates
from allocation.service.progress import LineProgress

#: Whole chunks each worker holds at a time: one it works on, one waiting, so it never waits for
#: this process (which reads the chunks and allocates too) to hand it the next.
IN_FLIGHT = 2

Job = TypeVar("Job")


class Workers(Protocol[Job]):
    """Where whole chunks go, and how their placements come back. A `Job` is one chunk handed
    out (a future)."""

    def ready(self) -> int:
        """How many workers can take chunks now."""

    def submit(self, chunk: pl.LazyFrame, batches: pl.DataFrame) -> tuple[Job, int]:
        """Hands `chunk` (a whole chunk's plan) to a worker, with `batches` the night's
        catalogue; returns the job and the chunk's lines."""

    def finished(self, job: Job) -> bool:
        """Whether `job` is over (done or failed), without waiting."""

    def next_finished(self, jobs: Collection[Job]) -> Job:
        """Waits for one of `jobs` to be over."""

    def placements(self, job: Job) -> pl.DataFrame:
        """The placements (`allocate_chunk`'s frame) of a finished job; raises its error."""


@dataclass(frozen=True)
class Shared:
    """What `share_chunks` did: whole chunks handed out (to a worker or kept here) and lines
    allocated in this process."""

    whole_chunks: int
    here: int


class _NoWorkers:
    """No worker at all: `share_chunks` then allocates every chunk in this process."""

    def ready(self) -> int:
        return 0

    def submit(self, chunk: pl.LazyFrame, batches: pl.DataFrame) -> tuple[None, int]:
        raise AssertionError("no worker to hand a chunk to")

    def finished(self, job: None) -> bool:
        return True

    def next_finished(self, jobs: Collection[None]) -> None:
        raise AssertionError("no worker to wait for")

    def placements(self, job: None) -> pl.DataFrame:
        raise AssertionError("no worker to have placed a chunk")


#: No worker: every chunk is allocated in this process (a small night, or one process asked for).
NO_WORKERS: Workers[None] = _NoWorkers()


def record(candidates: Candidates, placed: pl.DataFrame, lines: int, done: LineProgress) -> None:
    """Records one chunk's or piece's placements and counts its lines done."""
    if placed.height > lines:
        raise RuntimeError(f"a chunk of {lines} lines came back with {placed.height} placements")
    candidates.record(placed)
    done.add(lines)


def share_chunks(
    candidates: Candidates,
    chunk_lines: int,
    workers: Workers[Job],
    done: LineProgress,
    *,
    here_when_full: bool,
) -> Shared:
    """Allocates every chunk of `candidates` (`Candidates.chunks(chunk_lines)`) and records its
    placements: the pieces in this process, the whole chunks on `workers`, at most `IN_FLIGHT`
    per ready worker at a time. When every worker is full, this process allocates the next whole
    chunk itself if `here_when_full`, else waits for a worker's result."""
    batches = candidates.batches()
    running: dict[Job, int] = {}
    held: pl.LazyFrame | None = None  # the next whole chunk, when no worker had room
    handed = here = 0

    def collect(jobs: Iterable[Job]) -> None:
        for job in jobs:
            lines = running.pop(job)
            record(candidates, workers.placements(job), lines, done)

    def hand_out(whole: Iterator[pl.LazyFrame], wait: bool) -> None:
        nonlocal held, handed
        collect([job for job in running if workers.finished(job)])
        while True:
            if held is None:
                held = next(whole, None)
                if held is None:
                    return
                handed += 1
            while len(running) >= IN_FLIGHT * workers.ready():
                if not wait:
                    return
                collect([workers.next_finished(running)])
            job, lines = workers.submit(held, batches)
            running[job] = lines
            held = None

    with candidates.chunks(chunk_lines) as (pieces, whole):
        carried = batches
        hand_out(whole, wait=False)  # before the first piece is read: the workers start at once
        for piece in pieces:
            hand_out(whole, wait=False)
            placed = allocate_chunk(piece, carried, done.within)
            carried = carry(carried, placed)
            record(candidates, placed, piece.height, done)
            here += piece.height
        while True:
            hand_out(whole, wait=not here_when_full)
            if held is None:
                break
            chunk, held = held.collect(), None
            record(candidates, allocate_chunk(chunk, batches, done.within), chunk.height, done)
            here += chunk.height
        while running:
            collect([workers.next_finished(running)])
    return Shared(handed, here)
