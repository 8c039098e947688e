"""Issue 9: the same nights through the Dask task runner, on a real `distributed.LocalCluster`
with two worker processes, give the local runner's results row for row: every report and every
warehouse table. The shard tasks are Prefect task runs of the night's flow run, and only file
paths (not frames) go through the scheduler."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import polars as pl
import pytest
from prefect import flow, get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.context import serialize_context
from prefect.states import State

from allocation.flows.nightly import nightly_allocation
from allocation.flows.sharding import (
    _parent_without_parameters,
    allocate_on_dask,
    shard_exchange_root,
    task_runner_for,
)
from allocation.settings import RunParameters
from benchmarks.frame_allocation import BATCH_FRAME_SCHEMA as BATCH_SCHEMA
from benchmarks.frame_allocation import FrameCandidates, allocate_lines
from conftest import Site

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]

NIGHTS = ("2026-11-25", "2026-11-26")
VOLATILE = {"run_id", "runs", "outbox_folder", "warehouse"}  # and every name ending in _at


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """A real two-process cluster on loopback, shut down after this module's tests."""
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


# -- two nights of data with out-of-stock lines, backorders, rejects and manifest changes ------
SKUS = [f"SKU-{n:03d}" for n in range(120)]


def first_night(site: Site, rng: random.Random) -> None:
    weights = [1.0 / (k + 1) for k in range(len(SKUS))]
    picks = rng.choices(SKUS, weights=weights, k=3000)
    rows = [f"O1-{n:05d},{sku},{rng.randint(1, 10)}" for n, sku in enumerate(picks)]
    # (not a missing sku beside these: pandera's failure cases then panic polars in validation)
    rows += [rows[10], rows[20], "O1-BAD-1,SKU-001,many", "O1-BAD-2,SKU-002,-4", "O1-BAD-3,SKU-3,0"]
    site.orders("2026-11-25.csv", *rows)
    demand: dict[str, int] = {}
    for sku in picks:
        demand[sku] = demand.get(sku, 0) + 5
    batches = []
    for index, sku in enumerate(SKUS[:110]):  # the last ten skus have no stock at all
        stock = max(1, int(demand.get(sku, 10) * 0.8))
        count = rng.randint(1, 3)
        days = sorted(rng.sample(range(1, 60), count))
        for j in range(count):
            eta = "" if j == 0 and index % 2 else (dt.date(2026, 11, 25) + dt.timedelta(days[j]))
            batches.append(f"B-{index:03d}-{j},{sku},{stock // count + (j == 0)},{eta}")
    batches.append("B-BAD-1,SKU-003,lots,")
    site.batches("2026-11-25.csv", *batches)


def second_night(site: Site, rng: random.Random) -> None:
    site.clear_inbox()
    picks = rng.choices(SKUS, k=1500)
    site.orders(
        "2026-11-26.csv", *[f"O2-{n:05d},{sku},{rng.randint(1, 10)}" for n, sku in enumerate(picks)]
    )
    batches = [f"N-{n:03d},{sku},{rng.randint(20, 200)}," for n, sku in enumerate(SKUS[::3])]
    batches += [
        "B-000-0,SKU-000,5,2026-12-24",  # a known batch shrinks and moves: lines come back
        "B-004-0,SKU-004,1000,2026-12-01",  # a known batch grows
    ]
    site.batches("2026-11-26.csv", *batches)


# -- helpers ----------------------------------------------------------------------------------
def run_flow(site: Site, day: str, **overrides: Any) -> State[Any]:
    state: State[Any] = nightly_allocation(
        inbox=str(site.inbox),
        warehouse=str(site.warehouse),
        outbox=str(site.outbox),
        business_date=day,
        return_state=True,
        **overrides,
    )
    assert state.is_completed(), state.message
    return state


def task_runs_of(state: State[Any]) -> list[TaskRun]:
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )


def stable(frame: pl.DataFrame) -> pl.DataFrame:
    """Without run ids and timestamps, sorted by every column."""
    kept = [c for c in frame.columns if c not in VOLATILE and not c.endswith("_at")]
    return frame.select(kept).sort(kept, nulls_last=True)


def stable_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: stable_json(v)
            for k, v in value.items()
            if k not in VOLATILE and not k.endswith("_at")
        }
    if isinstance(value, list):
        return [stable_json(v) for v in value]
    return value


