"""Shared test set-up: no telemetry, a generous Prefect start-up timeout, and helpers to build
inboxes and run nights against real files and real DuckDB in tmp_path."""

from __future__ import annotations

import os

from allocation import TELEMETRY_OFF

os.environ.update(TELEMETRY_OFF)  # whatever the caller's environment says
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Tests write their inbox a moment before the night runs; a real inbox's files are minutes or
# hours old. The settle time itself is tested with its own value (test_inbox_entries.py).
os.environ.setdefault("ALLOCATION_INBOX_SETTLE_SECONDS", "0")

import datetime as dt
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import pytest
import shared_api
from hypothesis import HealthCheck, settings

from allocation.service.night import run_night
from allocation.settings import RunParameters

# Property-based and stateful tests (marked `fuzz`): a few examples in `make test`, many in
# `make fuzz` (HYPOTHESIS_PROFILE=fuzz). No deadline: this machine is shared and noisy.
settings.register_profile(
    "default",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
SAMPLE_INBOX = REPO / "data" / "sample"


class Site:
    """An inbox, a warehouse and an outbox under one tmp folder, and ways to use them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.warehouse = root / "warehouse.duckdb"
        self.outbox = root / "outbox"
        (self.inbox / "orders").mkdir(parents=True)
        (self.inbox / "batches").mkdir(parents=True)

    def write(self, relative: str, text: str) -> Path:
        path = self.inbox / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def orders(self, name: str, *rows: str, header: str = "orderid,sku,qty") -> Path:
        return self.write(f"orders/{name}", "\n".join([header, *rows]) + "\n")

    def batches(self, name: str, *rows: str, header: str = "reference,sku,qty,eta") -> Path:
        return self.write(f"batches/{name}", "\n".join([header, *rows]) + "\n")

    def clear_inbox(self) -> None:
        for path in [*self.inbox.glob("orders/*"), *self.inbox.glob("batches/*")]:
            path.unlink()

    def params(self, day: str, *, dry_run: bool = False, accept: str = "") -> RunParameters:
        return RunParameters.build(
            inbox=self.inbox,
            warehouse=self.warehouse,
            outbox=self.outbox,
            business_date=day,
            dry_run=dry_run,
            accept_checks=accept,
        )

    def run(self, day: str, *, dry_run: bool = False, accept: str = "") -> dict[str, Any]:
        """A whole night through the service layer (no Prefect); `accept`: checks accepted."""
        return run_night(self.params(day, dry_run=dry_run, accept=accept))

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
        """Reads the published analysts' copy, read-only, as an analyst would."""
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.sql(sql, params=params or []).fetchall()
        finally:
            con.close()

    def report(self, day: str, name: str) -> list[dict[str, Any]]:
        import polars as pl

        return pl.read_parquet(self.outbox / day / f"{name}.parquet").to_dicts()


#: The test modules of the checks of the night themselves (and the e2e ones that stop a night):
#: they run with the checks' defaults. Every other test exercises another behaviour (a file
#: rejected whole, a manifest-only night, ten nights of random volume) whose night the default
#: `stop` checks would end before its commit, so there every check is a warning: still computed,
#: recorded and logged, never stopping the night under test.
CHECK_TEST_MODULES = {
    "test_night_checks.py",
    "test_check_rules.py",
    "test_deployment.py",
    "test_cli.py",
}


@pytest.fixture(autouse=True, scope="module")
def checks_warn_outside_their_own_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Module-scoped, so module-scoped fixtures that run nights see it too."""
    if request.path.name in CHECK_TEST_MODULES or "ALLOCATION_CHECKS" in os.environ:
        yield
        return
    from allocation.service.check_definitions import CHECK_NAMES

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALLOCATION_CHECKS", ",".join(f"{name}=warn" for name in CHECK_NAMES))
        yield


#: The modules that share one Prefect stack (tests/e2e/ops_stack.py): one unit of pytest-xdist's
#: work, so they run on one worker, one after the other.
SHARED_STACK_MODULES = frozenset(
    {"test_interrupts.py", "test_operations.py", "test_server_restart.py"}
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs `pytest -n 4 --dist loadfile`: each test module goes whole to one worker
    (module-scoped servers stay whole), except that the shared stack's modules go together.
    (pytest-xdist's own `--dist loadgroup` marks do not group here: with pytest 9.2 the node id
    it rewrites to carry the group is no longer the id it schedules by.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedStackTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "shared-prefect-stack" if Path(module).name in SHARED_STACK_MODULES else module

    return SharedStackTogether(config, log)


#: The modules whose tests take longest from first to last, most of it waiting on Prefect
#: servers, workers and automations (the shared stack's three, then the deployment's stack):
#: they go first, so that the other test processes fill those minutes with CPU-bound modules
#: instead of the run ending on them. (`make test` passes `--no-loadscope-reorder`: by default
#: pytest-xdist hands out the modules with the most tests first, which sent these last.)
LONGEST_FIRST = (
    "test_interrupts.py",
    "test_operations.py",
    "test_server_restart.py",
    "test_deployment.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stops the shared stack after the last test of its modules (not at the end of the
    session: an idle server and worker cost CPU every second)."""
    stack = sys.modules.get("ops_stack")
    if stack is not None:
        stack.close_after(item, nextitem)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


@pytest.fixture
def day() -> Callable[[int], str]:
    """day(0) = 2026-11-25, day(1) the next night, ..."""

    def at(offset: int) -> str:
        return (dt.date(2026, 11, 25) + dt.timedelta(days=offset)).isoformat()

    return at


SHARED_API = pytest.StashKey["shared_api.SharedAPI | None"]()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, the controlling process starts the run's one temporary Prefect API
    (tests/shared_api.py) before the test processes are spawned."""
    config.stash[SHARED_API] = shared_api.start(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    shared = config.stash.get(SHARED_API, None)
    if shared is not None:
        shared.close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect API for every test that needs real flow runs: the run's shared one
    under pytest-xdist, else one of this process's own."""
    url = shared_api.api_url()
    if url is None:
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            yield
        return
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # As prefect_test_harness does: the settings here, and as the process-global context.
    # (The second context is made inside the first.)
    with (
        temporary_settings(updates={PREFECT_API_URL: url}),
        _temporary_global_settings_context(get_settings_context()),
    ):
        yield


@pytest.fixture
def prefect_api(prefect_harness: None) -> str:
    """The session's Prefect API URL, for an `allocation` command run as a child process: it
    talks to this server instead of starting a temporary one of its own (10-15 CPU-s each).
    Only the tests of the first-time experience (`make run`, the shipped sample) start one."""
    from prefect.settings import get_current_settings

    return str(get_current_settings().api.url)


# A test that needs root (mounting a tmpfs to fill a disk for real) skips elsewhere; CI runs as
# root, so .ci/run sets TESTS_REQUIRE_ROOT=1 and such a skip there fails the run instead of
# hiding that the promise went unchecked. (Not an ALLOCATION_* name: those are the pipeline's
# settings.)
REQUIRE_ROOT = "TESTS_REQUIRE_ROOT"


def skip_without_root(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ROOT) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ROOT}=1 says this run must not skip it")
    pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs of its own, to fill for real; skipped where mounting is not permitted
    (needs root), unless TESTS_REQUIRE_ROOT=1."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as error:
        skip_without_root(f"cannot mount a tmpfs here: {error}")
    if result.returncode != 0:
        skip_without_root(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def fill(disk: Path, leave: int = 64 * 1024) -> Path:
    """Takes all but ``leave`` bytes of ``disk``; delete the returned file to free them."""
    stats = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(stats.f_bavail * stats.f_frsize - leave, 0))
    return filler


@pytest.fixture(autouse=True)
def discards_done() -> Iterator[None]:
    """A test ends once the files its publishes set aside are deleted, as a process would
    before exiting (`allocation.io.discards`)."""
    yield
    from allocation.io.discards import wait_for_discards

    wait_for_discards()
