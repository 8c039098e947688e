"""After `allocation rollback`, the undone nights must not look current in Prefect: their runs
stay Completed (a finished run's state cannot honestly change), so each gets the tag
`rolled-back` (seen in the run list and on the run's page) and a markdown artifact saying when
and to which night it was rolled back. Best effort: the rollback itself is done and stays done
whatever Prefect says; the CLI prints one line either way.

A run is found by its id: a deployment night's run id in the warehouse is its Prefect flow run
id. Runs made by `allocation run` without a server (Prefect's temporary one) are not on the
server and are skipped.
"""

from __future__ import annotations

import os
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.actions import ArtifactCreate
from prefect.exceptions import ObjectNotFound

from allocation.flows.artifacts import ROLLED_BACK_TAG
from allocation.service.rollback import RolledBack

ROLLED_BACK_KEY = "nightly-rolled-back"


def mark_rolled_back(done: RolledBack) -> str:
    """Tags the undone runs on the Prefect server of PREFECT_API_URL; returns a line to print."""
    if not done.undone:
        return "Prefect: no committed night was undone, nothing to mark"
    if not os.environ.get("PREFECT_API_URL", "").strip():
        return (
            "Prefect: not told (PREFECT_API_URL is not set); the undone runs still look current "
            "there: export PREFECT_API_URL and rerun this rollback, or tag them "
            f"{ROLLED_BACK_TAG} in the UI"
        )
    marked: list[str] = []
    try:
        with get_client(sync_client=True) as client:
            for run in done.undone:
                try:
                    flow_run = client.read_flow_run(UUID(run.run_id))
                except (ObjectNotFound, ValueError):
                    continue
                client.update_flow_run(
                    flow_run.id, tags=sorted({*(flow_run.tags or []), ROLLED_BACK_TAG})
                )
                client.create_artifact(
                    ArtifactCreate(
                        key=ROLLED_BACK_KEY,
                        type="markdown",
                        flow_run_id=flow_run.id,
                        description=f"Night {run.business_date} rolled back",
                        data=(
                            f"# Night {run.business_date} rolled back\n\n"
                            f"`allocation rollback --to {done.business_date}` at "
                            f"{done.at:%Y-%m-%d %H:%M:%S} UTC undid this night: its allocations "
                            "are no longer in the warehouse, and its reports were moved under "
                            "the outbox's rolled-back/ folder. Run the night again to redo it.\n"
                        ),
                    )
                )
                marked.append(flow_run.name)
    except Exception as error:  # the rollback is done; only the marks are missing
        return (
            f"Prefect: could not mark the undone runs ({type(error).__name__}: {error}); "
            f"tag them {ROLLED_BACK_TAG} in the UI"
        )
    if not marked:
        return "Prefect: none of the undone runs is on this server (runs of `allocation run`)"
    return f"Prefect: tagged {len(marked)} run(s) {ROLLED_BACK_TAG}: {', '.join(marked)}"
