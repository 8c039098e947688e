"""`make bench BENCH_ARGS="--nights 12"`: a sequence of nights on one warehouse.

A first-night benchmark never sees what grows with the warehouse's age: the lines left waiting
(every night allocates them first), the history a night looks repeats up in, the copies kept.
Here night after night runs on the same warehouse (`benchmarks.generate` with `night=N`: the
same skus, new order ids and batches covering 90 % of that night's demand, so about a tenth of
each night's lines joins the backlog), each an `allocation run` process against the same
Prefect server, timed by the kernel (`benchmarks.process.timed`), its steps from the Prefect
API and the `allocation` logger's own timings (classifying, deciding, recording).

`--baseline DIR` runs the same nights, night by night in turn, with the code of DIR (a
`git worktree` of another commit: its `allocation` package is put first on `PYTHONPATH`, the
rest of this environment is shared), so the two columns of the table were measured side by
side under the same load.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path

import duckdb

from benchmarks.generate import STOCK_SHARE, Shape, business_date, generate
from benchmarks.process import BIN, Timed, timed
from benchmarks.report import label
from benchmarks.steps import FlowRecord, Steps, read_flow_run, step_name, steps_from_records

PIPELINE_FLOW = "nightly-allocation"
#: The `allocation` logger's timings inside the allocate step, by what they time.
_LOGGED = {
    "classify": re.compile(r"Classified tonight's orders in ([\d.]+)s"),
    "decide": re.compile(r"allocation - Allocated [\d,]+ rows in ([\d.]+)s"),
    "record": re.compile(r"Recorded the night's placements in ([\d.]+)s"),
}
STEPS = ("load", "allocate", "write-reports", "publish")


@dataclass
class Night:
    number: int  # 1-based
    code: str  # "new" or "baseline"
    run: Timed
    steps: Steps
    logged: dict[str, float]
    open_lines: int  # waiting after the night
    cpu: dict[str, float]  # CPU seconds of the whole tree during each step


def step_cpu(run: Timed, flow: FlowRecord) -> dict[str, float]:
    """CPU seconds the run's process tree spent in each step's span (its task runs' first start
    to last end), from the sampler's readings: on a loaded machine the wall time of a step says
    little, its CPU time a lot more."""
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for task in flow.tasks:
        name = step_name(task.name, task.dynamic_key)
        start, end = spans.get(name, (task.start, task.end))
        spans[name] = (min(start, task.start), max(end, task.end))
    return {name: run.cpu_between(start, end) for name, (start, end) in spans.items()}


def _logged(text: str) -> dict[str, float]:
    found = {}
    for name, pattern in _LOGGED.items():
        matches = pattern.findall(text)
        if matches:
            found[name] = float(matches[-1])
    return found


def _open_lines(warehouse: Path) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.sql("SELECT count(*) FROM order_lines WHERE status = 'out_of_stock'").fetchall()
        return int(rows[0][0])
    finally:
        con.close()


def run_nights(
    count: int,
    lines: int,
    shape: Shape,
    work: Path,
    env: dict[str, str],
    seed: int,
    baseline: Path | None = None,
    restock: float = 1.0,
    stock: float = STOCK_SHARE,
) -> list[Night]:
    """`count` nights of `lines` lines each on one warehouse per code (ours, and the baseline's
    when given), in turn night by night; `restock`: the share of skus a later night's
    batches restock, `stock` the share of its demand they hold (`benchmarks.generate`)."""
    codes: dict[str, dict[str, str]] = {"new": env}
    if baseline is not None:
        codes = {
            "baseline": {**env, "PYTHONPATH": str(baseline.resolve())},
            "new": env,
        }
    sites = {code: work / f"nights-{label(lines)}-{shape}-{code}" for code in codes}
    for site in sites.values():
        shutil.rmtree(site, ignore_errors=True)
    found: list[Night] = []
    for number in range(1, count + 1):
        # Named for everything that shapes it: a scratch folder reused with other settings
        # must not hand a night another sequence's inbox.
        inbox = work / (
            f"nights-inbox-{label(lines)}-{shape}-seed{seed}-restock{restock:g}-stock{stock:g}-"
            f"{number:03d}"
        )
        if not (inbox / ".complete").exists():
            shutil.rmtree(inbox, ignore_errors=True)
            generate(
                lines, inbox, seed, shape=shape, night=number - 1, restock=restock, stock=stock
            )
            (inbox / ".complete").write_text("")
        for code, code_env in codes.items():
            site = sites[code]
            run = timed(
                [
                    *(str(BIN / "allocation"), "run", "--inbox", str(inbox)),
                    *("--warehouse", str(site / "warehouse.duckdb")),
                    *("--outbox", str(site / "out")),
                    *("--business-date", business_date(number - 1).isoformat()),
                    *("--task-runner", "local"),
                ],
                code_env,
                work / f"nights-{code}-{number:03d}.log",
            )
            if run.code != 0:
                raise RuntimeError(f"night {number} ({code}) failed:\n{run.output[-3000:]}")
            read_every_line(site / "out" / business_date(number - 1).isoformat(), lines, number)
            flow = read_flow_run(env["PREFECT_API_URL"], PIPELINE_FLOW, since=run.started)
            night = Night(
                number,
                code,
                run,
                steps_from_records(flow, run.started, run.ended),
                _logged(run.output),
                _open_lines(site / "warehouse.duckdb"),
                step_cpu(run, flow),
            )
            found.append(night)
            print(
                f"night {number:>2} ({code}): {run.wall:.2f}s wall, {run.cpu:.2f}s CPU, "
                f"{night.open_lines:,} lines waiting after it, tree peak "
                f"{run.tree_rss_mb:,.0f} MiB, load {os.getloadavg()[0]:.1f}; CPU "
                + ", ".join(f"{k} {night.cpu.get(k, float('nan')):.2f}s" for k in STEPS)
                + "; logged "
                + ", ".join(f"{k} {v:.2f}s" for k, v in night.logged.items()),
                flush=True,
            )
        shutil.rmtree(inbox, ignore_errors=True)
    return found


def read_every_line(folder: Path, lines: int, number: int) -> None:
    """Raises unless the night whose reports are in `folder` received all `lines` generated
    order lines: a night that read fewer (files left for later, rejected) is not the night
    the table would claim to time."""
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    received = summary["orders"]["received"]
    if received != lines:
        raise RuntimeError(
            f"night {number} received {received:,} of the {lines:,} order lines generated for "
            f"it (see {folder / 'summary.json'}): its timing would not be of a real night"
        )


def table(nights: list[Night], lines: int, shape: str) -> list[str]:
    """The nights as a markdown table, then the ratio the issue asks for, per code."""
    head = (
        "| night | code | lines waiting after | wall (CPU) | tree peak RSS | "
        + " | ".join(f"{step} CPU" for step in STEPS)
        + " | classify (log) | decide (log) | record (log) |"
    )
    rows = [
        f"Sequence of {max(n.number for n in nights)} nights of {label(lines)} {shape} lines on "
        "one warehouse (`python -m benchmarks.run --nights N`), each an `allocation run` "
        "process; each step's CPU seconds (the whole process tree, sampled every 0.1 s, over "
        "the step's span in the Prefect API), the logged timings in wall seconds:",
        "",
        head,
        "|" + "---:|" * (head.count("|") - 1),
    ]
    for night in nights:
        steps = [night.cpu.get(step, float("nan")) for step in STEPS]
        logged = [night.logged.get(name, float("nan")) for name in _LOGGED]
        rows.append(
            f"| {night.number} | {night.code} | {night.open_lines:,} | "
            f"{night.run.wall:.2f} s ({night.run.cpu:.2f} s) | {night.run.tree_rss_mb:,.0f} MiB | "
            + " | ".join(f"{value:.2f}" for value in [*steps, *logged])
            + " |"
        )
    rows.append("")
    for code in dict.fromkeys(n.code for n in nights):
        for what, figure in (("wall", "wall"), ("CPU", "cpu")):
            times = {n.number: getattr(n.run, figure) for n in nights if n.code == code}
            early = [times[k] for k in (2, 3) if k in times]
            late = [times[k] for k in sorted(times)[-2:]]
            if early and len(times) >= 4:
                ratio = statistics.mean(late) / statistics.mean(early)
                rows.append(
                    f"- {code}, {what}: mean of the last two nights {statistics.mean(late):.2f} s "
                    f"against nights 2-3 {statistics.mean(early):.2f} s: **{ratio:.2f}×**"
                )
    return rows
