"""What every DuckDB connection of a night may use: its memory limit
(`ALLOCATION_DUCKDB_MEMORY_LIMIT`) and the folder it spills to past it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: DuckDB's own memory for one night (its buffer pool: hash tables, sorts, temporary tables); past
#: it DuckDB spills to `temp_directory` on disk instead of growing. The default leaves room for
#: the allocator's processes beside DuckDB (docs/scaling.md; the measurements that chose it are
#: in docs/benchmarks.md).
DEFAULT_DUCKDB_MEMORY_LIMIT = "384MB"
DUCKDB_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class DuckDBLimits:
    """What every DuckDB connection of a night may use: `memory_limit` (DuckDB's size syntax,
    e.g. 512MB or 1GB) and the folder it spills to past it."""

    memory_limit: str
    temp_directory: Path

    def config(self) -> dict[str, str | bool | int | float | list[str]]:
        """The `duckdb.connect(config=...)` entries."""
        return {"memory_limit": self.memory_limit, "temp_directory": str(self.temp_directory)}

    def streaming(self) -> DuckDBLimits:
        """The limits of the statements that stream a sorted result out to Python: the
        decision's ordered integer columns and the reports. A `STREAMING_SHARE` of the night's
        memory, never less than `SMALLEST_DUCKDB_MEMORY_LIMIT` nor more than the night's.
        DuckDB's sort spills past its limit and streams back in order, so what it is not given
        costs little time; memory DuckDB holds stays held beside everything else the process
        holds at that moment, which is what sets the night's peak (docs/benchmarks.md, "Memory
        by step")."""
        night = memory_size_bytes(self.memory_limit)
        share = max(night * STREAMING_SHARE, memory_size_bytes(SMALLEST_DUCKDB_MEMORY_LIMIT))
        return DuckDBLimits(f"{int(min(share, night)) // 1_000_000}MB", self.temp_directory)

    def sorting(self, data_bytes: float) -> DuckDBLimits:
        """The limits of a streamed sort of `data_bytes` of rows (the decision's integer
        columns): the `streaming()` share while the data is small beside it, then a
        `SORTED_DATA_SHARE` of the data, never more than the night's limit. DuckDB merges its
        sorted runs a block of each at a time, and the runs grow in number with the data: a
        100M-line night's 2 GB of columns ran out of memory sorted in 128MB and sorted in
        384MB; 30M lines (0.6 GB) sorted in 128MB (docs/benchmarks.md, "Memory by step")."""
        night = memory_size_bytes(self.memory_limit)
        share = memory_size_bytes(self.streaming().memory_limit)
        budget = min(night, max(share, data_bytes * SORTED_DATA_SHARE))
        return DuckDBLimits(f"{int(budget) // 1_000_000}MB", self.temp_directory)


#: The smallest memory limit accepted: below it DuckDB failed even small nights (the
#: measurements are in docs/benchmarks.md). A bigger night may need more: running out names
#: the setting to raise (`allocation.service.night.naming_memory_limit`).
SMALLEST_DUCKDB_MEMORY_LIMIT = "64MB"
#: The share of the night's DuckDB memory a streamed sort gets (`DuckDBLimits.streaming`): a
#: third (128MB of the default 384MB), measured in docs/benchmarks.md ("Memory by step").
STREAMING_SHARE = 1 / 3
#: What a streamed sort gets of the data it sorts, once that is more than its `STREAMING_SHARE`
#: (`DuckDBLimits.sorting`): a quarter.
SORTED_DATA_SHARE = 1 / 4
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def memory_size_bytes(text: str) -> float:
    """Bytes in a DuckDB size (`KB` is 1000 bytes, `KiB` 1024, as DuckDB reads them)."""
    match = _SIZE_PARTS.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a memory size")
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


_SIZE_PARTS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")


def parse_memory_limit(text: str) -> str:
    """A DuckDB size such as `512MB` or `1GB`, at least `SMALLEST_DUCKDB_MEMORY_LIMIT`;
    anything else raises ValueError saying why."""
    if not DUCKDB_SIZE.match(text):
        raise ValueError(
            f"{text!r} is not a memory size DuckDB takes: use a number and a unit, such as "
            f"{DEFAULT_DUCKDB_MEMORY_LIMIT} or 1GB"
        )
    if memory_size_bytes(text) < memory_size_bytes(SMALLEST_DUCKDB_MEMORY_LIMIT):
        raise ValueError(
            f"{text.strip()!r} is too small for a night: DuckDB needs at least "
            f"{SMALLEST_DUCKDB_MEMORY_LIMIT} (the default is {DEFAULT_DUCKDB_MEMORY_LIMIT})"
        )
    return text.strip()
