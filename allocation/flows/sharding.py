"""The night's allocation on a Dask cluster, as one Prefect task run per sku shard.

`dask_allocator(params)` returns an allocator for `services.allocate_night` (the same contract as
`allocation.allocator.allocate_lines`). Called inside the night's single warehouse transaction, it

1. splits the open lines and their batches into shards by sku (the same hash as
   `allocate_lines`: skus never share a batch, so shards are independent and a shard's lines
   get the same batch alone as with every other sku beside them);
2. writes each shard's inputs as Parquet to the staging location (a folder, or any fsspec URL
   every worker can reach) under a folder named after the shard's content;
3. runs one Prefect task `allocate-shard` per shard on a `prefect_dask.DaskTaskRunner` (an
   existing scheduler, or a temporary `LocalCluster`); a shard task reads its two files,
   allocates them with `allocate_lines(..., workers=1)` (the public, pure per-shard contract:
   lines in, lines with batchref and eta out), writes `placed.parquet` beside them and
   returns that path. Only paths travel through the scheduler, never frames;
4. reads the results back and returns them in arrival order: the frame `allocate_lines` returns
   for the whole night (same columns, same order, same rows).

The merge into the warehouse stays where it was: `allocate_night` applies the returned frame
once, in the run's transaction. A shard task that fails, is retried, or runs twice (a worker
lost mid-task) only rewrites the same file with the same content, so nothing applies twice.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fsspec
import polars as pl
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.futures import as_completed

from allocation.allocator import allocate_lines, shards_with_batches
from allocation.services import Allocator, Progress, rate
from allocation.settings import RunParameters

log = logging.getLogger("allocation")

SHARD_LINES = 250_000  # lines per shard at most, so a big night has several shards per worker
LINES_FILE = "lines.parquet"
BATCHES_FILE = "batches.parquet"
RESULT_FILE = "placed.parquet"


def staging_root(params: RunParameters) -> str:
    """The staging folder or URL: the `staging` setting, else `<state dir>/staging`."""
    return params.staging or str(params.state_dir / "staging")


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
    placed = allocate_lines(lines, read_parquet(batches_url), workers=1)
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


def stage_shards(
    lines: pl.DataFrame, batches: pl.DataFrame, count: int, root: str
) -> list[tuple[str, str, str]]:
    """Writes each shard's lines and batches under `root/shard-<digest>/`; returns the
    (lines, batches, result) URLs per shard. The digest is the inputs' content, so a shard
    staged again with the same rows lands on the same files."""
    staged = []
    for part, part_batches in shards_with_batches(lines, batches, count):
        data = _parquet_bytes(part), _parquet_bytes(part_batches)
        digest = hashlib.sha256(data[0] + b"\0" + data[1]).hexdigest()[:24]
        folder = _join(root, f"shard-{digest}")
        urls = (
            _join(folder, LINES_FILE),
            _join(folder, BATCHES_FILE),
            _join(folder, RESULT_FILE),
        )
        for url, content in zip(urls[:2], data, strict=True):
            if not _exists(url):
                _put(url, content)
        staged.append(urls)
    return staged


def allocate_on_dask(
    lines: pl.DataFrame,
    batches: pl.DataFrame,
    *,
    runner: Any,
    staging: str,
    run_id: str,
    shards: int | None = None,
    keep_staging: bool = False,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Allocates `lines` (orderid, sku, qty, arrival_seq) against `batches` as shard tasks on
    `runner` (a DaskTaskRunner, not yet started). `shards` defaults to one per worker thread of
    the cluster, more when shards would exceed SHARD_LINES lines. `progress(lines done, lines)`
    is called each time a shard's result is in."""
    if lines.is_empty():
        return allocate_lines(lines, batches)
    root = _join(staging, f"run-{run_id}")
    started = time.perf_counter()
    with runner:
        threads = sum(runner.client.nthreads().values())
        count = shards or max(threads, math.ceil(lines.height / SHARD_LINES), 1)
        staged = stage_shards(lines, batches, count, root)
        log.info(
            "Staged %d shard(s) of %d lines under %s in %.2fs; %d worker thread(s) on %s",
            len(staged),
            lines.height,
            root,
            time.perf_counter() - started,
            threads,
            runner.client.scheduler.address,
        )
        with _parent_without_parameters():
            futures = [
                runner.submit(
                    allocate_shard_task,
                    parameters={
                        "shard": f"{index + 1:03d}-of-{len(staged):03d}",
                        "lines_url": lines_url,
                        "batches_url": batches_url,
                        "result_url": result_url,
                    },
                )
                for index, (lines_url, batches_url, result_url) in enumerate(staged)
            ]
        shard_lines = {
            id(future): _lines_of(staged[index][0]) for index, future in enumerate(futures)
        }
        done = 0
        for future in as_completed(futures):
            future.result()  # raises the shard's error, if any
            done += shard_lines[id(future)]
            if progress is not None:
                progress(done, lines.height)
        results = [future.result() for future in futures]
    placed = pl.concat([read_parquet(url) for url in results], how="vertical")
    if not keep_staging:
        fs, path = url_to_fs(root)
        fs.rm(path, recursive=True)
    log.info(
        "Dask allocation of %d shard(s): %s",
        len(staged),
        rate(lines.height, time.perf_counter() - started),
    )
    return placed.sort("arrival_seq")


def _lines_of(lines_url: str) -> int:
    """A staged shard's line count, from its Parquet footer (no rows read)."""
    fs, path = url_to_fs(lines_url)
    with fs.open(path, "rb") as handle:
        return int(pq.ParquetFile(handle).metadata.num_rows)


def dask_allocator(
    params: RunParameters, run_id: str, progress: Progress | None = None
) -> Allocator:
    """The allocator `allocate_night` takes, running the shards on the configured cluster."""

    def allocate(lines: pl.DataFrame, batches: pl.DataFrame) -> pl.DataFrame:
        return allocate_on_dask(
            lines,
            batches,
            runner=task_runner_for(params),
            staging=staging_root(params),
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
