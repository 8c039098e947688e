"""A deployment run with a parameter the flow does not take is refused in one line.

`enforce_parameter_schema: true` has the server check each known parameter's type, but Prefect
stores the flow's parameter schema without `additionalProperties: false`, so a run created with
`{"unknown": "x"}` was accepted and then Crashed in the flow process with a SignatureMismatchError
traceback (and, as a crash, was retried once, crashing again). This function runs as the last
pull step of the deployment (`prefect.yaml`), in the flow run's own process before Prefect loads
the flow: it ends such a run Failed, its message naming the unknown and the known names, and the
failure alert fires.
"""

from __future__ import annotations

import inspect
import os
import sys
from uuid import UUID

from prefect import get_client
from prefect.states import Failed


def flow_parameter_names() -> list[str]:
    from allocation.flows.nightly import nightly_allocation

    return list(inspect.signature(nightly_allocation.fn).parameters)


def unknown_names_message(given: list[str], known: list[str]) -> str | None:
    """The one line refusing the names of `given` that are not in `known`, or None."""
    unknown = [name for name in given if name not in known]
    if not unknown:
        return None
    return (
        f"unknown parameter(s) {', '.join(repr(name) for name in unknown)}: the night takes "
        f"{', '.join(known)}; create the run again without the unknown name(s)"
    )


def refuse_unknown_parameters() -> dict[str, str]:
    """Pull step: fails this flow run, before the flow is loaded, if it was given a parameter
    the flow does not take. A run outside a deployment has nothing to check."""
    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID")
    if not flow_run_id:
        return {}
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        message = unknown_names_message(list(run.parameters or {}), flow_parameter_names())
        if message is None:
            return {}
        client.set_flow_run_state(run.id, Failed(message=message), force=True)
    print(f"allocation: {message}", file=sys.stderr)
    raise SystemExit(0)  # the run's state says it all: nothing for the worker to add
