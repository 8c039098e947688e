"""`make bench`: the pipeline against the I/O floor, as whole processes, on generated inboxes.

    python -m benchmarks.run [--sizes 100k,1M] [--10m] [--30m] [--shapes zipf,uniform]
                             [--runners local,dask] [--repeat 2] [--workers 0]
                             [--dask-workers 2] [--publish] [--book 2.5k,5k,10k] [--no-write]
                             [--baseline WORKTREE] [--nights N]

For every size and generator shape (``benchmarks.generate``: Zipf-skewed or uniform): (a) the
I/O floor (``benchmarks.floor``: DuckDB's own CSV reader into a DuckDB file, one output row per
order line as CSV and Parquet) and (b) ``allocation run`` on the same inbox, a first night on an
empty warehouse, against a Prefect server started once beforehand (as a scheduled deployment
has it), once per task runner: ``local`` and ``dask`` (a temporary ``LocalCluster`` of
``--dask-workers`` workers started by the run, so its start-up is in the time). Once per run,
(c) Prefect's fixed cost: a flow of five no-op tasks (``benchmarks.trivial``) as a whole process
against the same server. Every process is timed by the kernel and its whole process tree's peak
RSS sampled (``benchmarks.process``); where the time went comes from the Prefect API
(``benchmarks.steps``).

The tables go to ``docs/benchmarks.md`` between the ``bench:start``/``bench:end`` markers (text
outside them is kept) and the plot of wall time and peak RSS against lines to
``docs/scaling.svg``. Timings are noisy on a shared machine: ``--repeat`` keeps the best run of
each. ``--publish`` adds the publish step alone, a normal night's byte copy against the one-time
conversion of a working state in the newest format (``benchmarks.publish``, needs the local
runner); ``--book`` the book's per-line loop against ours (``benchmarks.book``). Last, the
analysts' views and documented queries on a synthetic ``--views-nights`` warehouse (default
100 nights of 30,000 lines) and what a night pays for them (``benchmarks.analyst_views``;
``--views-nights 0`` skips it).
``--baseline WORKTREE`` runs another checkout's code beside ours, night for night;
``--nights N`` runs a sequence of nights on one warehouse instead (``benchmarks.nights``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import cast

import psutil

from benchmarks import analyst_views, book, nights
from benchmarks import publish as publish_bench
from benchmarks.generate import BUSINESS_DATE, SHAPES, STOCK_SHARE, Generated, Shape, generate
from benchmarks.process import BIN, REPO, Timed, prefect_server, timed
from benchmarks.report import (
    Fixed,
    Result,
    block,
    label,
    parse_size,
    plot,
    replace_block,
    runner_label,
    share,
)
from benchmarks.steps import Steps, log_rates, read_flow_run, steps_from_records
from benchmarks.trivial import FLOW_NAME as TRIVIAL_FLOW

DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "scaling.svg"
RUNNERS = ("local", "dask")
#: The night's flow, as the deployment names it (`nightly-allocation/nightly` in prefect.yaml).
PIPELINE_FLOW = "nightly-allocation"
TRIVIAL_TASKS = 5


def inbox_for(lines: int, work: Path, seed: int, shape: Shape) -> Generated:
    """The generated inbox, made once per work folder (its figures kept in the marker)."""
    inbox = work / f"inbox-{label(lines)}-{shape}-seed{seed}"
    marker = inbox / ".complete"
    with contextlib.suppress(OSError, ValueError):  # none yet, or an older harness's marker
        skus, hot = marker.read_text().split()
        return Generated(inbox, lines, int(skus), shape, float(hot))
    shutil.rmtree(inbox, ignore_errors=True)
    tick = time.perf_counter()
    made = generate(lines, inbox, seed, shape=shape)
    marker.write_text(f"{made.skus} {made.hot_share!r}\n")
    print(
        f"generated {label(lines)} {shape} lines in {time.perf_counter() - tick:.1f}s: "
        f"{made.skus:,} skus, hottest {share(made.hot_share)}",
        flush=True,
    )
    return made


def best(runs: list[Timed]) -> Timed:
    failed = [run for run in runs if run.code != 0]
    if failed:
        raise RuntimeError(f"a benchmark process failed:\n{failed[0].output[-3000:]}")
    return min(runs, key=lambda run: run.wall)


def steps_of(run: Timed, flow_name: str, api_url: str) -> Steps:
    """Where `run`'s time went, from the API; plus the log-derived rates, where it logs any."""
    flow = read_flow_run(api_url, flow_name, since=run.started)
    steps = steps_from_records(flow, run.started, run.ended)
    steps.rates = log_rates(run.output)
    return steps


