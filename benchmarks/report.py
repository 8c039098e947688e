"""The markdown block and the plot `make bench` writes, from measured results (no measuring)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from benchmarks.process import Timed
from benchmarks.steps import Steps
from benchmarks.svg import Panel, Series, figure

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
TARGET_GB = 1.5  # issue 14: peak RSS of the whole process tree at 10M and 30M lines
RATE_KINDS = {"Loaded": "read rows", "Validated": "validate rows", "Allocated": "domain allocate"}


def parse_size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    number = text[:-1] if scale > 1 else text
    return int(float(number) * scale)


def label(lines: float) -> str:
    lines = int(lines)
    if lines >= 1_000_000 and lines % 1_000_000 == 0:
        return f"{lines // 1_000_000}M"
    if lines >= 1_000 and lines % 100 == 0:
        return f"{lines / 1_000:g}k"
    return str(lines)


@dataclass
class Result:
    """One size, shape and runner: the floor and the pipeline on the same inbox."""

    lines: int
    shape: str
    skus: int
    hot_share: float
    runner: str
    floor: Timed
    pipeline: Timed
    steps: Steps


@dataclass
class Fixed:
    """Prefect's fixed cost: the trivial flow as a whole process against the same server."""

    run: Timed
    steps: Steps
    tasks: int


def runner_label(runner: str, dask_workers: int) -> str:
    return f"dask ({dask_workers} workers)" if runner == "dask" else runner


def share(value: float) -> str:
    """A share of lines: two significant digits below 1 % (a uniform night's hottest sku:
    0.0014 % at 10M lines), never a bare 0.0 %."""
    return f"{value:.1%}" if value >= 0.01 else f"{value * 100:.2g}%"