def reports(site: Site, day: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted((site.outbox / day).iterdir()):
        if path.suffix == ".parquet":
            found[path.name] = stable(pl.read_parquet(path))
        elif path.suffix == ".json":
            found[path.name] = stable_json(json.loads(path.read_text(encoding="utf-8")))
        elif path.suffix == ".csv" and not path.with_suffix(".parquet").exists():
            found[path.name] = stable(pl.read_csv(path, infer_schema=False))
    return found


def tables(site: Site) -> dict[str, pl.DataFrame]:
    con = duckdb.connect(str(site.warehouse), read_only=True)
    try:
        names = [row[0] for row in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {name: stable(con.sql(f'SELECT * FROM "{name}"').pl()) for name in names}  # noqa: S608
    finally:
        con.close()


def assert_same_frames(local: dict[str, Any], dask: dict[str, Any]) -> None:
    assert local.keys() == dask.keys()
    for name, expected in local.items():
        if isinstance(expected, pl.DataFrame):
            assert expected.schema == dask[name].schema, name
            assert expected.to_dicts() == dask[name].to_dicts(), name
        else:
            assert expected == dask[name], name


# -- tests ------------------------------------------------------------------------------------
def test_two_nights_on_dask_match_the_local_runner_row_for_row(
    tmp_path: Path, dask_address: str
) -> None:
    local, dask = Site(tmp_path / "local"), Site(tmp_path / "dask")
    for site in (local, dask):
        first_night(site, random.Random(9))
    local_states = [run_flow(local, NIGHTS[0])]
    dask_states = [run_flow(dask, NIGHTS[0], task_runner="dask", dask_address=dask_address)]
    for site in (local, dask):
        second_night(site, random.Random(10))
    local_states.append(run_flow(local, NIGHTS[1]))
    dask_states.append(run_flow(dask, NIGHTS[1], task_runner="dask", dask_address=dask_address))

    first = local_states[0].result()
    assert first["allocated"] > 1000 and first["out_of_stock"] > 100
    assert first["orders"]["rejected"] >= 3 and first["orders"]["duplicate"] >= 2
    second = local_states[1].result()
    assert second["allocated"] > 300  # new stock fills some of the first night's backorders
    assert (
        local.query(
            "SELECT count(*) FROM allocations a JOIN order_lines l USING (orderid, sku) "
            "WHERE a.business_date = ? AND l.first_seen = ?",
            [NIGHTS[1], NIGHTS[0]],
        )[0][0]
        > 0
    ), "no backorder of the first night was allocated on the second"

    for day in NIGHTS:
        assert_same_frames(reports(local, day), reports(dask, day))
    assert_same_frames(tables(local), tables(dask))

    for state in dask_states:
        runs = task_runs_of(state)
        allocate = [
            run for run in runs if run.name.startswith("allocate-") and "shard" not in run.name
        ]
        shards = [run for run in runs if run.name.startswith("allocate-shard-")]
        assert len(allocate) == 1 and len(shards) >= 2, [run.name for run in runs]
        for shard in shards:
            assert shard.state_name == "Completed"
            assert shard.flow_run_id == state.state_details.flow_run_id
            parents = shard.task_inputs.get("__parents__", [])
            assert [getattr(p, "id", None) for p in parents] == [allocate[0].id]
    for state in local_states:
        assert not [run for run in task_runs_of(state) if "shard" in run.name]
    params = dask.params(NIGHTS[1])
    assert not list(Path(shard_exchange_root(params)).glob("run-*")), (
        "shard exchange not cleaned up"
    )


def dask_params(tmp_path: Path, dask_address: str) -> RunParameters:
    """A night's parameters for the Dask runner on the test's cluster."""
    return RunParameters.build(
        warehouse=tmp_path / "w.duckdb",
        business_date="2026-11-25",
        task_runner="dask",
        dask_address=dask_address,
    )


@pytest.mark.filterwarnings("ignore:Logger 'allocation' attempted to send logs:UserWarning")
def test_the_dask_allocator_is_pure_and_matches_allocate_lines(
    tmp_path: Path, dask_address: str
) -> None:
    rng = random.Random(3)
    skus = [f"S{n}" for n in range(50)]
    lines = pl.DataFrame(
        {
            "orderid": [f"o{n}" for n in range(4000)],
            "sku": [rng.choice(skus) for _ in range(4000)],
            "qty": [rng.randint(1, 9) for _ in range(4000)],
            "arrival_seq": pl.Series(rng.sample(range(10_000), 4000), dtype=pl.Int64),
        }
    )
    batches = pl.DataFrame(
        [
            (f"b{sku}-{j}", sku, None if j == 0 else dt.date(2026, 12, j), rng.randint(5, 400), 0)
            for sku in skus[:45]
            for j in range(rng.randint(1, 3))
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    params = dask_params(tmp_path, dask_address)

    reported: list[tuple[int, int]] = []

    def run() -> pl.DataFrame:
        reported.clear()
        candidates = FrameCandidates(lines, batches)
        allocate_on_dask(
            candidates,
            runner=task_runner_for(params),
            exchange=shard_exchange_root(params),
            run_id="pure",
            keep_exchange=True,
            progress=lambda done, total: reported.append((done, total)),
            chunk_lines=600,  # 7 chunks of skus
        )
        numbered = candidates.batches().select(
            pl.col("__batch").alias("batch"), pl.col("reference").alias("batchref"), "eta"
        )
        placed = pl.concat(candidates.placed).join(numbered, on="batch")
        return lines.sort("arrival_seq").join(
            placed.select("arrival_seq", "batchref", "eta"), on="arrival_seq", how="left"
        )

    expected = allocate_lines(lines, batches)
    placed = run()
    # Progress as each chunk's result comes in: one report per chunk, up to every line.
    assert len(reported) == 7 and reported[-1] == (4000, 4000)
    assert [done for done, _ in reported] == sorted({done for done, _ in reported})
    assert placed.columns == expected.columns
    assert placed.to_dicts() == expected.to_dicts()
    results = sorted(Path(shard_exchange_root(params)).glob("run-pure/shard-*/placed.parquet"))
    assert len(results) == 7
    before = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in results}
    assert run().to_dicts() == expected.to_dicts()  # the same inputs land on the same files
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in results} == before


@pytest.mark.filterwarnings("ignore:Logger 'allocation' attempted to send logs:UserWarning")
def test_a_hot_sku_bigger_than_a_chunk_is_allocated_in_pieces_beside_the_shards(
    tmp_path: Path, dask_address: str
) -> None:
    rng = random.Random(4)
    skus = ["HOT-LAMP"] * 30 + [f"S{n}" for n in range(30)]
    picks = [rng.choice(skus) for _ in range(3000)]
    lines = pl.DataFrame(
        {
            "orderid": [f"o{n}" for n in range(3000)],
            "sku": picks,
            "qty": [rng.randint(1, 4) for _ in range(3000)],
            "arrival_seq": pl.Series(rng.sample(range(10_000), 3000), dtype=pl.Int64),
        }
    )
    batches = pl.DataFrame(
        [
            ("lamp-stock", "HOT-LAMP", None, 500, 120),
            ("lamp-dec", "HOT-LAMP", dt.date(2026, 12, 3), 700, 0),
            ("lamp-jan", "HOT-LAMP", dt.date(2027, 1, 9), 900, 50),
            *[(f"b{n}", f"S{n}", None, rng.randint(0, 80), 0) for n in range(30)],
        ],
        schema=BATCH_SCHEMA,
        orient="row",
    )
    params = dask_params(tmp_path, dask_address)
    candidates = FrameCandidates(lines, batches)

    allocate_on_dask(
        candidates,
        runner=task_runner_for(params),
        exchange=shard_exchange_root(params),
        run_id="hot",
        keep_exchange=True,
        chunk_lines=100,  # the lamp's ~1500 lines: 15 pieces in this process
    )

    numbered = candidates.batches().select(
        pl.col("__batch").alias("batch"), pl.col("reference").alias("batchref"), "eta"
    )
    placed = pl.concat(candidates.placed).join(numbered, on="batch")
    got = lines.sort("arrival_seq").join(
        placed.select("arrival_seq", "batchref", "eta"), on="arrival_seq", how="left"
    )
    expected = allocate_lines(lines, batches)
    assert got.to_dicts() == expected.to_dicts()
    lamp = expected.filter(pl.col("sku") == "HOT-LAMP")
    assert lamp["batchref"].n_unique() == 4  # three batches used up, then out of stock
    staged = list(Path(shard_exchange_root(params)).glob("run-hot/shard-*/lines.parquet"))
    assert staged and all("HOT-LAMP" not in pl.read_parquet(path)["sku"] for path in staged)


@task(cache_policy=NO_CACHE, persist_result=False)
def _heavy_parent(frame: pl.DataFrame) -> dict[str, Any]:
    with _parent_without_parameters():
        return serialize_context()["task_run_context"]  # type: ignore[no-any-return]


@flow
def _parent_flow() -> dict[str, Any]:
    return _heavy_parent(pl.DataFrame({"x": range(100_000)}))


def test_shard_tasks_do_not_ship_the_parent_tasks_frames() -> None:
    context = _parent_flow()
    assert context["parameters"] == {}
    assert isinstance(context["task_run"]["id"], UUID)  # the parent link stays


def test_a_night_whose_open_lines_are_all_one_sku_commits_on_dask(
    tmp_path: Path, dask_address: str
) -> None:
    """Issue 23 item 7: every line of one sku is one hot chunk, allocated in this process in
    pieces: no shard is exchanged, and the run's exchange folder (never created) is no reason to
    fail the night."""
    local, dask = Site(tmp_path / "local"), Site(tmp_path / "dask")
    for site in (local, dask):
        site.batches("m1.csv", "B-LAMP-1,LAMP,30,", "B-LAMP-2,LAMP,50,2026-12-01")
        site.orders("o1.csv", *[f"o{n},LAMP,{1 + n % 4}" for n in range(40)])
    done = run_flow(dask, NIGHTS[0], task_runner="dask", dask_address=dask_address).result()
    expected = run_flow(local, NIGHTS[0]).result()
    assert done["allocated"] == expected["allocated"] > 0
    assert_same_frames(reports(local, NIGHTS[0]), reports(dask, NIGHTS[0]))
    assert_same_frames(tables(local), tables(dask))
    assert not list(Path(shard_exchange_root(dask.params(NIGHTS[0]))).glob("run-*"))
