"""What a run shows in the Prefect UI: a markdown summary and a table of out-of-stock skus,
under stable keys so the UI keeps their history night after night."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from allocation.flows.courtesy import best_effort
from allocation.service.night_checks import CheckResult, NightStopped
from allocation.service.rollback import rollbacks_before
from allocation.settings import RunParameters

SUMMARY_KEY = "nightly-allocation-summary"
REJECTED_SHOWN = 10  # rejected rows shown in the summary
ROLLED_BACK_TAG = "rolled-back"  # the tag `allocation rollback` puts on the runs it undid
OUT_OF_STOCK_KEY = "nightly-out-of-stock-skus"


def summary_markdown(
    summary: dict[str, Any], folder: Path, params: RunParameters, published: Path | None
) -> str:
    orders, batches, files = summary["orders"], summary["batches"], summary["files"]
    updates = ", ".join(
        f"{name.replace('_', ' ')} {count:,}" for name, count in batches["updated"].items()
    )
    lines = [
        f"# Night {summary['business_date']}{' (dry run)' if params.dry_run else ''}",
        "",
        *checks_markdown(summary.get("checks", [])),
        "| | received | accepted | duplicate | rejected |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {c['received']:,} | {c['accepted']:,} | {c['duplicate']:,} "
            f"| {c['rejected']:,} |"
            for name, c in (("orders", orders), ("batches", batches))
        ),
        "",
        f"- **Allocated:** {summary['allocated']:,}",
        f"- **Out of stock (open lines):** {summary['out_of_stock']:,}",
        f"- **Batch updates:** {updates}; lines released {summary['lines_released']:,}, "
        f"re-placed {summary['lines_replaced']:,}",
        f"- **Files:** {files['received']:,} read, {files['rejected']:,} rejected, "
        f"{files['skipped_already_ingested']:,} already committed for this date",
    ]
    for rejected in files["rejected_files"]:
        lines.append(f"  - rejected `{rejected['file']}`: {rejected['reason']}")
    for entry in files.get("not_read", []):
        lines.append(f"  - {entry['status']} `{entry['file']}`: {entry['reason']}")
    lines += [f"- **Warning:** {warning}" for warning in summary.get("warnings", [])]
    lines += trend_markdown(summary.get("trend", []))
    if not params.dry_run:
        lines += rollback_lines(rollbacks_before(params, params.business_date))
    top = top_out_of_stock(folder, 10)
    if top.height:
        lines += ["", "## Top out-of-stock skus", "", "| sku | open lines | open qty | available |"]
        lines.append("|---|---:|---:|---:|")
        lines += [
            f"| {r['sku']} | {r['open_lines']:,} | {r['open_qty']:,} | {r['available']:,} |"
            for r in top.iter_rows(named=True)
        ]
    lines += first_rejected_rows(folder, REJECTED_SHOWN)
    # No file:// links: a browser does not open them from a web page, so the place is said in
    # words (the worker's host and the folder), to copy.
    lines += [
        "",
        "## Outputs",
        "",
        f"- reports: on the worker's machine `{socket.gethostname()}`, in the folder "
        f"`{folder.absolute()}`",
        "",
    ]
    lines += ["| report file | rows | size |", "|---|---:|---:|"]
    lines += [
        f"| {f['name']} | {'' if f['rows'] is None else format(f['rows'], ',')} | {f['size']} |"
        for f in report_files(folder)
    ]
    lines.append("")
    lines.append(
        f"- warehouse: `{params.warehouse}`"
        if published
        else "- warehouse: not published (dry run)"
    )
    return "\n".join(lines) + "\n"


RESULT_MARKS = {"passed": "passed", "failed": "**FAILED**", "accepted": "failed, accepted"}


def checks_markdown(checks: list[dict[str, Any]]) -> list[str]:
    """The night's checks as a table (check, figure, threshold, level, result), failures first."""
    if not checks:
        return []
    order = {"failed": 0, "accepted": 1, "passed": 2, "skipped": 3}
    ranked = sorted(checks, key=lambda c: order.get(c["result"], 9))
    lines = [
        "## Checks",
        "",
        "| check | figure | threshold | level | result | detail |",
        "|---|---:|---:|---|---|---|",
    ]
    for c in ranked:
        figure = "" if c["figure"] is None else f"{c['figure']:.4g}"
        mark = RESULT_MARKS.get(c["result"], c["result"])
        detail = str(c["detail"]).replace("|", "\\|")
        lines.append(
            f"| {c['check']} | {figure} | {c['threshold']:g} | {c['level']} | {mark} | {detail} |"
        )
    return [*lines, ""]


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int | None]) -> str:
    """One Unicode block per value, scaled from the column's lowest to its highest (a blank
    where a night has no value)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = high - low
    return "".join(
        " "
        if v is None
        else SPARKS[0 if span == 0 else round((v - low) / span * (len(SPARKS) - 1))]
        for v in values
    )


TREND_HEADINGS = {
    "received": "received",
    "accepted": "accepted",
    "rejected": "rejected",
    "allocated": "allocated",
    "out_of_stock": "out of stock",
    "lines_waiting": "lines waiting",
    "oldest_wait_days": "oldest wait (days)",
}


def trend_markdown(trend: list[dict[str, Any]]) -> list[str]:
    """The last nights (oldest first) as a table, a sparkline per column on top."""
    if not trend:
        return []
    columns = list(TREND_HEADINGS)
    lines = [
        "",
        f"## Last {len(trend)} night(s)",
        "",
        "| night | " + " | ".join(TREND_HEADINGS[c] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
        "| trend | " + " | ".join(f"`{sparkline([n[c] for n in trend])}`" for c in columns) + " |",
    ]
    for night in trend:
        cells = ("" if night[c] is None else str(night[c]) for c in columns)
        lines.append(f"| {night['business_date']} | " + " | ".join(cells) + " |")
    return lines


def stopped_markdown(params: RunParameters, stopped: NightStopped) -> str:
    """What a stopped night shows: the line, then every check's result."""
    rows = [_result_row(r) for r in stopped.results]
    return "\n".join(
        [
            f"# Night {params.business_date}: stopped by a check, nothing committed",
            "",
            str(stopped),
            "",
            *checks_markdown(rows),
        ]
    )


