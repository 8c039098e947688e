"""One temporary Prefect API for every pytest-xdist process of a run (`make test`).

Each test process used to start a temporary Prefect server of its own for the tests that need
real flow runs (`prefect_harness` in tests/conftest.py): a fresh server's start-up and
migrations cost ~12 CPU-s, and an idle one ~1.2 CPU-s a minute, on a 2-core machine whose suite
is CPU-bound. Now the controlling process starts one (`start`, before the test processes are
spawned: they inherit the file's path in the environment) and stops it when the run ends; each
test process waits for its address (`api_url`). It is started whether or not the chosen tests
need it (the test processes' collections are not known yet when they are spawned). A run
without pytest-xdist starts its own server, on first use, as before.

The tests already shared one server across modules; every test names its own flow runs,
artifacts and automations and reads them back by id or name, so sharing across processes
changes nothing they assert.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

#: Where the controlling process writes the shared API's URL (or "error: ..."): the path is in
#: this environment variable, set before the test processes start.
API_FILE = "TESTS_PREFECT_API_FILE"
START_TIMEOUT = 180.0  # the server's own start timeout is 120 s; the import of Prefect comes first


class SharedAPI:
    """The controlling process's server, run by a thread inside `prefect_test_harness`."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="tests-prefect-api-"))
        self.url_file = self.folder / "api-url"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="shared-prefect-api", daemon=True)

    def _serve(self) -> None:
        try:
            from prefect.settings import get_current_settings
            from prefect.testing.utilities import prefect_test_harness

            with prefect_test_harness(server_startup_timeout=120):
                self._publish(str(get_current_settings().api.url))
                self.stop.wait()
        except BaseException as error:  # the test processes must hear of it, not wait
            self._publish(f"error: {type(error).__name__}: {error}")
            raise

    def _publish(self, text: str) -> None:
        partial = self.url_file.with_name("api-url.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, self.url_file)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(config: pytest.Config) -> SharedAPI | None:
    """In pytest-xdist's controlling process only: starts the shared API in the background and
    puts its file's path in the environment the test processes inherit."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return None
    shared = SharedAPI()
    os.environ[API_FILE] = str(shared.url_file)
    shared.thread.start()
    return shared


def api_url() -> str | None:
    """In a test process: the shared API's URL once it is up, or None without one."""
    path = os.environ.get(API_FILE)
    if not path:
        return None
    deadline = time.monotonic() + START_TIMEOUT
    while not Path(path).is_file():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the shared Prefect API did not start in {START_TIMEOUT:.0f} s")
        time.sleep(0.2)
    text = Path(path).read_text(encoding="utf-8")
    if text.startswith("error: "):
        raise RuntimeError(f"the shared Prefect API could not start: {text[7:]}")
    return text
