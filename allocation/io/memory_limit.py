"""A connection's DuckDB memory limit lowered for the statements that stream a sorted result
out (`DuckDBLimits.streaming`, `DuckDBLimits.sorting`), then set back to the night's; and
telling DuckDB's out-of-memory error, however it is carried (`is_out_of_memory`).

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

from allocation.io.error_chain import error_chain
from allocation.settings.duckdb_limits import DuckDBLimits, memory_size_bytes

log = logging.getLogger(__name__)


#: How DuckDB words running out of its memory limit; a stream read through Arrow carries it in
#: an OSError rather than DuckDB's OutOfMemoryException.
_OUT_OF_MEMORY = "Out of Memory Error"


def is_out_of_memory(error: BaseException | None) -> bool:
    """True when `error`, or an error it was raised from, is DuckDB running out of its memory
    limit."""
    return any(
        isinstance(one, duckdb.OutOfMemoryException) or _OUT_OF_MEMORY in str(one)
        for one in error_chain(error)
    )


@contextmanager
def streaming_memory(
    con: duckdb.DuckDBPyConnection,
    limits: DuckDBLimits | None,
    lowered: DuckDBLimits | None = None,
) -> Iterator[None]:
    """Runs the block with `con`'s memory limit at `lowered` (default `limits.streaming()`),
    then sets it back to `limits.memory_limit` (the limit the connection was opened with).
    `limits` None: the connection was opened without limits, and keeps DuckDB's own."""
    if limits is None:
        yield
        return
    lowered_limit = (lowered or limits.streaming()).memory_limit
    if memory_size_bytes(lowered_limit) >= memory_size_bytes(limits.memory_limit):
        yield
        return
    try:
        con.execute("SET memory_limit = ?", [lowered_limit])
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
