"""The `allocation` command as users and scripts call it: real process, real Prefect."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_INBOX

pytestmark = pytest.mark.e2e
ALLOCATION = Path(sys.executable).with_name("allocation")


def run_cli(*args: str, home: Path, api: str | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it: without `api`, with no server (Prefect starts its
    temporary one, as on a first try); with it, against that server."""
    env = {**os.environ, "PREFECT_HOME": str(home / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    if api:
        env["PREFECT_API_URL"] = api
    return subprocess.run(
        [str(ALLOCATION), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def test_runs_the_shipped_sample_and_says_where_the_outputs_are(tmp_path: Path) -> None:
    warehouse, outbox = tmp_path / "warehouse.duckdb", tmp_path / "outbox"
    result = run_cli(
        "run",
        "--inbox", str(SAMPLE_INBOX),
        "--warehouse", str(warehouse),
        "--outbox", str(outbox),
        "--business-date", "2026-11-25",
        home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"reports:   {outbox / '2026-11-25'}" in result.stdout
    assert "allocated 7, out of stock 5" in result.stdout
    summary = json.loads((outbox / "2026-11-25" / "summary.json").read_text())
    assert summary["orders"] == {"received": 14, "accepted": 12, "duplicate": 1, "rejected": 1}
    with open(outbox / "latest" / "allocations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0] == {
        "orderid": "order-1001",
        "sku": "RETRO-CLOCK",
        "qty": "10",
        "batchref": "batch-001",
        "eta": "",
        "business_date": "2026-11-25",
        "run_id": summary["run_id"],
    }
    assert warehouse.exists() and not Path(f"{warehouse}.wal").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--inbox", "{tmp}/missing"], 2, "inbox folder {tmp}/missing does not exist"),
        (["--business-date", "2026-02-30"], 2, "is not a real calendar date"),
        (["--business-date", "tomorrow"], 2, "use YYYY-MM-DD"),
        (["--warehouse", "{tmp}/not-a-db.duckdb"], 3, "is not a DuckDB database"),
        (["--accept", "files_rejectd"], 2, "cannot accept check(s) files_rejectd: no such check"),
    ],
)
def test_fails_with_one_clear_line_for_what_a_person_must_fix(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    (tmp_path / "not-a-db.duckdb").write_text("hello")
    base = {"--inbox": str(SAMPLE_INBOX), "--warehouse": str(tmp_path / "w.duckdb")}
    given = dict(zip(args[::2], [a.format(tmp=tmp_path) for a in args[1::2]], strict=True))
    argv = [item for pair in {**base, **given}.items() for item in pair]
    result = run_cli("run", *argv, "--outbox", str(tmp_path / "out"), home=tmp_path)
    assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("allocation: ")
    assert message.format(tmp=tmp_path) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_a_night_stopped_by_a_check_exits_5_then_commits_accepting_it(
    tmp_path: Path, prefect_api: str
) -> None:
    """Issue 25: an orders file missing its qty column stops the night (exit 5, one line
    on stderr naming the check, its figure, threshold and the way on, nothing committed); run
    again with --accept it commits."""
    inbox = tmp_path / "inbox"
    subprocess.run(["cp", "-r", str(SAMPLE_INBOX), str(inbox)], check=True)
    (inbox / "orders" / "zz-late.csv").write_text("orderid,sku\nLATE-1,RETRO-CLOCK\n")
    paths = ["--inbox", str(inbox), "--warehouse", str(tmp_path / "w.duckdb")]
    paths += ["--outbox", str(tmp_path / "out"), "--business-date", "2026-11-25"]

    stopped = run_cli("run", *paths, home=tmp_path, api=prefect_api)

    assert stopped.returncode == 5, stopped.stderr
    # Prefect's own log lines go to stderr as well; ours is the one line of the command.
    [last] = [line for line in stopped.stderr.splitlines() if line.startswith("allocation: ")]
    assert last.startswith(
        "allocation: night 2026-11-25 stopped by check(s) files_rejected 1 (fails above 0): "
        "1 of 4 file(s) rejected whole. Nothing was committed."
    ), last
    assert "--accept files_rejected" in last
    assert "Traceback" not in stopped.stderr + stopped.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "w.duckdb").exists()

    accepted = run_cli("run", *paths, "--accept", "files_rejected", home=tmp_path, api=prefect_api)

    assert accepted.returncode == 0, accepted.stderr
    assert "allocated 7, out of stock 5" in accepted.stdout
    summary = json.loads((tmp_path / "out" / "2026-11-25" / "summary.json").read_text())
    assert {c["check"]: c["result"] for c in summary["checks"]}["files_rejected"] == "accepted"
