"""The chunked way (`allocate_candidates`): the night's `Candidates` in chunks of whole skus,
allocated in this process or spread over spawned helper processes. The Dask runner
(`allocation.flows.sharding`) shares its chunks through the same loop
(`allocation.service.engine.scheduling.share_chunks`).

Skus never share a batch, so each sku is an independent unit. The candidates come in chunks of
skus of about `CHUNK_LINES` lines, biggest first, each sku's lines in arrival order; a chunk's
placements go back to the candidates, which keep them out of Python: memory holds the chunks in
flight, not the night. A chunk holding a sku of more than `chunk_lines` lines (a hot sku) comes
in pieces of at most `chunk_lines` lines, allocated in order in this process.

In parallel, helpers are spawned first (their imports overlap the first chunks); each holds
`IN_FLIGHT` whole chunks at a time, and this process allocates the next whole chunk whenever
they are busy. A whole chunk travels as a plan (`pl.LazyFrame`, in production a scan of the
chunk's spooled file): the helper reads and orders its own lines, so this process neither reads
nor pickles them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from concurrent.futures import Future, as_completed

import polars as pl

from allocation.io.helper_pool import helper_pool
from allocation.service.engine.chunk_decision import allocate_chunk, batches_of
from allocation.service.engine.scheduling import NO_WORKERS, share_chunks
from allocation.service.engine.sources import Candidates
from allocation.service.progress import LineProgress, Progress, no_progress

log = logging.getLogger("allocation")

#: Below this many lines a second process costs more than it saves (a spawned helper starts an
#: interpreter and imports polars; docs/benchmarks.md).
PARALLEL_MIN_LINES = 500_000
#: A chunk: whole skus handed out together as one unit of work (to this process, a helper or a
#: Dask shard), about this many lines (a sku with more is a chunk alone, allocated in pieces of
#: this many lines). Small enough that the chunks in flight weigh little beside the process
#: (a hot sku's piece, all in one `Product`, is the most Python holds), big enough that the
#: per-chunk costs (a DuckDB batch, a trip to a helper) stay small (docs/benchmarks.md).
CHUNK_LINES = 100_000


def _allocate_whole(lines: pl.LazyFrame, batches: pl.DataFrame) -> pl.DataFrame:
    """`allocate_chunk` of a whole chunk, collected where it is allocated (in a helper: the
    chunk's plan travels, not its rows)."""
    return allocate_chunk(lines.collect(), batches)


def _warm_up() -> None:
    """Submitted first, so a helper starts (and imports this module) before there is work."""


class _Helpers:
    """`count` spawned processes that allocate whole chunks beside this one (`Workers`)."""

    def __init__(self, count: int) -> None:
        # Spawned, and bare: they import polars and the domain, not the command and Prefect.
        self._pool = helper_pool(count)
        # Started now, so their imports overlap this process's own preparation.
        self._started = [self._pool.submit(_warm_up) for _ in range(count)]

    def __enter__(self) -> _Helpers:
        return self

    def __exit__(self, *_: object) -> None:
        self._pool.shutdown(cancel_futures=True)

    def ready(self) -> int:
        """The helpers started so far."""
        return sum(started.done() for started in self._started)

    def submit(
        self, chunk: pl.LazyFrame, batches: pl.DataFrame
    ) -> tuple[Future[pl.DataFrame], int]:
        skus = chunk.select("sku").collect()  # one column: the chunk's batches, its size
        return self._pool.submit(_allocate_whole, chunk, batches_of(batches, skus)), skus.height

    def finished(self, job: Future[pl.DataFrame]) -> bool:
        return job.done()

    def next_finished(self, jobs: Collection[Future[pl.DataFrame]]) -> Future[pl.DataFrame]:
        return next(as_completed(jobs))

    def placements(self, job: Future[pl.DataFrame]) -> pl.DataFrame:
        return job.result()

    def share(self, candidates: Candidates, chunk_lines: int, done: LineProgress) -> None:
        """Allocates every chunk, biggest first: the pieces of the big ones here, the whole
        ones on the helpers, and here too whenever the helpers are all busy."""
        shared = share_chunks(candidates, chunk_lines, self, done, here_when_full=True)
        log.info(
            "Allocated %s lines in %d whole chunks of skus and the pieces of the big ones: %s in "
            "this process, the rest in %d helper(s)",
            f"{done.total:,}",
            shared.whole_chunks,
            f"{shared.here:,}",
            len(self._started),
        )


def allocate_candidates(
    candidates: Candidates,
    workers: int = 1,
    progress: Progress = no_progress,
    chunk_lines: int | None = None,
) -> None:
    """Allocates every chunk of `candidates` and records its placements. `workers` > 1 spreads
    the chunks over that many processes, this one included (0 = one per CPU core), for nights
    of `PARALLEL_MIN_LINES` lines or more. `progress(lines done, lines)` is called in this
    process after every chunk. `chunk_lines`: lines per chunk (default `CHUNK_LINES`)."""
    workers = workers or os.cpu_count() or 1
    chunk_lines = chunk_lines or CHUNK_LINES
    done = LineProgress(candidates.lines, progress)
    if workers > 1 and candidates.lines >= PARALLEL_MIN_LINES:
        with _Helpers(workers - 1) as helpers:
            helpers.share(candidates, chunk_lines, done)
        return
    share_chunks(candidates, chunk_lines, NO_WORKERS, done, here_when_full=True)