def _result_row(result: CheckResult) -> dict[str, Any]:
    return {
        "check": result.check,
        "level": result.level,
        "figure": result.figure,
        "threshold": result.threshold,
        "result": result.result,
        "detail": result.detail,
    }


def publish_stopped_artifact(params: RunParameters, stopped: NightStopped) -> None:
    create_markdown_artifact(
        stopped_markdown(params, stopped),
        key=SUMMARY_KEY,
        description=f"Night {params.business_date}: stopped by a check",
    )


def rollback_lines(records: list[dict[str, Any]]) -> list[str]:
    """One line per rollback made since the previous night: the nights it undid are no longer
    in the warehouse, though their runs stay Completed in Prefect."""
    out = []
    for record in records:
        nights = sorted({run["business_date"] for run in record.get("undone", [])})
        undone = ", ".join(nights) if nights else "no committed night"
        out.append(
            f"- **Rolled back** at {record['at'][:19].replace('T', ' ')} UTC to night "
            f"{record['to']}: undid {undone} (their runs are tagged `{ROLLED_BACK_TAG}` in "
            "Prefect; their reports were moved to "
            f"`{record.get('moved_aside') or 'nowhere: there were none'}`)"
        )
    return out


def first_rejected_rows(folder: Path, limit: int) -> list[str]:
    """The first `limit` rows of the night's rejected.csv (reason, file, line) as a markdown
    section, so the reasons are readable in the UI: the file itself is on the worker's disk."""
    path = folder / "rejected.csv"
    if not path.is_file():
        return []
    scan = pl.scan_csv(path, infer_schema=False)
    total = scan.select(pl.len()).collect().item()
    if not total:
        return []
    first = scan.select("reason", "source_file", "line").head(limit).collect()
    shown = f"the first {first.height:,} of {total:,}" if total > first.height else "all"
    out = [
        "",
        f"## Rejected rows ({shown}; every one in rejected.csv)",
        "",
        "| reason | file | line |",
        "|---|---|---:|",
    ]
    out += [
        f"| {_cell(reason)} | {_cell(source)} | {line or 'whole file'} |"
        for reason, source, line in first.iter_rows()
    ]
    return out


def _cell(text: str | None) -> str:
    """A value as one markdown table cell: pipes escaped, line breaks as spaces."""
    text = " ".join(str(text or "").split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def report_files(folder: Path) -> list[dict[str, Any]]:
    """Each file of the night's report folder: name, data rows (None for
    summary.json) and size. Rows come from a Parquet file's footer; a CSV report has the rows
    of its Parquet twin (the same rows, written together), read from that footer too: counting
    the CSV itself would hold the whole file in the run's memory. A CSV without a twin is
    counted (quoted line breaks are one row)."""
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
