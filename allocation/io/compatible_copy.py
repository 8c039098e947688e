"""The storage version of the pipeline's working state, which is the analysts' one.

A DuckDB 1.x client refuses a file in DuckDB 2.x's newest storage format ("Trying to read a
database file with version number 69, but we can only read versions between 64 and 68"). So the
working state is created in the analysts' storage version (`ALLOCATION_WAREHOUSE_STORAGE_VERSION`,
v1.1.0 by default) and stays in it: DuckDB keeps writing a file in the version it was created in.
Publishing is then a byte copy. A working state in another version (made by a release before
this one, or before the setting changed) is converted once: `COPY FROM DATABASE` into a new file
attached with `STORAGE_VERSION` rewrites every table, view, index, sequence, type, macro and
`COMMENT ON` text; both catalogs and every table's row count are compared, and a copy that
differs is refused rather than put in the working state's place.

The oldest storage version that holds the warehouse is v1.1.0 (read by DuckDB 1.1.0 and newer):
with v1.0.0 or older, DuckDB 1.0 cannot read the PRIMARY KEY indexes of `runs` and `batches`
("Failed to deserialize: expected end of object, but found field id: 103"). See docs/analysts.md.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import duckdb

from allocation.faults import crash_point
from allocation.io.files import fsync_dir, fsync_file, remove_leftovers
from allocation.settings.storage_version import BYTE_COPY

log = logging.getLogger(__name__)

# DuckDB's buffer pool otherwise keeps what it read and wrote, up to most of the machine's memory,
# in the night's own process: with this cap the copy adds a bounded amount instead of growing
# with the warehouse, and the primary keys of a large warehouse still fit (the measurements are
# in docs/benchmarks.md, "Publishing for DuckDB 1.x clients").
MEMORY_LIMIT = "256MB"


class CopyError(RuntimeError):
    """The compatible copy differs from the working database; it is not published."""


def storage_tag(path: Path) -> str:
    """DuckDB's name for the storage version the DuckDB file at `path` is written in: the
    `storage_version` tag of `duckdb_databases()`, the oldest DuckDB release that reads it
    (`v1.0.0+` for v1.1.0, `v1.5.0+`, `v2.0.0+` for the newest). Reads the header and
    catalog only; the file must not be open for writing."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("ATTACH ? AS probed (READ_ONLY)", [str(path)])
        tags = con.sql(
            "SELECT tags FROM duckdb_databases() WHERE database_name = 'probed'"
        ).fetchall()[0][0]
    finally:
        con.close()
    return str(tags.get("storage_version", "")) if isinstance(tags, dict) else ""


_TAGS: dict[str, str] = {}  # storage version asked for -> the tag of a file created in it


def tag_for(storage_version: str, scratch: Path) -> str:
    """The tag a file DuckDB creates in `storage_version` gets (asked of DuckDB once per
    version and process, with a small file made and removed in the folder `scratch`)."""
    if storage_version not in _TAGS:
        probe = scratch / f".storage-probe-{os.getpid()}.duckdb"
        probe.unlink(missing_ok=True)
        try:
            con = duckdb.connect(":memory:")
            try:
                con.execute("ATTACH ? AS probe (STORAGE_VERSION ?)", [str(probe), storage_version])
                con.execute("DETACH probe")
            finally:
                con.close()
            _TAGS[storage_version] = storage_tag(probe)
        finally:
            for leftover in (probe, probe.with_name(probe.name + ".wal")):
                leftover.unlink(missing_ok=True)
    return _TAGS[storage_version]


def remove_leftovers_of(state_db: Path) -> None:
    """Removes what a conversion or a probe killed half-way left beside `state_db`."""
    remove_leftovers(state_db.parent, f".{state_db.name}.convert-*")
    remove_leftovers(state_db.parent, ".storage-probe-*.duckdb*")


def in_storage_version(path: Path, storage_version: str) -> bool:
    """Whether the closed DuckDB file `path` is in `storage_version` (`pipeline`: any)."""
    if storage_version == BYTE_COPY:
        return True
    return storage_tag(path) == tag_for(storage_version, path.parent)


def convert(state_db: Path, storage_version: str) -> None:
    """Puts the closed, checkpointed working state `state_db` in `storage_version`: a new file
    written with the checked copy below, then renamed over it (a kill leaves the old file or
    the new one; `remove_leftovers_of` removes the half-written one)."""
    folder = state_db.parent
    tmp = folder / f".{state_db.name}.convert-{os.getpid()}"
    try:
        write_copy(state_db, tmp, storage_version)
        fsync_file(tmp)
        crash_point("while-converting")
        os.replace(tmp, state_db)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    if not in_storage_version(state_db, storage_version):  # DuckDB did not write what it was asked
        raise CopyError(
            f"{state_db} was rewritten in storage version {storage_version} but DuckDB tags it "
            f"{storage_tag(state_db)}"
        )


def write_copy(source: Path, target: Path, storage_version: str) -> None:
    """Writes `source` (a closed, checkpointed DuckDB file) as the new file `target` in
    `storage_version`, and checks that it holds everything `source` holds."""
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
