"""The DuckDB storage version of the analysts' file (`ALLOCATION_WAREHOUSE_STORAGE_VERSION`):
which versions the warehouse allows, and the one a new working state is created in."""

from __future__ import annotations

import functools
import re

import duckdb

# The analysts' file: DuckDB 1.0 and older cannot read the warehouse's primary-key indexes when
# written in their storage versions, so v1.1.0 (DuckDB 1.1.0 and newer) is the oldest that holds it.
DEFAULT_STORAGE_VERSION = "v1.1.0"
OLDEST_STORAGE_VERSION = (1, 1, 0)
# Publishes the working file byte for byte: the pipeline's own format, fastest, DuckDB 2.x only.
BYTE_COPY = "pipeline"
NEWEST = "latest"
STORAGE_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")


def working_storage_version(published: str) -> str | None:
    """The storage version a new working state is created in: the analysts' one, so that
    publishing it is a byte copy; None (DuckDB's newest) for `pipeline`."""
    return None if published == BYTE_COPY else published


def parse_storage_version(text: str) -> str:
    """`v1.1.0` (or newer), `latest` or `pipeline`; anything else raises ValueError saying why."""
    value = text.strip().lower()
    if value in (BYTE_COPY, NEWEST):
        return value
    match = STORAGE_VERSION.match(value)
    if not match:
        raise ValueError(
            f"{text!r} is not a DuckDB storage version: use vMAJOR.MINOR.PATCH such as "
            f"{DEFAULT_STORAGE_VERSION} (the default), {NEWEST} or {BYTE_COPY}"
        )
    if tuple(int(part) for part in match.groups()) < OLDEST_STORAGE_VERSION:
        raise ValueError(
            f"{text!r} is older than the warehouse allows: DuckDB before 1.1 cannot read its "
            f"primary keys, so such a file would not open; use {DEFAULT_STORAGE_VERSION} or newer"
        )
    if not _duckdb_knows(value):
        raise ValueError(
            f"{text!r} is not a storage version DuckDB {duckdb.__version__} knows: use a released "
            f"version such as {DEFAULT_STORAGE_VERSION}, or {NEWEST}"
        )
    return value


@functools.cache
def _duckdb_knows(storage_version: str) -> bool:
    """Whether this process's DuckDB can write `storage_version`. Asked once per version and
    process: the settings are read at every step, and each probe opens a DuckDB database."""
    probe = duckdb.connect(":memory:")
    try:
        probe.execute("ATTACH ':memory:' AS probe (STORAGE_VERSION ?)", [storage_version])
    except duckdb.InvalidInputException:
        return False
    finally:
        probe.close()
    return True
