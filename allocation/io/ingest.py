"""Sorting tonight's valid rows into new, duplicate, conflicting and (for batches) changed.

Pure polars over frames: tonight's rows in arrival order, and what the warehouse already knows
about the same keys. A row identical to what is known (from an earlier night, or earlier tonight)
is a duplicate; the same key with other values is rejected naming the earlier row, except for
batch manifests, where a new eta or quantity is an update (the book's chapter 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

LINE_KEY = ["orderid", "sku"]


@dataclass(frozen=True)
class Classified:
    new: pl.DataFrame  # rows to add (first arrival of a key)
    updates: pl.DataFrame  # batches only: rows that change a known batch, in arrival order
    duplicates: int
    rejected: pl.DataFrame  # rejection frame: kind, source_file, line, reason, raw


def _rejections(kind: str, frame: pl.DataFrame, reason: pl.Expr) -> pl.DataFrame:
    return frame.select(
        pl.lit(kind).alias("kind"),
        "source_file",
        "line",
        reason.alias("reason"),
        "raw",
    )


def _where(file: str, line: str) -> pl.Expr:
    return pl.format("{} line {}", pl.col(file), pl.col(line).cast(pl.String))


def classify_orders(tonight: pl.DataFrame, known: pl.DataFrame) -> Classified:
    """`tonight`: validated orders in arrival order. `known`: earlier nights' lines for the same
    keys (orderid, sku, known_qty, known_date, known_file, known_line).

    Reasons are worded only for the (few) rejected rows: formatting text for millions of good
    rows was the costliest part of this step."""
    frame = (
        tonight.with_row_index("_seq")
        .join(known, on=LINE_KEY, how="left")
        .sort("_seq")
        .with_columns(
            _first_seq=pl.col("_seq").min().over(LINE_KEY),
            _first_qty=pl.col("qty").first().over(LINE_KEY),
        )
    )
    is_new = (pl.col("_seq") == pl.col("_first_seq")) & pl.col("known_qty").is_null()
    same = pl.col("qty") == pl.coalesce("known_qty", "_first_qty")
    rejected = frame.filter(~is_new & ~same)
    if rejected.height:
        first_rows = frame.select(
            pl.col("_seq").alias("_first_seq"),
            _where("source_file", "line").alias("_first_where"),
        )
        rejected = rejected.join(first_rows, on="_first_seq", how="left").sort("_seq")
    reference = (
        pl.when(pl.col("known_qty").is_not_null())
        .then(
            pl.format(
                "the line received on {} ({}) with qty {}",
                pl.col("known_date").cast(pl.String),
                _where("known_file", "known_line"),
                pl.col("known_qty").cast(pl.String),
            )
        )
        .otherwise(
            pl.format(
                "the line received in {} with qty {}",
                pl.col("_first_where") if rejected.height else pl.lit(""),
                pl.col("_first_qty").cast(pl.String),
            )
        )
    )
    return Classified(
        new=frame.filter(is_new).select(tonight.columns),
        updates=tonight.clear(),
        duplicates=frame.filter(~is_new & same).height,
        rejected=_rejections(
            "orders",
            rejected,
            pl.format(
                "order {} sku {} with qty {} conflicts with {}",
                "orderid",
                "sku",
                pl.col("qty").cast(pl.String),
                reference,
            ),
        ),
    )


def classify_batches(tonight: pl.DataFrame, known: pl.DataFrame) -> Classified:
    """`tonight`: validated manifest rows in arrival order. `known`: batches with the same
    references (reference, known_sku, known_qty, known_eta, known_date, known_file, known_line).

    A batch never changes sku; a new qty or eta for a known reference is an update, applied in
    arrival order; repeating the current values is a duplicate."""
    ref = "reference"
    frame = (
        tonight.with_row_index("_seq")
        .join(known, on=ref, how="left")
        .with_columns(
            _sku=pl.coalesce("known_sku", pl.col("sku").first().over(ref, order_by="_seq")),
            _sku_where=pl.when(pl.col("known_sku").is_not_null())
            .then(
                pl.format(
                    "received on {} ({})",
                    pl.col("known_date").cast(pl.String),
                    _where("known_file", "known_line"),
                )
            )
            .otherwise(
                pl.format(
                    "received in {}",
                    _where("source_file", "line").first().over(ref, order_by="_seq"),
                )
            ),
        )
        .sort("_seq")
    )
    wrong_sku = frame.filter(pl.col("sku") != pl.col("_sku"))
    kept = frame.filter(pl.col("sku") == pl.col("_sku")).with_columns(
        _prev_qty=pl.col("qty").shift(1).over(ref, order_by="_seq"),
        _prev_eta=pl.col("eta").shift(1).over(ref, order_by="_seq"),
        _has_prev=pl.int_range(pl.len()).over(ref, order_by="_seq") > 0,
    )
    kept = kept.with_columns(
        _prev_qty=pl.when(pl.col("_has_prev")).then("_prev_qty").otherwise("known_qty"),
        _prev_eta=pl.when(pl.col("_has_prev")).then("_prev_eta").otherwise("known_eta"),
        _known=pl.col("_has_prev") | pl.col("known_sku").is_not_null(),
    ).sort("_seq")
    same = (pl.col("qty") == pl.col("_prev_qty")) & pl.col("eta").eq_missing(pl.col("_prev_eta"))
    updates = kept.filter(pl.col("_known") & ~same).select(
        *tonight.columns,
        pl.col("_prev_qty").alias("old_qty"),
        pl.col("_prev_eta").alias("old_eta"),
    )
    return Classified(
        new=kept.filter(~pl.col("_known")).select(tonight.columns),
        updates=updates,
        duplicates=kept.filter(pl.col("_known") & same).height,
        rejected=_rejections(
            "batches",
            wrong_sku,
            pl.format(
                "batch {} has sku {} ({}); a batch cannot change sku (got {})",
                "reference",
                "_sku",
                "_sku_where",
                "sku",
            ),
        ),
    )
