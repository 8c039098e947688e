"""Publishing replaces the analysts' copy and drops the kept copy that ages out; deleting either
frees hundreds of MB, which the night no longer waits for: both are set aside under hidden names
and deleted on a thread of their own, which the process waits for before it exits. Nothing set
aside outlives the process, nor a run killed meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pytest

from allocation.io import discards
from allocation.io.publish import publish_copy
from allocation.io.restore import kept_copies
from allocation.service.night import NightRun, run_night
from allocation.settings import RunParameters
from allocation.settings.storage_version import DEFAULT_STORAGE_VERSION
from conftest import REPO, Site


def nights(site: Site, days: list[str], *, as_the_flow: bool = False) -> list[RunParameters]:
    """Runs `days` in turn, keeping one published night: by `run_night`, which returns once the
    old copies are deleted, or `as_the_flow` runs them (`NightRun.run`), which does not wait."""
    site.batches("stock.csv", "b1,RETRO-CLOCK,100,")
    ran: list[RunParameters] = []
    for number, day in enumerate(days):
        site.orders(f"o{number}.csv", f"order-{number},RETRO-CLOCK,1")
        params = site.params(day).model_copy(update={"keep_published": 1})
        if as_the_flow:
            NightRun.start(params).run()
        else:
            run_night(params)
        ran.append(params)
    return ran


def aside_in(folder: Path) -> list[str]:
    """The names of the files set aside in `folder` and not deleted yet."""
    return sorted(p.name for p in folder.glob(discards.DISCARDED.format(name="*", tag="*")))


def test_a_publish_returns_before_the_files_it_replaces_and_drops_are_deleted(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = nights(site, ["2026-11-24"])[0]
    history = first.state_folder.published
    analysts_had = site.warehouse.read_bytes()
    held = threading.Event()
    delete = discards._delete

    def held_back(paths: list[Path]) -> None:
        held.wait(timeout=60)
        delete(paths)

    monkeypatch.setattr(discards, "_delete", held_back)
    try:
        second = nights(site, ["2026-11-25"], as_the_flow=True)[0]

        # The night is published and its copy kept, the old ones only set aside.
        assert [c.business_date.isoformat() for c in kept_copies(history)] == ["2026-11-25"]
        assert site.query("SELECT max(business_date)::VARCHAR FROM runs") == [("2026-11-25",)]
        [old_analysts] = aside_in(site.warehouse.parent)
        assert old_analysts.startswith(".warehouse.duckdb.discarded-")
        assert (site.warehouse.parent / old_analysts).read_bytes() == analysts_had
        [old_kept] = aside_in(history)
        assert old_kept.startswith(f".{first.business_date.isoformat()}-")
    finally:
        held.set()
    discards.wait_for_discards()

    assert aside_in(site.warehouse.parent) == []
    assert aside_in(second.state_folder.published) == []
    assert sorted(p.name for p in history.glob("*.duckdb")) == [
        p.name for p in history.glob("2026-11-25-*.duckdb")
    ]


def test_a_process_that_published_deletes_what_it_set_aside_before_it_exits(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path[:0] = [{str(REPO / "tests")!r}, {str(REPO)!r}]
        from pathlib import Path
        from allocation.io import discards
        from conftest import Site
        from test_publish_discards import nights

        slow = discards._delete
        def slower(paths):
            time.sleep(1.0)  # still deleting when the night is done
            slow(paths)
        discards._delete = slower
        nights(
            Site(Path({str(tmp_path)!r})),
            ["2026-11-24", "2026-11-25", "2026-11-26"],
            as_the_flow=True,
        )
        print("done")
        """
    )
    sys_path = str(REPO / "tests" / "integration")
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {sys_path!r})\n{script}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("done")
    left = [p.name for p in tmp_path.rglob(".*.discarded-*")]
    assert left == []
    history = tmp_path / ".warehouse.duckdb.pipeline" / "published"
    assert len(list(history.glob("*.duckdb"))) == 1


def test_what_a_killed_publish_set_aside_is_deleted_by_the_next(tmp_path: Path) -> None:
    state = tmp_path / "state.duckdb"
    duckdb.connect(str(state)).close()
    warehouse = tmp_path / "warehouse.duckdb"
    history = tmp_path / "published"
    history.mkdir()
    leftovers = [
        tmp_path / ".warehouse.duckdb.discarded-0123456789ab",
        history / ".2026-11-24-20261124T010000-abcdef12.duckdb.discarded-0123456789ab",
    ]
    for leftover in leftovers:
        leftover.write_bytes(b"\0" * 4096)
    someone_elses = tmp_path / ".other.duckdb.discarded-0123456789ab"
    someone_elses.write_bytes(b"theirs")

    publish_copy(state, warehouse, history, "night-1", 3, DEFAULT_STORAGE_VERSION)

    assert [p.exists() for p in leftovers] == [False, False]
    assert someone_elses.read_bytes() == b"theirs"  # another warehouse's, in the same folder


def test_a_folder_without_hard_links_still_gets_the_new_night_and_keeps_nothing_aside(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # e.g. a share that has none

    monkeypatch.setattr(discards.os, "link", no_links)
    nights(site, ["2026-11-24", "2026-11-25"])
    discards.wait_for_discards()

    assert site.query("SELECT max(business_date)::VARCHAR FROM runs") == [("2026-11-25",)]
    assert aside_in(site.warehouse.parent) == []
    assert aside_in(site.params("2026-11-25").state_folder.published) == []


def test_a_night_killed_while_deleting_the_old_copies_is_published_and_the_next_cleans_up(
    site: Site,
) -> None:
    nights(site, ["2026-11-24"])
    site.orders("o9.csv", "order-9,RETRO-CLOCK,1")
    script = (
        "import sys; from allocation.service.night import run_night\n"
        "from allocation.settings import RunParameters\n"
        "run_night(RunParameters.build(inbox=sys.argv[1], warehouse=sys.argv[2], "
        "outbox=sys.argv[3], business_date='2026-11-25', keep_published=1))\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(site.inbox), str(site.warehouse), str(site.outbox)],
        env={**os.environ, "ALLOCATION_CRASH_AT": "while-discarding"},
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    history = site.params("2026-11-25").state_folder.published

    # Killed after the rename: analysts have the new night, whole; the old copy is left aside.
    assert site.query("SELECT max(business_date)::VARCHAR FROM runs") == [("2026-11-25",)]
    assert aside_in(site.warehouse.parent) != []

    nights(site, ["2026-11-26"])

    assert aside_in(site.warehouse.parent) == []
    assert aside_in(history) == []
    assert [c.business_date.isoformat() for c in kept_copies(history)] == ["2026-11-26"]


def test_a_night_run_without_prefect_returns_once_the_old_copies_are_gone(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    delete = discards._delete

    def slow(paths: list[Path]) -> None:
        time.sleep(0.5)
        delete(paths)

    monkeypatch.setattr(discards, "_delete", slow)
    nights(site, ["2026-11-24", "2026-11-25"])  # then a caller fills the disk, say

    assert aside_in(site.warehouse.parent) == []
    assert aside_in(site.params("2026-11-25").state_folder.published) == []
