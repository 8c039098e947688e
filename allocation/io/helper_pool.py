"""Helper processes that start bare: a fresh interpreter that imports only what its work needs.

The allocator's helpers are spawned, not forked (forking a process that runs polars' and
Prefect's threads can hang). Before a spawned process runs any work, `multiprocessing` re-runs
the parent's main module in it, under the name `__mp_main__`, so that work defined in a script
can be found there. Our work never lives in the main module, and the main module is heavy: the
`allocation` command (whose import pulls in the CLI, the flows and Prefect), `prefect.engine`
under a deployment's worker, pytest under the tests. Re-running it cost each helper memory and
a second of imports for nothing (docs/benchmarks.md, "A bare helper").

The helpers here are started while `sys.modules["__main__"]` is a stand-in with neither a file
nor a spec, so `multiprocessing` gives them no main module to re-run: a helper imports the
modules its work is pickled by (the allocator's: polars and the domain) and nothing else. The
stand-in is in place only while a process starts (a lock keeps two starts from interleaving).
Work handed to these helpers must therefore be importable by module name, never a function of
the main module.
"""

from __future__ import annotations

import sys
import threading
import types
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import SpawnContext, SpawnProcess

_STARTING = threading.Lock()


class _BareProcess(SpawnProcess):
    """A spawned process that does not re-run the parent's main module."""

    def start(self) -> None:
        with _STARTING:
            main = sys.modules["__main__"]
            sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__, no __spec__
            try:
                super().start()
            finally:
                sys.modules["__main__"] = main


class _BareSpawnContext(SpawnContext):
    Process = _BareProcess


def helper_pool(count: int) -> ProcessPoolExecutor:
    """`count` spawned processes that import only the modules of the work they are given."""
    return ProcessPoolExecutor(max_workers=count, mp_context=_BareSpawnContext())
