"""The night's allocation on a Dask cluster, as one Prefect task run per chunk of skus.

`dask_allocator(params)` returns an allocator for `night_transaction.allocate_night` (the same
contract as `allocation.service.engine.by_chunks.allocate_candidates`). Called inside the
night's single warehouse transaction, it

1. takes the night's candidates chunk by chunk of skus, biggest first, as they stream out of
   DuckDB (skus never share a batch, so chunks are independent: a chunk's lines get the same
   batches alone as with every other sku beside them); a chunk bigger than `chunk_lines` (a
   hot sku) comes in pieces that depend on each other, which this process allocates in order,
   carrying the batches' state, while the workers take the whole chunks;
2. writes each chunk's lines and its skus' batches as Parquet to the shard exchange (a
   folder, or any fsspec URL every worker can reach) under a folder named after the content;
3. runs one Prefect task `allocate-shard` per chunk on a `prefect_dask.DaskTaskRunner` (an
   existing scheduler, or a temporary `LocalCluster`), at most `IN_FLIGHT` per worker thread at
   a time (`allocation.service.engine.scheduling.share_chunks`, the loop the local helpers
   share), so only those chunks are staged and held at once; a shard task reads its two files,
   allocates them with `allocate_chunk` (the pure per-chunk contract), writes `placed.parquet`
   beside them and returns that path. Only paths travel through the scheduler, never frames;
4. reads each result back as it comes in and records it with the candidates.

The placements are recorded into the warehouse where they always were: by `allocate_night`, once,
in the run's transaction. A shard task that fails, is retried, or runs twice (a worker lost
mid-task) only rewrites the same file with the same content, so nothing applies twice.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import fsspec
import polars as pl
from fsspec.core import url_to_fs
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.futures import PrefectFuture, as_completed

from allocation.service.engine.by_chunks import CHUNK_LINES, allocate_candidates
from allocation.service.engine.chunk_decision import allocate_chunk, batches_of
from allocation.service.engine.scheduling import share_chunks
from allocation.service.engine.sources import Candidates
from allocation.service.night_transaction import Allocator
from allocation.service.progress import LineProgress, Progress, no_progress
from allocation.service.rates import rate
from allocation.settings import RunParameters

log = logging.getLogger("allocation")

LINES_FILE = "lines.parquet"
BATCHES_FILE = "batches.parquet"
RESULT_FILE = "placed.parquet"


def shard_exchange_root(params: RunParameters) -> str:
    """The shard exchange, a folder or URL: the `staging` setting (its older name, kept for the
    settings and the flow's parameter), else `<state dir>/staging`."""
    return params.staging or str(params.state_folder.shard_exchange)


# -- Parquet through fsspec (a local path, file://, s3://, gs://, ...) ------------------------
def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, statistics=False)
    return buffer.getvalue()


def _put(url: str, data: bytes) -> None:
    """Writes `data` at `url` whole or not at all (a temporary name, then a rename; an object
    store's PUT is atomic anyway)."""
    fs, path = url_to_fs(url)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open(temporary, "wb") as handle:
        handle.write(data)
    fs.mv(temporary, path)


def _exists(url: str) -> bool:
    fs, path = url_to_fs(url)
    return bool(fs.exists(path))


def read_parquet(url: str) -> pl.DataFrame:
    with fsspec.open(url, "rb") as handle:
        return pl.read_parquet(handle)


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


# -- the shard task ---------------------------------------------------------------------------
@task(
    name="allocate-shard",
    task_run_name="allocate-shard-{shard}",
    cache_policy=NO_CACHE,
    persist_result=False,
    retries=2,
    retry_delay_seconds=[1, 5],
)
def allocate_shard_task(shard: str, lines_url: str, batches_url: str, result_url: str) -> str:
    """Pure: the same input files always give the same `result_url` with the same rows. A result
    already there (an earlier attempt finished) is kept, not computed again."""
    logger = get_run_logger()
    if _exists(result_url):
        logger.info("Shard %s: result already staged at %s", shard, result_url)
        return result_url
    started = time.perf_counter()
    lines = read_parquet(lines_url)
    placed = allocate_chunk(lines, read_parquet(batches_url))
    _put(result_url, _parquet_bytes(placed))
    logger.info("Shard %s: allocated %s", shard, rate(lines.height, time.perf_counter() - started))
    return result_url


@contextmanager
def _parent_without_parameters() -> Iterator[None]:
    """Submits from inside the `allocate` task without shipping its parameters (the whole
    night's frames) to every worker: Prefect serialises the parent task run's context,
    parameters included, with each submitted task. The shard runs keep their parent link."""
    parent = TaskRunContext.get()
    if parent is None:
        yield
        return
    light = TaskRunContext(
        task=parent.task,
        task_run=parent.task_run,
        log_prints=parent.log_prints,
        parameters={},
        result_store=parent.result_store,
        persist_result=parent.persist_result,
        client=parent.client,
    )
    with light:
        yield


