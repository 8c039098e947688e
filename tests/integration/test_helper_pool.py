"""The allocator's helper processes start bare: whatever the main module of the process that
spawns them imports (the `allocation` command's imports the CLI, a deployment's worker runs
`prefect.engine`), a helper imports only what allocating a chunk needs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# The main module of the spawning process: like `prefect.engine` under a deployment's worker (or
# the `allocation` command's script, which imports the CLI), it imports Prefect; then it hands
# a chunk to a helper and asks the helper what it holds.
_NIGHT = """
    import json
    import sys

    import polars as pl
    import prefect  # noqa: F401

    import probe
    from allocation.service.engine.chunk_decision import allocate_chunk
    from allocation.io.helper_pool import helper_pool

    if __name__ == "__main__":
        lines = pl.DataFrame(
            {"orderid": ["o1", "o2"], "sku": ["RETRO-CLOCK"] * 2, "qty": [3, 9], "arrival_seq": [1, 2]}
        )
        batches = pl.DataFrame(
            {"reference": ["b1"], "sku": ["RETRO-CLOCK"], "eta": [None], "purchased": [10],
             "allocated": [0], "__batch": [7]},
            schema_overrides={"eta": pl.Date},
        )
        with helper_pool(1) as pool:
            placed = pool.submit(allocate_chunk, lines, batches).result()
            helper = pool.submit(probe.loaded).result()
        print(json.dumps({"parent": probe.loaded(), "helper": helper, "placed": placed.rows()}))
"""

_PROBE = """
    import sys

    def loaded():
        # The main module's file, and which of the heavy modules are imported.
        main = getattr(sys.modules["__main__"], "__file__", None) or ""
        heavy = ("prefect", "allocation.cli", "allocation.flows")
        return [main.rpartition("/")[2], *(name for name in heavy if name in sys.modules)]
"""


@pytest.mark.e2e
def test_a_helper_allocates_without_importing_what_the_main_module_imports(
    tmp_path: Path,
) -> None:
    (tmp_path / "night.py").write_text(textwrap.dedent(_NIGHT))
    (tmp_path / "probe.py").write_text(textwrap.dedent(_PROBE))
    done = subprocess.run(
        [sys.executable, str(tmp_path / "night.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["parent"] == ["night.py", "prefect"]
    assert seen["helper"] == [""]  # the main module not run again, Prefect not imported
    assert seen["placed"] == [[1, 7, 3]]  # o1 placed on b1; o2 (9) no longer fits