def _seconds(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def main_table(results: list[Result], fixed: Fixed | None, dask_workers: int) -> list[str]:
    out = [
        "| lines | shape (skus; hottest sku's share of lines) | runner | floor wall (CPU) | "
        "floor peak RSS | pipeline wall (CPU) | pipeline peak RSS, whole tree (largest process; "
        "processes) | pipeline ÷ floor, wall (CPU) | without Prefect's fixed cost ÷ floor |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        net = "–"
        if fixed is not None:
            net = f"{(r.pipeline.wall - fixed.run.wall) / r.floor.wall:.1f}×"
        out.append(
            f"| {label(r.lines)} | {r.shape} ({r.skus:,}; {share(r.hot_share)}) | "
            f"{runner_label(r.runner, dask_workers)} | {r.floor.wall:.2f} s "
            f"({r.floor.cpu:.2f} s) | {r.floor.tree_rss_mb:,.0f} MiB | {r.pipeline.wall:.2f} s "
            f"({r.pipeline.cpu:.2f} s) | **{r.pipeline.tree_rss_mb:,.0f} MiB** "
            f"({r.pipeline.max_rss_mb:,.0f} MiB; {r.pipeline.tree_procs}) | "
            f"**{r.pipeline.wall / r.floor.wall:.1f}×** "
            f"({r.pipeline.cpu / r.floor.cpu:.1f}×) | {net} |"
        )
    return out


def fixed_table(fixed: Fixed) -> list[str]:
    s = fixed.steps
    return [
        "",
        f"Prefect's fixed cost, measured in the same run: a flow of {fixed.tasks} no-op tasks "
        "(`benchmarks/trivial.py`, no result cached or persisted) as a whole process against "
        "the same server. *Start-up* is process start to the flow run's start (imports, API "
        "calls), *wrap-up + exit* the flow run's end to the process's exit; both from the "
        "Prefect API's timestamps:",
        "",
        "| process wall (CPU) | start-up | flow run | wrap-up + exit | peak RSS |",
        "|---:|---:|---:|---:|---:|",
        f"| {fixed.run.wall:.2f} s ({fixed.run.cpu:.2f} s) | {_seconds(s.startup)} s | "
        f"{_seconds(s.flow)} s | {_seconds(s.wrap_up)} s | {fixed.run.tree_rss_mb:,.0f} MiB |",
    ]


def steps_table(results: list[Result], dask_workers: int) -> list[str]:
    names: list[str] = []
    for r in results:
        names += [n for n in r.steps.seconds if n not in names]
    top = [n for n in names if not any(n in r.steps.nested for r in results)]
    inner = [n for n in names if n not in top]
    rates = [k for k in RATE_KINDS if any(k in r.steps.rates for r in results)]
    parents = {n: p for r in results for n, p in r.steps.nested.items()}
    header = (
        ["lines", "shape", "runner", "start-up", *top]
        + [f"{n} (within {parents[n]})" for n in inner]
        + ["between steps", "wrap-up + exit"]
        + [f"{RATE_KINDS[k]} (log)" for k in rates]
    )
    out = [
        "",
        "Where the pipeline's time went, from the Prefect API (the flow run and its task runs: "
        "each step is its task runs' first start to last end; *start-up* is process start to "
        "the flow run's start; *between steps* the flow run's time outside every step; "
        "*wrap-up + exit* the flow run's end to the process's exit). Columns marked *(log)* "
        "are the `allocation` logger's own timings, parsed from the run's log text:",
        "",
        "| " + " | ".join(header) + " |",
        "|---:|---|---|" + "---:|" * (len(header) - 3),
    ]
    for r in results:
        s = r.steps
        cells = [_seconds(s.startup)]
        cells += [_seconds(s.seconds.get(n, float("nan"))) for n in [*top, *inner]]
        cells += [_seconds(s.between), _seconds(s.wrap_up)]
        for kind in rates:
            seconds = s.rates.get(kind)
            cells.append(f"{seconds:.2f} s ({r.lines / seconds / 1e6:.2f} M/s)" if seconds else "–")
        out.append(
            f"| {label(r.lines)} | {r.shape} | {runner_label(r.runner, dask_workers)} | "
            + " | ".join(cells)
            + " |"
        )
    return out


def block(
    results: list[Result],
    fixed: Fixed | None,
    heading: str,
    info: list[str],
    dask_workers: int,
    extra: list[str],
) -> str:
    out = [START, heading, "", *info, "", *main_table(results, fixed, dask_workers)]
    if fixed is not None:
        out += fixed_table(fixed)
    if results:
        out += steps_table(results, dask_workers)
    out += extra
    out.append(END)
    return "\n".join(out)


def replace_block(text: str, table: str) -> str:
    """`text` with its bench block replaced by `table` (appended when it has none)."""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + table + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + table + "\n"


def plot(results: list[Result], dask_workers: int, when: dt.datetime) -> str:
    """Wall time and peak RSS (whole process tree) against lines, pipeline and floor."""
    walls: list[Series] = []
    memories: list[Series] = []
    keys = list(dict.fromkeys((r.shape, r.runner) for r in results))
    shapes = list(dict.fromkeys(r.shape for r in results))
    for shape in shapes:
        floor: dict[int, Timed] = {r.lines: r.floor for r in results if r.shape == shape}
        name = f"floor ({shape})"
        walls.append(Series(name, [(x, t.wall) for x, t in floor.items()], dashed=True))
        memories.append(
            Series(name, [(x, t.tree_rss_mb * 2**20 / 1e9) for x, t in floor.items()], True)
        )
    for shape, runner in keys:
        chosen = [r for r in results if (r.shape, r.runner) == (shape, runner)]
        name = f"pipeline, {runner_label(runner, dask_workers)} ({shape})"
        walls.append(Series(name, [(r.lines, r.pipeline.wall) for r in chosen]))
        memories.append(
            Series(name, [(r.lines, r.pipeline.tree_rss_mb * 2**20 / 1e9) for r in chosen])
        )
    return figure(
        [
            Panel("Wall time", "seconds", walls),
            Panel(
                "Peak RSS, whole process tree",
                "GB (10⁹ bytes)",
                memories,
                reference=(TARGET_GB, f"target {TARGET_GB:g} GB"),
            ),
        ],
        label,
        caption=f"make bench, {when:%Y-%m-%d %H:%M} UTC; first night, empty warehouse",
    )