# -- the allocator ----------------------------------------------------------------------------
def task_runner_for(params: RunParameters) -> Any:
    """A `DaskTaskRunner` on the configured scheduler, or on a temporary local cluster of
    `dask_workers` single-threaded worker processes (loopback only, no dashboard)."""
    from prefect_dask.task_runners import DaskTaskRunner

    if params.dask_address:
        return DaskTaskRunner(address=params.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": params.dask_workers,
            "processes": True,
            "threads_per_worker": 1,
            "host": "127.0.0.1",
            "dashboard_address": None,
        }
    )


def stage_chunk(lines: pl.DataFrame, batches: pl.DataFrame, root: str) -> tuple[str, str, str]:
    """Writes one chunk's lines and batches under `root/shard-<digest>/`; returns the (lines,
    batches, result) URLs. The digest is the inputs' content, so a chunk staged again with the
    same rows lands on the same files."""
    data = _parquet_bytes(lines), _parquet_bytes(batches)
    digest = hashlib.sha256(data[0] + b"\0" + data[1]).hexdigest()[:24]
    folder = _join(root, f"shard-{digest}")
    urls = (_join(folder, LINES_FILE), _join(folder, BATCHES_FILE), _join(folder, RESULT_FILE))
    for url, content in zip(urls[:2], data, strict=True):
        if not _exists(url):
            _put(url, content)
    return urls


class _DaskShards:
    """The Dask runner's `Workers`: a whole chunk is staged as Parquet and allocated by an
    `allocate-shard` task run on `runner` (started); its placements are read back from the file
    the task wrote."""

    def __init__(self, runner: Any, root: str) -> None:
        self.runner = runner
        self.root = root
        self.threads: int = max(1, sum(runner.client.nthreads().values()))
        self.shards = 0

    def ready(self) -> int:
        """Every worker thread of the cluster."""
        return self.threads

    def submit(self, chunk: pl.LazyFrame, batches: pl.DataFrame) -> tuple[PrefectFuture[str], int]:
        self.shards += 1
        lines = chunk.collect()
        lines_url, batches_url, result_url = stage_chunk(
            lines, batches_of(batches, lines), self.root
        )
        with _parent_without_parameters():
            future = self.runner.submit(
                allocate_shard_task,
                parameters={
                    "shard": f"{self.shards:04d}",
                    "lines_url": lines_url,
                    "batches_url": batches_url,
                    "result_url": result_url,
                },
            )
        return future, lines.height

    def finished(self, job: PrefectFuture[str]) -> bool:
        return job.state.is_final()

    def next_finished(self, jobs: Collection[PrefectFuture[str]]) -> PrefectFuture[str]:
        return next(as_completed(list(jobs)))

    def placements(self, job: PrefectFuture[str]) -> pl.DataFrame:
        return read_parquet(job.result())  # raises the shard's error, if any


def allocate_on_dask(
    candidates: Candidates,
    *,
    runner: Any,
    exchange: str,
    run_id: str,
    keep_exchange: bool = False,
    progress: Progress | None = None,
    chunk_lines: int | None = None,
) -> None:
    """Allocates every chunk of `candidates` as shard tasks on `runner` (a DaskTaskRunner, not
    yet started) and records their placements. `progress(lines done, lines)` is called each
    time a chunk's result is in. `chunk_lines`: lines per chunk; by default `CHUNK_LINES`, or
    fewer so that every worker thread gets a chunk of a small night."""
    if not candidates.lines:
        allocate_candidates(candidates)
        return
    root = _join(exchange, f"run-{run_id}")
    started = time.perf_counter()
    with runner:
        shards = _DaskShards(runner, root)
        chunk_lines = chunk_lines or min(CHUNK_LINES, -(-candidates.lines // shards.threads))
        log.info(
            "Allocating %s lines in chunks of skus exchanged under %s; %d worker thread(s) on %s",
            f"{candidates.lines:,}",
            root,
            shards.threads,
            runner.client.scheduler.address,
        )
        # The pieces of a big chunk (a hot sku) depend on each other: this process allocates
        # them in order between handing whole chunks out; once they are done, it waits for a
        # worker whenever all are full.
        done = LineProgress(candidates.lines, progress or no_progress)
        share_chunks(candidates, chunk_lines, shards, done, here_when_full=False)
    if not keep_exchange:
        fs, path = url_to_fs(root)
        # A night whose lines are all one hot sku is allocated here in pieces: no shard was
        # staged, so there is no folder to remove.
        if fs.exists(path):
            fs.rm(path, recursive=True)
    log.info(
        "Dask allocation of %d chunk(s): %s",
        shards.shards,
        rate(candidates.lines, time.perf_counter() - started),
    )


def dask_allocator(
    params: RunParameters, run_id: str, progress: Progress | None = None
) -> Allocator:
    """The allocator `allocate_night` takes, running the shards on the configured cluster."""

    def allocate(candidates: Candidates) -> None:
        allocate_on_dask(
            candidates,
            runner=task_runner_for(params),
            exchange=shard_exchange_root(params),
            run_id=run_id,
            progress=progress,
        )

    return allocate


def allocator_for(
    params: RunParameters, run_id: str, progress: Progress | None = None
) -> Allocator | None:
    """None (the default local allocator) unless the run asks for the Dask task runner."""
    if params.task_runner == "dask":
        return dask_allocator(params, run_id, progress)
    return None
