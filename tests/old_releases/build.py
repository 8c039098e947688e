"""Builds the old-release warehouse fixtures (README.md here): runs `HISTORY` with the code of an
older commit, through that release's own command line, and gzips its working state.

    git worktree add --detach /tmp/old-v3 48b2e1c
    .venv/bin/python tests/old_releases/build.py 3 /tmp/old-v3

The old code runs with this checkout's virtual environment (PYTHONPATH puts the old package
first). Version 4 starts from the version-3 fixture and runs `V4_NIGHT` on it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from old_releases import HERE, HISTORY, RELEASES, V4_NIGHT, Files, install, write_inbox


def run(release: Path, root: Path, day: str, files: Files) -> None:
    write_inbox(root / "inbox", files)
    env = {
        **os.environ,
        "PYTHONPATH": str(release),
        "PREFECT_HOME": str(root / "prefect"),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    }
    command = [
        sys.executable, "-c", "import sys; from allocation.cli import main; sys.exit(main())",
        "run", "--inbox", str(root / "inbox"), "--warehouse", str(root / "warehouse.duckdb"),
        "--outbox", str(root / "outbox"), "--business-date", day,
    ]  # fmt: skip
    subprocess.run(command, env=env, check=True, cwd=release)


def main() -> None:
    version, release = int(sys.argv[1]), Path(sys.argv[2]).resolve()
    root = Path(tempfile.mkdtemp(prefix=f"old-v{version}-"))
    state = root / ".warehouse.duckdb.pipeline" / "state.duckdb"
    if version == 4:
        install(3, state)
        nights = [V4_NIGHT]
    else:
        nights = HISTORY
    for day, files in nights:
        run(release, root, day.isoformat(), files)
    with state.open("rb") as raw, gzip.open(HERE / RELEASES[version][1], "wb", 9) as packed:
        shutil.copyfileobj(raw, packed)
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
