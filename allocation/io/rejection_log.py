"""The log lines for a night's rejected rows: counted per file and reason, never one per row."""

from __future__ import annotations

import logging

import polars as pl

log = logging.getLogger("allocation")


def log_rejected_rows(rejected: pl.DataFrame, reasons_per_file: int = 5) -> None:
    """Logs the rejected rows counted per file and reason, never one line per row.

    Reasons that differ only in their values (quoted, or any word with a digit: "qty -3 must be
    at least 1", "row has 5 fields, ...") count as one, shown with its first line as an example.
    A file with more kinds of reason than ``reasons_per_file`` gets one more line for the rest.
    """
    rows = rejected.filter(pl.col("line").is_not_null())
    if rows.is_empty():
        return
    groups = (
        rows.group_by(
            "source_file",
            pl.col("reason")
            .str.replace_all(r"'[^']*'", "'…'")
            .str.replace_all(r"[^\s'(),;]*\d[^\s'(),;]*", "…")
            .alias("alike"),
        )
        .agg(
            rows=pl.len(),
            line=pl.col("line").min(),
            example=pl.col("reason").sort_by("line").first(),
        )
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
