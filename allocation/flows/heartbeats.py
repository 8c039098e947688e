"""Flow-run heartbeats: sent by the deployment's runs, not by a night run from the command line.

A flow run's heartbeats (`prefect.flow-run.heartbeat` events) are what
`automations/crash-silent-night.yaml` watches, and it watches the deployment's runs only
(prefect.yaml sets their frequency, 30 s). A night run by `allocation run` has no reader for
them, and Prefect 3.9's heartbeat thread sleeps in steps of one second: the flow run's end
waited for the step under way, up to a second of every command-line night, a fifth of a 1M-line
night's wall time on an idle machine.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import prefect.settings
from prefect.settings import temporary_settings

#: The environment variable that sets the heartbeat frequency (Prefect's setting
#: `flows.heartbeat_frequency`); its legacy name is honoured as well.
FREQUENCY_VARIABLES = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


def without_heartbeats() -> AbstractContextManager[object]:
    """A context in which flow runs send no heartbeats, unless the environment asks for them
    (an explicit setting always wins)."""
    if any(os.environ.get(name) for name in FREQUENCY_VARIABLES):
        return nullcontext()
    return temporary_settings(updates={prefect.settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
