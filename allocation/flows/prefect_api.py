"""Telling a Prefect API that cannot be reached from a night that failed.

The `allocation` command runs the flow in its own process against a Prefect API: the server in
PREFECT_API_URL, or a temporary one it starts with its database under PREFECT_HOME. When that
API refuses, resets or answers 500, the night's own work goes on (it never waits on the API:
`allocation.flows.courtesy`), but the calls that record the run's state fail. These helpers
name such failures in one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import get_current_settings

from allocation.io.error_chain import error_chain

#: Free space PREFECT_HOME needs for Prefect's temporary server to start and record a night
#: (its SQLite database grows by a few MB per night; SQLite fails "database or disk is full").
PREFECT_HOME_MIN_FREE = 64 * 1024 * 1024


class PrefectHomeFull(RuntimeError):
    """Prefect's temporary server cannot start or write: PREFECT_HOME's disk is full."""


def check_prefect_home(
    statvfs: Callable[[Path], os.statvfs_result] = os.statvfs,
) -> None:
    """Without PREFECT_API_URL the command starts Prefect's temporary server, whose database
    lives in PREFECT_HOME. On a full disk it fails with "database or disk is full" buried in
    thousands of log lines after minutes of retries: refuse up front, in one line, instead."""
    settings = get_current_settings()
    if settings.api.url:
        return
    home = Path(settings.home).expanduser()
    folder = home
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        info = statvfs(folder)
    except OSError:
        return  # cannot tell: Prefect says what it finds
    free = info.f_bavail * info.f_frsize
    if free < PREFECT_HOME_MIN_FREE:
        raise PrefectHomeFull(
            f"PREFECT_HOME {home} is on a full disk ({free // (1024 * 1024)} MiB free, Prefect's "
            f"temporary server needs {PREFECT_HOME_MIN_FREE // (1024 * 1024)} MiB for its "
            "database): free space there, or set PREFECT_HOME to a folder on another disk; "
            "nothing was run"
        )


def is_api_error(error: BaseException) -> bool:
    """Whether `error` (or what raised it) is the Prefect API failing: a connection refused,
    reset or timed out, or a 5xx answer."""
    for one in error_chain(error):
        if isinstance(one, httpx.TransportError):
            return True
        if isinstance(one, PrefectHTTPStatusError | httpx.HTTPStatusError):
            return one.response.status_code >= 500
    return False


def describe_error(error: BaseException) -> str:
    """`error` in one line: its kind and its first line (an HTTP error's URL included)."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def unreachable(error: BaseException) -> str:
    url = get_current_settings().api.url or "Prefect's temporary server"
    return (
        f"the Prefect API ({url}) failed before the night completed ({describe_error(error)}): "
        "start or fix the server, then run the same night again (a rerun converges whether or "
        "not this one committed)"
    )
