"""The log lines for a night's rejected rows: counted per file and reason, never one per row."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import polars as pl

log = logging.getLogger("allocation")


def log_rejected_rows(
    rejected: pl.DataFrame | Iterable[pl.DataFrame], reasons_per_file: int = 5
) -> None:
    """Logs the rejected rows counted per file and reason, never one line per row.

    Reasons that differ only in their values (quoted, or any word with a digit: "qty -3 must be
    at least 1", "row has 5 fields, ...") count as one, shown with its first line as an example.
    A file with more kinds of reason than ``reasons_per_file`` gets one more line for the rest.
    ``rejected``: a rejection frame, or its rows in chunks (source_file, line, reason at least):
    only one chunk and the counts so far are held at a time.
    """
    chunks = [rejected] if isinstance(rejected, pl.DataFrame) else rejected
    partial = [_alike_groups(chunk) for chunk in chunks]
    partial = [groups for groups in partial if groups.height]
    if not partial:
        return
    groups = (
        _merge(pl.concat(partial, how="vertical"))
        .sort(["source_file", "rows", "line"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(pl.len()).over("source_file"))
    )
    shown = groups.filter(pl.col("rank") < reasons_per_file)
    for source_file, alike, count, line, example in shown.select(
        "source_file", "alike", "rows", "line", "example"
    ).iter_rows():
        if count == 1:
            log.warning("%s: 1 row(s) rejected: %s (line %d)", source_file, example, line)
        elif alike == example:
            log.warning(
                "%s: %d row(s) rejected: %s (first at line %d)", source_file, count, alike, line
            )
        else:
            log.warning(
                "%s: %d row(s) rejected: %s (e.g. line %d: %s)",
                source_file,
                count,
                alike,
                line,
                example,
            )
    rest = (
        groups.filter(pl.col("rank") >= reasons_per_file)
        .group_by("source_file", maintain_order=True)
        .agg(rows=pl.col("rows").sum(), reasons=pl.len())
    )
    for source_file, count, reasons in rest.iter_rows():
        log.warning(
            "%s: %d row(s) rejected for %d other reason(s): see rejected.csv",
            source_file,
            count,
            reasons,
        )


def _alike_groups(rejected: pl.DataFrame) -> pl.DataFrame:
    """One chunk's rows counted per file and reason alike (source_file, alike, rows, line,
    example); `_merge` adds up the chunks' counts exactly."""
    rows = rejected.filter(pl.col("line").is_not_null())
    return _merge(
        rows.select(
            "source_file",
            pl.col("reason")
            .str.replace_all(r"'[^']*'", "'…'")
            .str.replace_all(r"[^\s'(),;]*\d[^\s'(),;]*", "…")
            .alias("alike"),
            pl.lit(1, dtype=pl.UInt32).alias("rows"),
            "line",
            pl.col("reason").alias("example"),
        )
    )


def _merge(groups: pl.DataFrame) -> pl.DataFrame:
    """Counts per (source_file, alike) added up; the example is the one of the first line."""
    return groups.group_by("source_file", "alike").agg(
        rows=pl.col("rows").sum(),
        line=pl.col("line").min(),
        example=pl.col("example").sort_by("line").first(),
    )
