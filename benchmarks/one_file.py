"""The same night delivered as many files, as one CSV file and as one Parquet file, side by side.

    python -m benchmarks.one_file --lines 10000000 [--work DIR]
                                  [--shapes many,csv,parquet,parquet-one-group]
                                  [--pythonpath DIR]

Issue 24: memory must be bounded per slice of a file, not per file (a supplier's one daily
export is the usual case). The inbox of ``benchmarks.generate`` (order files of 1M lines) is
rewritten as one orders CSV file, as one orders Parquet file (polars' default row groups) and as
one Parquet file of a single row group (as pandas wrote it with an older pyarrow: 64Mi rows a
group), the manifest unchanged; each is one ``allocation run`` (local runner, a first night on an empty
warehouse) against one Prefect server started beforehand, as a whole process timed by the kernel
with its whole process tree's peak RSS sampled every 0.1 s (``benchmarks.process``).
``--pythonpath`` runs another checkout's ``allocation`` package (e.g. the code before a change)
with the same interpreter and libraries.

    python -m benchmarks.one_file --reader-only INBOX [--pythonpath DIR]

reads and validates the order files of ``INBOX`` in this process, as the load step does but
without staging, and prints the process's peak RSS (``ru_maxrss``): the reader's own memory.
Works with the code before the streaming readers too (``--pythonpath old-checkout``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from benchmarks.generate import BUSINESS_DATE, generate
from benchmarks.nights import read_every_line

SHAPES = ("many", "csv", "parquet", "parquet-one-group")


def night_env(env: dict[str, str]) -> dict[str, str]:
    """The settings of every measured night: the inbox, complete once written, is read at once
    (with the default settle time a just-generated inbox is left waiting and the run times an
    empty night in seconds)."""
    return {**env, "ALLOCATION_INBOX_SETTLE_SECONDS": "0"}


def one_file_inboxes(many: Path, work: Path, shapes: list[str]) -> dict[str, Path]:
    """The inbox ``many`` and its one-file variants, sharing its manifest."""
    inboxes = {"many": many}
    orders = sorted((many / "orders").glob("*.csv"))
    for shape in shapes:
        if shape == "many":
            continue
        inbox = work / f"inbox-{shape}"
        shutil.rmtree(inbox, ignore_errors=True)
        (inbox / "orders").mkdir(parents=True)
        shutil.copytree(many / "batches", inbox / "batches")
        target = inbox / "orders" / f"{BUSINESS_DATE}.{shape.split('-')[0]}"
        if shape == "csv":
            with target.open("wb") as out:
                for number, part in enumerate(orders):
                    with part.open("rb") as handle:
                        header = handle.readline()
                        if number == 0:
                            out.write(header)
                        shutil.copyfileobj(handle, out, 1 << 24)
        else:
            lines = pl.scan_csv(
                orders, schema=dict.fromkeys(("orderid", "sku", "qty"), pl.String)
            ).with_columns(pl.col("qty").cast(pl.Int64))
            if shape == "parquet":
                lines.sink_parquet(target)
            else:  # one row group: the whole file in memory here, once, to write it
                whole = lines.collect()
                whole.write_parquet(target, row_group_size=max(1, whole.height))
        inboxes[shape] = inbox
    return inboxes


def reader_only(inbox: Path) -> str:
    """Reads and validates ``inbox``'s order files here; the peak RSS and the time taken."""
    from allocation.io import readers, validation

    tick = time.perf_counter()
    valid = 0
    files, _ = readers.find_inbox_files(inbox)
    for file in files:
        if file.kind != "orders":
            continue
        if hasattr(readers, "stream_inbox_file"):
            stream = readers.stream_inbox_file(file)
            for part in stream:
                valid += validation.validate_orders(part.rows).valid.height
            if stream.problem is not None:
                raise RuntimeError(stream.problem)
        else:  # the code before the readers streamed
            valid += validation.validate_orders(readers.read_inbox_file(file).rows).valid.height
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (
        f"{inbox}: {valid:,} valid order lines in {time.perf_counter() - tick:.1f} s "
        f"({usage.ru_utime + usage.ru_stime:.1f} CPU-s, start-up included), "
        f"peak RSS {usage.ru_maxrss / 1024:,.0f} MiB (this process)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--pythonpath", type=Path)
    parser.add_argument("--reader-only", type=Path, metavar="INBOX")
    args = parser.parse_args(argv)
    if args.reader_only:
        if args.pythonpath:
            sys.path.insert(0, str(args.pythonpath))  # before `allocation` is first imported
        print(reader_only(args.reader_only), flush=True)
        return
    # Imported here: it imports `allocation`, which --reader-only may take from elsewhere.
    from benchmarks.process import BIN, prefect_server, timed

    shapes = [shape for shape in args.shapes.split(",") if shape]
    work = args.work or Path(tempfile.mkdtemp(prefix="one-file-"))
    many = work / "inbox-many"
    if not (many / "orders").is_dir():
        generate(args.lines, many)
    inboxes = one_file_inboxes(many, work, shapes)
    with prefect_server(work) as server_env:
        env = night_env(server_env)
        if args.pythonpath:
            env = {**env, "PYTHONPATH": str(args.pythonpath)}
        for shape in shapes:
            site = work / f"site-{shape}"
            shutil.rmtree(site, ignore_errors=True)
            run = timed(
                [
                    *(str(BIN / "allocation"), "run", "--inbox", str(inboxes[shape])),
                    *("--warehouse", str(site / "warehouse.duckdb")),
                    *("--outbox", str(site / "out")),
                    *("--business-date", BUSINESS_DATE.isoformat(), "--task-runner", "local"),
                ],
                env,
                work / f"run-{shape}.log",
            )
            files = len(list((inboxes[shape] / "orders").iterdir()))
            print(
                f"{args.lines:,} lines, {shape} ({files} order file(s)): exit {run.code}, "
                f"{run.wall:.1f} s wall, {run.cpu:.1f} CPU-s, tree peak {run.tree_rss_mb:,.0f} MiB "
                f"(largest process {run.max_rss_mb:,.0f} MiB, {run.tree_procs} processes), "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if run.code == 0:
                read_every_line(site / "out" / BUSINESS_DATE.isoformat(), args.lines, 1)
            shutil.rmtree(site, ignore_errors=True)


if __name__ == "__main__":
    main()