def measure(
    inbox: Generated,
    runners: list[str],
    work: Path,
    env: dict[str, str],
    repeat: int,
    baseline: Path | None = None,
) -> list[Result]:
    """The floor and one `allocation run` per runner, `repeat` times in turn; the best of each.
    With `baseline` (a worktree of other code), each runner also runs that code, in turn with
    ours, as the runner `<runner>, baseline`."""
    api_url = env["PREFECT_API_URL"]
    name = f"{label(inbox.lines)}-{inbox.shape}"
    floors: list[Timed] = []
    variants = {runner: env for runner in runners}
    if baseline is not None:
        variants = {}
        for runner in runners:
            variants[f"{runner}, baseline"] = {**env, "PYTHONPATH": str(baseline.resolve())}
            variants[runner] = env
    pipelines: dict[str, list[tuple[Timed, Steps]]] = {variant: [] for variant in variants}
    for attempt in range(repeat):
        floors.append(
            timed(
                [
                    *(str(BIN / "python"), "-m", "benchmarks.floor"),
                    *("--inbox", str(inbox.path), "--work", str(work / f"floor-{name}")),
                ],
                env,
                work / f"floor-{name}-{attempt}.log",
            )
        )
        shutil.rmtree(work / f"floor-{name}", ignore_errors=True)
        best(floors[-1:])  # raises with the floor's output if it failed
        print(f"{name} floor: {floors[-1].wall:.2f}s, load {os.getloadavg()[0]:.1f}", flush=True)
        for variant, variant_env in variants.items():
            runner = variant.split(",")[0]
            site = work / f"site-{name}-{variant.replace(', ', '-')}"
            shutil.rmtree(site, ignore_errors=True)  # every attempt is the first night
            run = timed(
                [
                    *(str(BIN / "allocation"), "run", "--inbox", str(inbox.path)),
                    *("--warehouse", str(site / "warehouse.duckdb")),
                    *("--outbox", str(site / "out")),
                    *("--business-date", BUSINESS_DATE.isoformat()),
                    *("--task-runner", runner),
                ],
                variant_env,
                work / f"pipeline-{name}-{variant.replace(', ', '-')}-{attempt}.log",
            )
            best([run])  # raises with the run's output if it failed
            pipelines[variant].append((run, steps_of(run, PIPELINE_FLOW, api_url)))
            if variant != runner:
                shutil.rmtree(site, ignore_errors=True)
            cpu = nights.step_cpu(run, read_flow_run(api_url, PIPELINE_FLOW, since=run.started))
            print(
                f"{name} pipeline ({variant}) CPU seconds by step: "
                + ", ".join(f"{step} {seconds:.2f}" for step, seconds in cpu.items()),
                flush=True,
            )
            print(
                f"{name} pipeline ({variant}): {run.wall:.2f}s, CPU {run.cpu:.2f}s, tree peak "
                f"{run.tree_rss_mb:,.0f} MiB over {run.tree_procs} processes, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    floor = best(floors)
    results = []
    for runner in variants:
        pipeline, steps = min(pipelines[runner], key=lambda pair: pair[0].wall)
        results.append(
            Result(
                inbox.lines,
                inbox.shape,
                inbox.skus,
                inbox.hot_share,
                runner,
                floor,
                pipeline,
                steps,
            )
        )
    return results


def measure_fixed(work: Path, env: dict[str, str], repeat: int) -> Fixed:
    """Prefect's fixed cost: the trivial flow, `repeat` times; the best."""
    runs = []
    for attempt in range(repeat):
        run = timed(
            [
                *(str(BIN / "python"), "-m", "benchmarks.trivial"),
                *("--tasks", str(TRIVIAL_TASKS)),
            ],
            env,
            work / f"trivial-{attempt}.log",
        )
        best([run])
        runs.append((run, steps_of(run, TRIVIAL_FLOW, env["PREFECT_API_URL"])))
        print(f"trivial flow: {run.wall:.2f}s", flush=True)
    run, steps = min(runs, key=lambda pair: pair[0].wall)
    return Fixed(run, steps, TRIVIAL_TASKS)


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for row in Path("/proc/cpuinfo").read_text().splitlines():
            if row.startswith("model name"):
                model = row.split(":", 1)[1].strip()
                break
    memory = psutil.virtual_memory().total / 2**30
    import duckdb
    import pandera
    import polars
    import prefect

    return [
        f"- CPU: {model}, `nproc` = {os.cpu_count()}; memory {memory:.1f} GiB; "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, prefect {prefect.__version__}, "
        f"duckdb {duckdb.__version__}, polars {polars.__version__}, "
        f"pandera {pandera.__version__}",
        f"- load average when the run started: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}"
        " (other work shares this machine: best of the repeats is kept)",
    ]


def split(text: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def bench_settings(args: argparse.Namespace) -> dict[str, str]:
    """The `ALLOCATION_*` settings of every measured night, first nights and sequences alike."""
    return {
        "ALLOCATION_WORKERS": args.workers,
        "ALLOCATION_DASK_WORKERS": str(args.dask_workers),
        # The generated inbox is complete once written: read it at once, not 5 minutes later
        # (without this a sequence of nights read nothing at all and timed empty nights).
        "ALLOCATION_INBOX_SETTLE_SECONDS": "0",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1M", help="order lines per night, e.g. 100k,1M")
    parser.add_argument("--10m", dest="ten_m", action="store_true", help="add 10M (minutes)")
    parser.add_argument("--30m", dest="thirty_m", action="store_true", help="add 30M (longer)")
    parser.add_argument(
        "--shapes", default=",".join(SHAPES), help="generator shapes: zipf, uniform or both"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per size; the best is kept")
    parser.add_argument(
        "--runners",
        default=",".join(RUNNERS),
        help="task runners to measure each size with: local, dask or both (default local,dask)",
    )
    parser.add_argument("--workers", default="0", help="ALLOCATION_WORKERS (0 = one per core)")
    parser.add_argument(
        "--dask-workers", type=int, default=2, help="workers of the temporary Dask cluster"
    )
    parser.add_argument("--publish", action="store_true", help="add the publish step alone")
    parser.add_argument("--book", default="", help="sizes for the book's loop, e.g. 2.5k,5k")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--no-write", action="store_true", help="print, touch no doc")
    parser.add_argument(
        "--nights",
        type=int,
        default=0,
        help="instead: a sequence of N nights on one warehouse (first size and shape)",
    )
    parser.add_argument(
        "--restock",
        type=float,
        default=1.0,
        help="with --nights: the share of skus each later night restocks (default 1: every sku)",
    )
    parser.add_argument(
        "--stock",
        type=float,
        default=STOCK_SHARE,
        help="with --nights: the share of a night's demand its batches hold (default 0.9: the "
        "backlog grows by a tenth of a night a night; 1.0 holds it about steady)",
    )
    parser.add_argument(
        "--views-nights",
        type=int,
        default=100,
        help="nights of the analysts' views' synthetic warehouse (0: skip the views)",
    )
    parser.add_argument(
        "--views-lines", type=int, default=30_000, help="new order lines a night there"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a worktree of other code, run beside ours in turn (PYTHONPATH)",
    )
    args = parser.parse_args(argv)

    sizes = [parse_size(s) for s in split(args.sizes)]
    sizes += [10_000_000] * args.ten_m + [30_000_000] * args.thirty_m
    sizes = sorted(set(sizes))
    runners = split(args.runners)
    if set(runners) - set(RUNNERS) or not runners:
        parser.error(f"--runners takes {' and/or '.join(RUNNERS)}, not {args.runners!r}")
    shapes = split(args.shapes)
    if set(shapes) - set(SHAPES) or not shapes:
        parser.error(f"--shapes takes {' and/or '.join(SHAPES)}, not {args.shapes!r}")
    if args.dask_workers < 1 or args.repeat < 1:
        parser.error("--dask-workers and --repeat must be 1 or more")
    if args.publish and "local" not in runners:
        parser.error("--publish measures the local runner's working state: add it to --runners")
    if not 0 < args.restock <= 1:
        parser.error(f"--restock is a share of the skus, above 0 and at most 1, not {args.restock}")
    if args.stock <= 0:
        parser.error(f"--stock is a share of the demand, above 0, not {args.stock}")
    if args.baseline is not None and not (args.baseline / "allocation").is_dir():
        parser.error(f"--baseline {args.baseline}: no allocation package there")
    work = args.work or Path(tempfile.mkdtemp(prefix="allocation-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.nights:
        try:
            with prefect_server(work) as server_env:
                run_env = {**server_env, **bench_settings(args)}
                for name in ("ALLOCATION_TASK_RUNNER", "ALLOCATION_DASK_ADDRESS"):
                    run_env.pop(name, None)
                found = nights.run_nights(
                    args.nights,
                    sizes[0],
                    cast(Shape, shapes[0]),
                    work,
                    run_env,
                    args.seed,
                    args.baseline,
                    args.restock,
                    args.stock,
                )
            print("\n".join(nights.table(found, sizes[0], shapes[0])))
        finally:
            if not args.keep and args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        return
    info = machine()
    settings = bench_settings(args)
    started = dt.datetime.now(dt.UTC)
    extra: list[str] = []
    try:
        results: list[Result] = []
        published: list[publish_bench.Published] = []
        with prefect_server(work) as server_env:
            run_env = {**server_env, **settings}
            for name in ("ALLOCATION_TASK_RUNNER", "ALLOCATION_DASK_ADDRESS", "ALLOCATION_STAGING"):
                run_env.pop(name, None)  # runner chosen per run; Dask: a temporary cluster
            fixed = measure_fixed(work, run_env, args.repeat)
            for lines in sizes:
                for shape in shapes:
                    inbox = inbox_for(lines, work, args.seed, cast(Shape, shape))
                    results += measure(inbox, runners, work, run_env, args.repeat, args.baseline)
                    name = f"{label(lines)}-{shape}"
                    if args.publish and shape == shapes[0]:  # the publish step alone, same state
                        state = work / f"site-{name}-local" / ".warehouse.duckdb.pipeline"
                        published += publish_bench.measure(
                            lines, state / "state.duckdb", work, run_env, args.repeat, timed
                        )
                    for runner in runners:  # a 30M night's warehouse is gigabytes
                        shutil.rmtree(work / f"site-{name}-{runner}", ignore_errors=True)
        if published:
            extra += publish_bench.table(published, label)
        if args.book:
            extra += book.table(book.growth([parse_size(s) for s in split(args.book)], args.seed))
        if args.views_nights:
            # The views on a warehouse of many nights, and what a night pays for them.
            what, timings = analyst_views.measure(args.views_nights, args.views_lines, args.repeat)
            extra += ["", *analyst_views.table(what, timings)]
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    setting = [f"`ALLOCATION_WORKERS={args.workers}`"] if "local" in runners else []
    if "dask" in runners:
        setting.append(
            f"{runner_label('dask', args.dask_workers)}: `--task-runner dask` on a temporary "
            "`LocalCluster` started by the run, start-up included"
        )
    heading = (
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `python -m benchmarks.run` (best of "
        f"{args.repeat}; shapes {', '.join(shapes)}; runners {', '.join(runners)}; "
        f"{'; '.join(setting)}). Peak RSS counts the whole process tree (the run and every "
        "process below it, sampled every 0.1 s); plot: [scaling.svg](scaling.svg)."
    )
    table = block(results, fixed, heading, info, args.dask_workers, extra)
    print(table)
    if not args.no_write:
        text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
        DOC.write_text(replace_block(text, table), encoding="utf-8")
        PLOT.write_text(plot(results, args.dask_workers, started), encoding="utf-8")
        print(f"wrote {DOC.relative_to(REPO)} and {PLOT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
