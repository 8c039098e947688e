"""The pipeline's working state beside a warehouse: where the folder is and what lies in it,
each place named here once (every reader and writer of the state asks `StateFolder`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateFolder:
    """`data/warehouse.duckdb` -> `data/.warehouse.duckdb.pipeline/` (`root`): hidden, so
    analysts' tools pointed at the warehouse never open the working copy and block a night.
    It holds the working database, the writer lock, the note of a committing night, the copies
    of the published nights, the runs' load files, the Dask runner's exchange folder (unless
    `ALLOCATION_STAGING` says where), DuckDB's spill folder (unless
    `ALLOCATION_DUCKDB_TEMP_DIRECTORY` says where) and the rollbacks' record."""

    root: Path

    @classmethod
    def beside(cls, warehouse: Path) -> StateFolder:
        """The state folder of the warehouse file `warehouse`."""
        return cls(warehouse.parent / f".{warehouse.name}.pipeline")

    @property
    def state_db(self) -> Path:
        """The working database every night's transaction writes (`state.duckdb`)."""
        return self.root / "state.duckdb"

    @property
    def run_lock(self) -> Path:
        """The warehouse's one writer lock (`allocation.io.run_lock`)."""
        return self.root / "run.lock"

    @property
    def pending_note(self) -> Path:
        """The note a committing night leaves until it has published (`allocation.io.pending`)."""
        return self.root / "pending-night.json"

    @property
    def published(self) -> Path:
        """A copy of each night as it was published, the sources of `allocation rollback`
        (`allocation.io.publish.copy_for_rollbacks`)."""
        return self.root / "published"

    @property
    def load(self) -> Path:
        """The runs' load staging files (`allocation.io.staging`), one `RUN_ID.duckdb` each."""
        return self.root / "load"

    def load_file(self, run_id: str) -> Path:
        """The load staging file of run `run_id`."""
        return self.load / f"{run_id}.duckdb"

    @property
    def shard_exchange(self) -> Path:
        """The Dask runner's Parquet exchange folder when the `staging` setting is empty."""
        return self.root / "staging"

    @property
    def duckdb_temp(self) -> Path:
        """DuckDB's spill folder when the `duckdb_temp_directory` setting is empty."""
        return self.root / "duckdb-tmp"

    @property
    def rollbacks_log(self) -> Path:
        """One JSON line per `allocation rollback` (`allocation.service.rollback`)."""
        return self.root / "rollbacks.jsonl"


def real_warehouse_path(warehouse: Path) -> Path:
    """`warehouse` absolute, with every symlink and `..` resolved (the file need not exist)."""
    return warehouse.expanduser().absolute().resolve()


def same_warehouse_path(a: Path, b: Path) -> bool:
    """Whether two spellings of a warehouse path name one warehouse: the same real path, or
    state folders that are one folder (the same device and inode, e.g. through a bind mount)."""
    real_a, real_b = real_warehouse_path(a), real_warehouse_path(b)
    if real_a == real_b:
        return True
    try:
        return os.path.samefile(StateFolder.beside(real_a).root, StateFolder.beside(real_b).root)
    except OSError:
        return False
