"""Which deployment, if any, runs the night's flow run: read from the run's own context.

`prefect.runtime.deployment.id` (Prefect 3.9) knows a deployment's run from a context variable
the engine sets, but for a flow called in-process (the `allocation` command) it finds none and
asks the API for the whole flow run, every time it is read: 20-85 ms a read on this machine, four
reads a night. The flow run in the run's context already says it (`deployment_id`, None for a
run no deployment made), so nothing is asked.
"""

from __future__ import annotations

from uuid import UUID

from prefect import runtime
from prefect.context import FlowRunContext


def deployment_id() -> UUID | None:
    """The id of the deployment that made this flow run, or None for a flow called in-process
    (the `allocation` command). Outside a flow run's context (a task on another worker), as
    `prefect.runtime.deployment.id` says it."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        found = runtime.deployment.id
        return UUID(str(found)) if found else None
    return context.flow_run.deployment_id
