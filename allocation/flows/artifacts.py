"""What a run shows in the Prefect UI: a markdown summary and a table of out-of-stock skus,
under stable keys so the UI keeps their history night after night."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from allocation.services import top_out_of_stock
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
    lines += ["", "## Outputs", "", f"- reports: `{folder}`"]
    lines.append(
        f"- warehouse: `{params.warehouse}`"
        if published
        else "- warehouse: not published (dry run)"
    )
    return "\n".join(lines) + "\n"


def publish_artifacts(
    summary: dict[str, Any], folder: Path, params: RunParameters, published: Path | None
) -> None:
    suffix = "-dry-run" if params.dry_run else ""
    create_markdown_artifact(
        summary_markdown(summary, folder, params, published),
        key=SUMMARY_KEY + suffix,
        description=f"Night {summary['business_date']}: counts, rejected files, outputs",
    )
    table = top_out_of_stock(folder, 50).with_columns(pl.col("next_eta").cast(pl.String))
    create_table_artifact(
        table=table.to_dicts(),
        key=OUT_OF_STOCK_KEY + suffix,
        description=f"Out-of-stock skus after night {summary['business_date']}",
    )
