"""What a run shows in the Prefect UI: a markdown summary and a table of out-of-stock skus,
under stable keys so the UI keeps their history night after night."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from allocation.flows.courtesy import best_effort
from allocation.settings import RunParameters

SUMMARY_KEY = "nightly-allocation-summary"
OUT_OF_STOCK_KEY = "nightly-out-of-stock-skus"


def summary_markdown(
    summary: dict[str, Any], folder: Path, params: RunParameters, published: Path | None
) -> str:
    orders, batches, files = summary["orders"], summary["batches"], summary["files"]
    updates = ", ".join(
        f"{name.replace('_', ' ')} {count}" for name, count in batches["updated"].items()
    )
    lines = [
        f"# Night {summary['business_date']}{' (dry run)' if params.dry_run else ''}",
        "",
        "| | received | accepted | duplicate | rejected |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {c['received']} | {c['accepted']} | {c['duplicate']} | {c['rejected']} |"
            for name, c in (("orders", orders), ("batches", batches))
        ),
        "",
        f"- **Allocated:** {summary['allocated']}",
        f"- **Out of stock (open lines):** {summary['out_of_stock']}",
        f"- **Batch updates:** {updates}; lines released {summary['lines_released']}, "
        f"re-placed {summary['lines_replaced']}",
        f"- **Files:** {files['received']} read, {files['rejected']} rejected, "
        f"{files['skipped_already_ingested']} already committed for this date",
    ]
    for rejected in files["rejected_files"]:
        lines.append(f"  - rejected `{rejected['file']}`: {rejected['reason']}")
    top = top_out_of_stock(folder, 10)
    if top.height:
        lines += ["", "## Top out-of-stock skus", "", "| sku | open lines | open qty | available |"]
        lines.append("|---|---:|---:|---:|")
        lines += [
            f"| {r['sku']} | {r['open_lines']} | {r['open_qty']} | {r['available']} |"
            for r in top.iter_rows(named=True)
        ]
    lines += ["", "## Outputs", "", f"- reports: `{folder}`", ""]
    lines += ["| report file | rows | size |", "|---|---:|---:|"]
    lines += [
        f"| [{f['name']}]({f['link']}) | {'' if f['rows'] is None else f['rows']} | {f['size']} |"
        for f in report_files(folder)
    ]
    lines.append("")
    lines.append(
        f"- warehouse: `{params.warehouse}`"
        if published
        else "- warehouse: not published (dry run)"
    )
    return "\n".join(lines) + "\n"


def report_files(folder: Path) -> list[dict[str, Any]]:
    """Each file of the night's report folder: name, `file://` link, data rows (None for
    summary.json) and size. Rows come from a Parquet file's footer; a CSV report has the rows
    of its Parquet twin (the same rows, written together), read from that footer too: counting
    a 30M-line night's 2.5 GB allocations.csv held the whole file in the run's memory (2.5 GB,
    measured). A CSV without a twin is counted (quoted line breaks are one row)."""
    files = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        rows: int | None = None
        if path.suffix == ".parquet":
            rows = pq.ParquetFile(path).metadata.num_rows
        elif path.suffix == ".csv" and path.with_suffix(".parquet").is_file():
            rows = pq.ParquetFile(path.with_suffix(".parquet")).metadata.num_rows
        elif path.suffix == ".csv":
            rows = pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item()
        files.append(
            {
                "name": path.name,
                "link": path.absolute().as_uri(),
                "rows": rows,
                "size": human_size(path.stat().st_size),
            }
        )
    return files


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def publish_artifacts(
    summary: dict[str, Any], folder: Path, params: RunParameters, published: Path | None
) -> None:
    """The run's summary and out-of-stock artifacts: a courtesy, each waited for a few seconds
    at most (`allocation.flows.courtesy`); the second is not tried when the first got no
    answer."""
    suffix = "-dry-run" if params.dry_run else ""
    markdown = summary_markdown(summary, folder, params, published)
    day = summary["business_date"]
    if not best_effort(
        lambda: create_markdown_artifact(
            markdown,
            key=SUMMARY_KEY + suffix,
            description=f"Night {day}: counts, rejected files, outputs",
        ),
        "Summary artifact not created",
    ):
        return
    table = top_out_of_stock(folder, 50).with_columns(pl.col("next_eta").cast(pl.String))
    best_effort(
        lambda: create_table_artifact(
            table=table.to_dicts(),
            key=OUT_OF_STOCK_KEY + suffix,
            description=f"Out-of-stock skus after night {day}",
        ),
        "Out-of-stock artifact not created",
    )


def top_out_of_stock(folder: Path, limit: int = 20) -> pl.DataFrame:
    """Skus with the most open demand, for the run's artifact."""
    # Scanned, not read: only the grouped skus are held, not every open line.
    return (
        pl.scan_parquet(folder / "out_of_stock.parquet")
        .group_by("sku")
        .agg(
            open_lines=pl.len(),
            open_qty=pl.col("qty").sum(),
            available=pl.col("available").first(),
            next_eta=pl.col("next_eta").min(),
        )
        .sort(["open_qty", "sku"], descending=[True, False])
        .head(limit)
        .collect()
    )
