"""`make bench`: the pipeline against the I/O floor, as whole processes, on generated inboxes.

    python -m benchmarks.run [--sizes 100k,1M] [--10m] [--runners local,dask] [--repeat 2]
                             [--workers 0] [--dask-workers 2] [--no-write]

For every size: (a) the I/O floor (``benchmarks.floor``: DuckDB's own CSV reader into a DuckDB
file, one output row per order line as CSV and Parquet) and (b) ``allocation run`` on the same
inbox against a Prefect server started once beforehand (as a scheduled deployment has it), once
per task runner: ``local`` (allocation in the run's process and ``ALLOCATION_WORKERS`` processes)
and ``dask`` (``--task-runner dask`` without an address: the run starts a temporary
``LocalCluster`` of ``--dask-workers`` worker processes itself, so its start-up is in the time).
Each is a fresh process timed by the kernel (``os.wait4``: wall time, peak RSS of the largest
process); a sampler adds the peak RSS of the whole process tree (allocation workers and Dask
workers included: the cluster's nannies run in the run's process and spawn the workers as its
children). Time per step comes from the run's own log; after the local run, the publish step alone
is timed on its working state before and after issue 14 (``benchmarks.publish``). Then (c) the
book's per-line loop against ours at 2.5k-10k lines.

The table goes to ``docs/benchmarks.md`` between the ``bench:start``/``bench:end`` markers, with
the machine it ran on; text outside the markers is kept. Timings are noisy on a shared machine:
``--repeat`` keeps the best run of each.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from allocation import TELEMETRY_OFF
from benchmarks import book
from benchmarks import publish as publish_bench
from benchmarks.generate import BUSINESS_DATE, generate, sku_count

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
STEPS = ("check-already-ingested", "load", "allocate", "write-reports", "publish")
RUNNERS = ("local", "dask")


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    return int(float(number) * scale)


def label(lines: int) -> str:
    if lines >= 1_000_000 and lines % 1_000_000 == 0:
        return f"{lines // 1_000_000}M"
    if lines >= 1_000 and lines % 100 == 0:
        return f"{lines / 1_000:g}k"
    return str(lines)


# -- processes -------------------------------------------------------------------------------
@dataclass
class Timed:
    wall: float
    cpu: float  # user + system seconds of the process and the children it waited for
    max_rss_mb: float  # largest single process (kernel accounting, children included as max)
    tree_rss_mb: float  # sampled sum over the process tree (workers included)
    tree_procs: int  # most processes seen in the tree at one sample (the run's own included)
    output: str
    started: dt.datetime
    code: int


def timed(command: list[str], env: dict[str, str], log: Path) -> Timed:
    """Runs `command` as a child, waits for it with `os.wait4` and samples its tree's RSS."""
    started = dt.datetime.now()
    tick = time.perf_counter()
    with log.open("w") as out:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        peak, procs = [0], [0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.1):
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(child.pid)
                    total, seen = root.memory_info().rss, 1
                    for proc in root.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            total += proc.memory_info().rss
                            seen += 1
                    peak[0] = max(peak[0], total)
                    procs[0] = max(procs[0], seen)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - tick
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
    return Timed(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        tree_rss_mb=max(peak[0], usage.ru_maxrss * 1024) / 2**20,
        tree_procs=procs[0],
        output=log.read_text(errors="replace"),
        started=started,
        code=child.returncode,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def prefect_server(work: Path) -> Iterator[dict[str, str]]:
    """A Prefect server on loopback with its own PREFECT_HOME; yields the env for its clients."""
    home = work / "prefect-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    port = free_port()
    env = {**os.environ, **TELEMETRY_OFF, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    log = (work / "prefect-server.log").open("w")
    server = subprocess.Popen(
        [
            *(str(BIN / "prefect"), "server", "start", "--analytics-off"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as one below
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited: see {work / 'prefect-server.log'}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{api}/health", timeout=2) as reply,
            ):
                if reply.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server not healthy after 180 s")
            time.sleep(0.5)
        print(f"prefect server healthy at {api}", flush=True)
        yield {**env, "PREFECT_API_URL": api}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


# -- the pipeline's own log ------------------------------------------------------------------
_STAMP = r"^(\d\d:\d\d:\d\d\.\d{3}) \| \w+\s+\| "
_FINISHED = re.compile(_STAMP + r"Task run '([a-z-]+)-[0-9a-f]+' - Finished in state (\w+)", re.M)
_FLOW_BEGIN = re.compile(_STAMP + r"Flow run .* - Beginning flow run", re.M)
_FLOW_END = re.compile(_STAMP + r"Flow run .* - Finished in state", re.M)
_RATE = re.compile(
    r"allocation - (Loaded|Validated|Allocated) (?:\d+ file\(s\): )?(?:orders )?([\d,]+) rows "
    r"in ([\d.]+)s"
)


@dataclass
class Steps:
    seconds: dict[str, float] = field(default_factory=dict)  # task -> duration
    rates: dict[str, float] = field(default_factory=dict)  # Loaded/Validated/Allocated -> s
    startup: float = 0.0  # process start -> flow run begins (imports, API)
    teardown: float = 0.0  # flow run finished -> process exit


def _clock(text: str, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(text))


def parse_steps(run: Timed) -> Steps:
    steps = Steps()
    day = run.started.date()
    begin = _FLOW_BEGIN.search(run.output)
    end = _FLOW_END.search(run.output)
    if not begin or not end:
        return steps
    previous = _clock(begin.group(1), day)
    steps.startup = (previous - run.started).total_seconds()
    for match in _FINISHED.finditer(run.output):
        at = _clock(match.group(1), day)
        steps.seconds[match.group(2)] = (at - previous).total_seconds()
        previous = at
    finished = _clock(end.group(1), day)
    steps.seconds["flow wrap-up"] = (finished - previous).total_seconds()
    steps.teardown = run.wall - (finished - run.started).total_seconds()
    for kind, _, seconds in _RATE.findall(run.output):
        steps.rates[kind] = float(seconds)
    return steps


# -- one size --------------------------------------------------------------------------------
@dataclass
class Result:
    lines: int
    runner: str
    floor: Timed
    pipeline: Timed
    steps: Steps


def inbox_for(lines: int, work: Path, seed: int, skus: int | None = None) -> Path:
    inbox = work / (f"inbox-{label(lines)}-seed{seed}" + (f"-skus{skus}" if skus else ""))
    marker = inbox / ".complete"
    if not marker.exists():
        shutil.rmtree(inbox, ignore_errors=True)
        tick = time.perf_counter()
        generate(lines, inbox, seed, skus)
        marker.write_text("ok\n")
        print(f"generated {label(lines)} lines in {time.perf_counter() - tick:.1f}s", flush=True)
    return inbox


def best(runs: list[Timed]) -> Timed:
    failed = [run for run in runs if run.code != 0]
    if failed:
        raise RuntimeError(f"a benchmark process failed:\n{failed[0].output[-3000:]}")
    return min(runs, key=lambda run: run.wall)


def measure(
    lines: int, runners: list[str], work: Path, env: dict[str, str], repeat: int, seed: int
) -> list[Result]:
    """The floor and one `allocation run` per runner, `repeat` times in turn; the best of each."""
    inbox = inbox_for(lines, work, seed)
    floors: list[Timed] = []
    pipelines: dict[str, list[Timed]] = {runner: [] for runner in runners}
    for attempt in range(repeat):
        out = work / f"floor-{label(lines)}"
        floors.append(
            timed(
                [
                    *(str(BIN / "python"), "-m", "benchmarks.floor"),
                    *("--inbox", str(inbox), "--work", str(out)),
                ],
                env,
                work / f"floor-{label(lines)}-{attempt}.log",
            )
        )
        print(
            f"{label(lines)} floor: {floors[-1].wall:.2f}s, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for runner in runners:
            site = work / f"site-{label(lines)}-{runner}"
            shutil.rmtree(site, ignore_errors=True)  # every attempt is the first night
            run = timed(
                [
                    *(str(BIN / "allocation"), "run", "--inbox", str(inbox)),
                    *("--warehouse", str(site / "warehouse.duckdb")),
                    *("--outbox", str(site / "out")),
                    *("--business-date", BUSINESS_DATE.isoformat()),
                    *("--task-runner", runner),
                ],
                env,
                work / f"pipeline-{label(lines)}-{runner}-{attempt}.log",
            )
            pipelines[runner].append(run)
            print(
                f"{label(lines)} pipeline ({runner}): {run.wall:.2f}s, tree peak "
                f"{run.tree_rss_mb:,.0f} MiB over {run.tree_procs} processes, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if run.code != 0:
                best([run])  # raises with the run's output
    floor = best(floors)
    results = []
    for runner in runners:
        pipeline = best(pipelines[runner])
        results.append(Result(lines, runner, floor, pipeline, parse_steps(pipeline)))
    return results


# -- the book's loop -------------------------------------------------------------------------
BOOK_LINES_PER_SKU = 25


def book_growth(sizes: list[int], work: Path, seed: int) -> list[tuple[int, float, float]]:
    """(lines, book seconds, ours seconds) in this process, on generated inboxes with one sku per
    25 lines: the catalogue grows with the night, as the batches the book's service lists do."""
    import polars as pl

    from allocation.allocator import allocate_lines

    rows = []
    for lines in sizes:
        inbox = inbox_for(lines, work, seed, max(1, lines // BOOK_LINES_PER_SKU))
        orders = pl.read_csv(sorted((inbox / "orders").glob("*.csv")), infer_schema=False)
        orders = orders.with_columns(pl.col("qty").cast(pl.Int64))
        manifest = pl.read_csv(sorted((inbox / "batches").glob("*.csv")), infer_schema=False)
        manifest = manifest.with_columns(pl.col("qty").cast(pl.Int64), pl.col("eta").str.to_date())
        tick = time.perf_counter()
        book.allocate_all(orders.rows(), manifest.rows())
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
        print(f"book {label(lines)}: {book_seconds:.2f}s, ours {ours:.3f}s", flush=True)
        rows.append((lines, book_seconds, ours))
    return rows


# -- the report ------------------------------------------------------------------------------
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


def runner_label(runner: str, dask_workers: int) -> str:
    return f"dask ({dask_workers} workers)" if runner == "dask" else runner


def report(
    results: list[Result],
    growth: list[tuple[int, float, float]],
    workers: str,
    repeat: int,
    info: list[str],
    dask_workers: int = 2,
    published: list[publish_bench.Published] | None = None,
) -> str:
    runners = list(dict.fromkeys(r.runner for r in results))
    setting = [f"`ALLOCATION_WORKERS={workers}`"] if "local" in runners else []
    if "dask" in runners:
        setting.append(
            f"dask: `--task-runner dask` on a temporary {dask_workers}-worker `LocalCluster` "
            "started by the run, start-up included"
        )
    out = [
        START,
        f"Measured {dt.datetime.now():%Y-%m-%d %H:%M} with `python -m benchmarks.run` "
        f"(best of {repeat}; runners {', '.join(runners) or '–'}; {'; '.join(setting)}).",
        "",
        *info,
        "",
        "| lines | runner | skus | floor wall (CPU) | floor RSS | pipeline wall (CPU) | pipeline RSS "
        "(largest process / whole tree) | pipeline ÷ floor, wall (CPU) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        out.append(
            f"| {label(r.lines)} | {runner_label(r.runner, dask_workers)} | "
            f"{sku_count(r.lines):,} | {r.floor.wall:.2f} s "
            f"({r.floor.cpu:.2f} s) | {r.floor.max_rss_mb:,.0f} MiB | {r.pipeline.wall:.2f} s "
            f"({r.pipeline.cpu:.2f} s) | {r.pipeline.max_rss_mb:,.0f} MiB / "
            f"{r.pipeline.tree_rss_mb:,.0f} MiB | **{r.pipeline.wall / r.floor.wall:.1f}×** "
            f"({r.pipeline.cpu / r.floor.cpu:.1f}×) |"
        )
    out += [
        "",
        "Time per step of the pipeline run, from its own log (Prefect task end to task end; "
        "*start-up* is process start to the flow run's first log line: imports, settings, API "
        "calls; the rates are the `allocation` log lines; for the Dask runner *domain allocate* "
        "is the whole cluster round trip: cluster start-up, staging, shard tasks, reading back):",
        "",
        "| lines | runner | start-up | " + " | ".join(STEPS) + " | flow wrap-up + exit | "
        "read rows | validate rows | domain allocate |",
        "|---:|---|" + "---:|" * (len(STEPS) + 5),
    ]
    for r in results:
        s = r.steps
        cells = [f"{s.seconds.get(step, float('nan')):.2f}" for step in STEPS]
        wrap = s.seconds.get("flow wrap-up", float("nan")) + s.teardown

        def rate(kind: str, r: Result = r) -> str:
            seconds = r.steps.rates.get(kind)
            if not seconds:
                return "–"
            return f"{seconds:.2f} s ({r.lines / seconds / 1e6:.2f} M/s)"

        out.append(
            f"| {label(r.lines)} | {runner_label(r.runner, dask_workers)} | {s.startup:.2f} | "
            + " | ".join(cells)
            + f" | {wrap:.2f} | "
            f"{rate('Loaded')} | {rate('Validated')} | {rate('Allocated')} |"
        )
    if published:
        out += publish_bench.table(published, label)
    if growth:
        out += [
            "",
            "The book's per-line loop (re-sorts every batch and re-sums every batch's allocations"
            " on each call; `benchmarks/book.py`) against ours (`allocate_lines`, one process), "
            f"same generated lines (one sku per {BOOK_LINES_PER_SKU} lines, 1–4 batches each), "
            "in-process:",
            "",
            "| lines | skus | book | ours | book ÷ ours | book per line | ours per line |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for lines, slow, fast in growth:
            out.append(
                f"| {label(lines)} | {lines // BOOK_LINES_PER_SKU:,} | {slow:.2f} s | "
                f"{fast:.3f} s | {slow / fast:,.0f}× | {slow / lines * 1e6:,.0f} µs | "
                f"{fast / lines * 1e6:,.1f} µs |"
            )
    out.append(END)
    return "\n".join(out)


def write_doc(table: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + table + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    DOC.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1M", help="order lines per night, e.g. 100k,1M")
    parser.add_argument("--10m", dest="ten_m", action="store_true", help="add 10M (takes long)")
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
    parser.add_argument("--book", default="2.5k,5k,10k", help="sizes for the book's loop")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch the doc")
    args = parser.parse_args(argv)

    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    runners = list(dict.fromkeys(r.strip() for r in args.runners.split(",") if r.strip()))
    unknown = sorted(set(runners) - set(RUNNERS))
    if unknown or not runners:
        parser.error(f"--runners takes {' and/or '.join(RUNNERS)}, not {args.runners!r}")
    if args.dask_workers < 1:
        parser.error("--dask-workers must be 1 or more")
    if args.ten_m:
        sizes.append(10_000_000)
    work = args.work or Path(tempfile.mkdtemp(prefix="allocation-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    settings = {
        "ALLOCATION_WORKERS": args.workers,
        "ALLOCATION_DASK_WORKERS": str(args.dask_workers),
    }
    try:
        results = []
        published: list[publish_bench.Published] = []
        with prefect_server(work) as server_env:
            for lines in sizes:
                run_env = {**server_env, **settings}
                for name in (
                    "ALLOCATION_TASK_RUNNER",
                    "ALLOCATION_DASK_ADDRESS",
                    "ALLOCATION_STAGING",
                ):
                    run_env.pop(name, None)  # runner chosen per run; Dask: a temporary cluster
                results += measure(lines, runners, work, run_env, args.repeat, args.seed)
                if "local" in runners:  # the publish step alone, before and after, same state
                    state = work / f"site-{label(lines)}-local" / ".warehouse.duckdb.pipeline"
                    published += publish_bench.measure(
                        lines, state / "state.duckdb", work, run_env, args.repeat, timed
                    )
        growth = book_growth(
            [parse_size(s) for s in args.book.split(",") if s.strip()], work, args.seed
        )
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    table = report(results, growth, args.workers, args.repeat, info, args.dask_workers, published)
    print(table)
    if not args.no_write:
        write_doc(table)
        print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
