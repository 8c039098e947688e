"""A night that committed while warn-level checks failed says so to Prefect: the event
`allocation.night.warned` for its flow run, with the failed checks in the payload. The automation
`automations/nightly-warned.yaml` turns it into the quieter alert (a stopped night is Failed and
alerted by nightly-failed.yaml). Prefect adds the flow and deployment as related resources from
the run's context, which the automation matches on."""

from __future__ import annotations

from typing import Any

from prefect import runtime
from prefect.events import emit_event

WARNED_EVENT = "allocation.night.warned"


def warned_checks(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        check
        for check in summary.get("checks", [])
        if check["result"] == "failed" and check["level"] == "warn"
    ]


def warning_line(checks: list[dict[str, Any]]) -> str:
    """`out_of_stock_jump 0.4 (threshold 0.25): 60.0% of 10 line(s) left out of stock, ...`."""
    return "; ".join(
        f"{c['check']} {c['figure']:.4g} (threshold {c['threshold']:g}): {c['detail']}"
        for c in checks
    )


def announce_warnings(summary: dict[str, Any], dry_run: bool) -> str | None:
    """Emits the event when warn-level checks failed (not for a dry run); returns its line."""
    warned = warned_checks(summary)
    if not warned or dry_run or runtime.flow_run.id is None:
        return None
    message = warning_line(warned)
    emit_event(
        event=WARNED_EVENT,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{runtime.flow_run.id}",
            "prefect.resource.name": str(runtime.flow_run.name),
        },
        payload={
            "business_date": summary["business_date"],
            "message": message,
            "checks": [c["check"] for c in warned],
        },
    )
    return message
