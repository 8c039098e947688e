"""The publish step alone on a real night's working state: a normal night, and the one-time
conversion of a working state an earlier release left in DuckDB's newest storage format.

    python -m benchmarks.publish --state STATE.duckdb --out DIR --storage-version VERSION

copies STATE (a pipeline's closed working database) to DIR/state.duckdb, publishes that copy to
DIR/warehouse.duckdb in storage version VERSION and prints one JSON line: the seconds
`publish_copy` took (imports and the copy excluded) and the sizes. `benchmarks.run` runs it as a
fresh process per case after each size's local pipeline run, timed by the kernel as every other
process there, and renders the table: once on the night's own working state, once on the same
state rewritten beforehand in DuckDB's newest storage format (as releases before the working
state was created in the analysts' version left it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

NORMAL = "normal night"  # the night's own working state: in the analysts' version, a byte copy
CONVERTED = "first night after an upgrade"  # in the newest format: converted once, then copied


@dataclass
class Published:
    lines: int
    version: str  # the case: NORMAL or CONVERTED
    seconds: float  # publish_copy alone, measured in the child
    cpu_seconds: float  # its user + system CPU (DuckDB's threads included)
    wall: float  # the whole child process
    cpu: float
    rss_mb: float  # the child's peak RSS (VmHWM), imports included
    rss_before_mb: float  # its peak before publish_copy ran (imports, Python)
    state_mb: float
    published_mb: float
    rows: int  # rows in the working database's tables


def _peak_rss_bytes() -> int:
    """This process's own peak RSS (`VmHWM`: unlike `ru_maxrss`, not inherited from the parent
    that forked it before the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _in_newest_format(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    con = duckdb.connect(":memory:", config={"memory_limit": "512MB"})
    try:
        con.execute("ATTACH ? AS source (READ_ONLY)", [str(source)])
        con.execute("ATTACH ? AS target (STORAGE_VERSION 'latest')", [str(target)])
        con.execute("COPY FROM DATABASE source TO target")
    finally:
        con.close()


def _child(night_state: Path, out: Path, version: str) -> dict[str, Any]:
    from allocation.io.publish import publish_copy

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    state = out / "state.duckdb"  # publishing may convert it: never the night's own file
    shutil.copyfile(night_state, state)
    warehouse = out / "warehouse.duckdb"
    rss_before = _peak_rss_bytes()
    tick, cpu = time.perf_counter(), time.process_time()
    publish_copy(state, warehouse, out / "published", "bench", 1, version)
    seconds, cpu = time.perf_counter() - tick, time.process_time() - cpu
    rss_after = _peak_rss_bytes()
    con = duckdb.connect(str(state), read_only=True)
    try:
        rows = con.sql("SELECT sum(estimated_size)::BIGINT FROM duckdb_tables()").fetchall()[0][0]
    finally:
        con.close()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_before_bytes": rss_before,
        "rss_bytes": rss_after,
        "state_bytes": state.stat().st_size,
        "published_bytes": warehouse.stat().st_size,
        "rows": int(rows or 0),
    }


def measure(
    lines: int,
    state: Path,
    work: Path,
    env: dict[str, str],
    repeat: int,
    timed: Callable[[list[str], dict[str, str], Path], Any],
) -> list[Published]:
    """Publishes `state` in the default storage version as a normal night and as the first
    night after an upgrade, `repeat` times each in turn, each in a fresh process; the best of
    each."""
    from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION

    newest = work / f"publish-{lines}-newest.duckdb"
    _in_newest_format(state, newest)
    best: dict[str, Published] = {}
    for attempt in range(repeat):
        for version in (NORMAL, CONVERTED):
            slug = "converted" if version == CONVERTED else "normal"
            run = timed(
                [
                    *(sys.executable, "-m", "benchmarks.publish"),
                    *("--state", str(newest if version == CONVERTED else state)),
                    *("--out", str(work / f"publish-{lines}-{slug}")),
                    *("--storage-version", DEFAULT_STORAGE_VERSION),
                ],
                env,
                work / f"publish-{lines}-{slug}-{attempt}.log",
            )
            if run.code != 0:
                raise RuntimeError(f"publishing failed:\n{run.output[-3000:]}")
            found = json.loads(run.output.strip().splitlines()[-1])
            result = Published(
                lines=lines,
                version=version,
                seconds=found["seconds"],
                cpu_seconds=found["cpu_seconds"],
                wall=run.wall,
                cpu=run.cpu,
                rss_mb=found["rss_bytes"] / 2**20,
                rss_before_mb=found["rss_before_bytes"] / 2**20,
                state_mb=found["state_bytes"] / 2**20,
                published_mb=found["published_bytes"] / 2**20,
                rows=found["rows"],
            )
            print(f"publish {lines:,} lines, {version}: {result.seconds:.2f}s", flush=True)
            if version not in best or result.seconds < best[version].seconds:
                best[version] = result
        for slug in ("normal", "converted"):
            shutil.rmtree(work / f"publish-{lines}-{slug}", ignore_errors=True)
    newest.unlink(missing_ok=True)
    return list(best.values())


def table(results: list[Published], label: Callable[[int], str]) -> list[str]:
    """The markdown rows of the publish comparison."""
    out = [
        "",
        "The publish step alone on the same night's working state, in the default storage "
        f"version, each in a fresh process (`benchmarks/publish.py`): *{NORMAL}* = the working "
        "state as the night left it, already in that version (a byte copy and a version check); "
        f"*{CONVERTED}* = the same state in DuckDB's newest format, as releases before the "
        "working state was created in the analysts' version left it (converted once with "
        "`COPY FROM DATABASE`, both catalogs and row counts compared, then copied). "
        "*publish_copy* is `publish_copy` alone, wall (CPU of all its threads); the process "
        "columns add Python, imports and copying the state first; the ratio is converted ÷ normal:",
        "",
        "| lines | case | rows in the warehouse | publish_copy wall (CPU) | "
        "process wall (CPU) | process peak RSS (before publish_copy) | working file | published file | converted ÷ normal |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    before = {r.lines: r for r in results if r.version == NORMAL}
    for r in results:
        ratio = ""
        if r.version != NORMAL:
            was = before[r.lines]
            ratio = (
                f"**{r.seconds / was.seconds:,.0f}×** "
                f"({r.cpu_seconds / max(was.cpu_seconds, 0.001):,.0f}×)"
            )
        out.append(
            f"| {label(r.lines)} | {r.version} | {r.rows:,} | {r.seconds:.2f} s "
            f"({r.cpu_seconds:.2f} s) | "
            f"{r.wall:.2f} s ({r.cpu:.2f} s) | {r.rss_mb:,.0f} MiB ({r.rss_before_mb:,.0f} MiB) | "
            f"{r.state_mb:,.0f} MiB | "
            f"{r.published_mb:,.0f} MiB | {ratio} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--storage-version", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(_child(args.state, args.out, args.storage_version)), flush=True)


if __name__ == "__main__":
    main()
