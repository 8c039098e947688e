"""Writes the analysts' copy of the warehouse in a storage version older DuckDB clients read.

The pipeline works in the newest storage format of its own DuckDB (2.x); a DuckDB 1.x client
refuses such a file ("Trying to read a database file with version number 69, but we can only read
versions between 64 and 68"). `COPY FROM DATABASE` into a file attached with `STORAGE_VERSION`
rewrites every table, view, index, sequence, type, macro and `COMMENT ON` text in the older
format. Whatever the pipeline's database holds reaches the copy: afterwards both catalogs and every
table's row count are compared, and a copy that differs is refused rather than published.

The oldest storage version that holds the warehouse is v1.1.0 (read by DuckDB 1.1.0 and newer):
with v1.0.0 or older, DuckDB 1.0 cannot read the PRIMARY KEY indexes of `runs` and `batches`
("Failed to deserialize: expected end of object, but found field id: 103"). See docs/analysts.md.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import duckdb

from allocation.settings import BYTE_COPY

log = logging.getLogger(__name__)

# DuckDB's buffer pool otherwise keeps what it read and wrote, up to most of the machine's memory,
# in the night's own process: with this cap the copy adds ~120-250 MiB at 1M-3M lines instead of
# growing with the warehouse (docs/benchmarks.md). 3M primary keys still fit (64 MB does not).
MEMORY_LIMIT = "256MB"


class CopyError(RuntimeError):
    """The compatible copy differs from the working database; it is not published."""


def write_copy(source: Path, target: Path, storage_version: str) -> None:
    """Writes `source` (a closed, checkpointed DuckDB file) as the new file `target`."""
    if storage_version == BYTE_COPY:
        shutil.copyfile(source, target)
        return
    try:
        lost = _rewrite(source, target, storage_version, MEMORY_LIMIT)
    except duckdb.OutOfMemoryException:
        # Only the primary-key indexes need memory in one piece: a warehouse with millions of
        # batches gets DuckDB's own limit rather than no publish.
        log.warning("The analysts' copy needs more than %s: copying again without it", MEMORY_LIMIT)
        for leftover in (target, target.with_name(target.name + ".wal")):
            leftover.unlink(missing_ok=True)
        lost = _rewrite(source, target, storage_version, None)
    wal = target.with_name(target.name + ".wal")
    if wal.exists():  # the rename would leave it behind: the copy would be incomplete
        raise CopyError(f"the copy {target} kept a write-ahead log after its checkpoint")
    if lost:
        raise CopyError(
            f"the copy in storage version {storage_version} differs from the working database "
            f"({'; '.join(lost[:5])}): set ALLOCATION_WAREHOUSE_STORAGE_VERSION to a newer "
            "version (or latest)"
        )


def _rewrite(
    source: Path, target: Path, storage_version: str, memory_limit: str | None
) -> list[str]:
    """The copy itself; returns what the copy lacks (or has in excess) against the source."""
    # An in-memory session: it opens neither file through DuckDB's per-path cache; anything it
    # spills goes beside the target, and goes with it.
    spill = target.with_name(target.name + ".spill")
    config: dict[str, str | bool | int | float | list[str]] = {"temp_directory": str(spill)}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(":memory:", config=config)
    try:
        con.execute("ATTACH ? AS working (READ_ONLY)", [str(source)])
        con.execute("ATTACH ? AS published (STORAGE_VERSION ?)", [str(target), storage_version])
        _copy_database(con)
        con.execute("CHECKPOINT published")
        lost = _differences(con)
        con.execute("DETACH published")
        return lost
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _copy_database(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("COPY FROM DATABASE working TO published")


# Every object analysts can see, with its comment; columns with their type, tables with rows.
_INVENTORY = """
SELECT 'schema ' || schema_name, coalesce(comment, '')
FROM duckdb_schemas() WHERE database_name = $db AND NOT internal
UNION ALL
SELECT 'table ' || schema_name || '.' || table_name, coalesce(comment, '')
FROM duckdb_tables() WHERE database_name = $db
UNION ALL
SELECT 'view ' || schema_name || '.' || view_name, coalesce(comment, '')
FROM duckdb_views() WHERE database_name = $db AND NOT internal
UNION ALL
SELECT 'column ' || schema_name || '.' || table_name || '.' || column_name || ' ' || data_type,
       coalesce(comment, '') || ' default ' || coalesce(column_default, '-')
FROM duckdb_columns() WHERE database_name = $db
UNION ALL
SELECT 'constraint ' || schema_name || '.' || table_name || ' ' || constraint_type,
       constraint_text
FROM duckdb_constraints() WHERE database_name = $db
UNION ALL
SELECT 'index ' || schema_name || '.' || index_name, coalesce(comment, '')
FROM duckdb_indexes() WHERE database_name = $db
UNION ALL
SELECT 'sequence ' || schema_name || '.' || sequence_name, coalesce(comment, '')
FROM duckdb_sequences() WHERE database_name = $db
UNION ALL
SELECT 'type ' || schema_name || '.' || type_name, coalesce(comment, '')
FROM duckdb_types() WHERE database_name = $db AND NOT internal
UNION ALL
SELECT 'macro ' || schema_name || '.' || function_name, coalesce(comment, '')
FROM duckdb_functions() WHERE database_name = $db AND NOT internal
"""


def _inventory(con: duckdb.DuckDBPyConnection, db: str) -> list[tuple[str, str]]:
    found = con.sql(_INVENTORY, params={"db": db}).fetchall()
    tables = con.sql(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?", params=[db]
    ).fetchall()
    for schema, table in tables:
        name = ".".join(_identifier(part) for part in (db, schema, table))
        rows = con.sql("SELECT count(*) FROM query_table(?)", params=[name]).fetchall()[0][0]
        found.append((f"rows {schema}.{table}", str(rows)))
    return sorted(found)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _differences(con: duckdb.DuckDBPyConnection) -> list[str]:
    working = _inventory(con, "working")
    published = set(_inventory(con, "published"))
    missing = [
        f"{what} ({detail or 'no comment'})"
        for what, detail in working
        if (what, detail) not in published
    ]
    extra = published - set(working)
    return missing + [f"unexpected {what}" for what, _ in sorted(extra)]
