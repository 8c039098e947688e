"""Nightly allocation pipeline: order lines to batches of stock.

Importing the package sets safe defaults for everything we start: Prefect never phones home,
its temporary server gets time to start on a small machine, and our own log lines reach the
Prefect UI (an explicit environment always wins).
"""

import os

for _name, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "allocation",
    # Service functions also run outside flow runs (tests, `allocation publish`): log locally.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
}.items():
    os.environ.setdefault(_name, _value)
