"""Nightly allocation pipeline: order lines to batches of stock.

Importing the package sets safe defaults for everything we start: Prefect never phones home,
its temporary server gets time to start on a small machine, and our own log lines reach the
Prefect UI (an explicit environment always wins).
"""

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: Prefect telemetry and analytics off: the one place this environment is written for Python.
#: Everything started reads it from here (this package, the tests' and benchmarks' child
#: processes and servers). Not Python, the Makefile and prefect.yaml's work pool repeat it;
#: tests/integration/test_telemetry_off.py keeps them in step with this one.
TELEMETRY_OFF: Final[Mapping[str, str]] = MappingProxyType(
    {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
)

for _name, _value in {
    **TELEMETRY_OFF,
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "allocation",
    # Service functions also run outside flow runs (tests, `allocation publish`): log locally.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}.items():
    os.environ.setdefault(_name, _value)
