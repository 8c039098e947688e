"""A connection's DuckDB memory limit lowered for the statements that stream a sorted result
out (`DuckDBLimits.streaming`), then set back to the night's.

DuckDB's limit belongs to the database, not to one statement, so it is set (`SET memory_limit`)
before such a statement and set back after it, whatever happened in between. DuckDB frees what
it can (its cached blocks, spilled temporary data) to fit the lower limit; if it cannot, the
night keeps its own limit and goes on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from allocation.settings.duckdb_limits import DuckDBLimits

log = logging.getLogger(__name__)


@contextmanager
def streaming_memory(con: duckdb.DuckDBPyConnection, limits: DuckDBLimits | None) -> Iterator[None]:
    """Runs the block with `con`'s memory limit at `limits.streaming()`, then sets it back to
    `limits.memory_limit` (the limit the connection was opened with). `None`: the connection
    was opened without limits, and keeps DuckDB's own."""
    if limits is None:
        yield
        return
    lowered = limits.streaming().memory_limit
    try:
        con.execute("SET memory_limit = ?", [lowered])
    except duckdb.Error as error:
        log.debug("Kept the memory limit %s: %s", limits.memory_limit, error)
        yield
        return
    try:
        yield
    except BaseException:
        # The error that ended the block is the one to report: a connection it left refusing
        # every statement until it is rolled back refuses this one too, and is not used again.
        with contextlib.suppress(duckdb.Error):
            con.execute("SET memory_limit = ?", [limits.memory_limit])
        raise
    con.execute("SET memory_limit = ?", [limits.memory_limit])
