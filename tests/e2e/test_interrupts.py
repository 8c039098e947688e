"""Issue 27 end to end: Prefect or the operator interrupts a night.

The operators' shared stack (ops_stack.py: `make server`, `make deploy`) with one `make worker`.
Nights are held at a named step (`ALLOCATION_HOLD_AT`, passed to the run through its job
variables) and cancelled there through the API; two nights name one warehouse through a symlink
and `..`; a run is created with an unknown parameter; and the `allocation` command runs a night
through a small TCP proxy that the test then stops forwarding (or turns into a server answering
500), as a lost or broken Prefect API would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import polars as pl
import pytest
from ops_stack import SHARED, Ops
from prefect.client.schemas.objects import StateType
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Cancelling, Scheduled
from test_deployment import (
    BIN,
    PREFECT_YAML,
)
from test_operations import final, ledger, parameters, run_logs, wait_for, write_night

from allocation.settings.state_folder import StateFolder

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

DAY = "2026-11-25"
NEXT_DAY = "2026-11-26"
#: The deployment's own job environment: a run's `env` job variable replaces it whole.
DEPLOYMENT_ENV: dict[str, str] = PREFECT_YAML["definitions"]["work_pool"]["job_variables"]["env"]


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Ops:
    """The shared stack (ops_stack.py) with one worker."""
    return SHARED.get(tmp_path_factory, workers=1)


def create_run(
    ops: Ops,
    params: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    at: dt.datetime | None = None,
) -> UUID:
    with ops.client() as client:
        run = client.create_flow_run_from_deployment(
            ops.deployment_id,
            parameters=params,
            state=Scheduled(scheduled_time=at) if at else None,
            job_variables={"env": {**DEPLOYMENT_ENV, **env}} if env else None,
        )
    return run.id


def reached(hold: Path, point: str, ops: Ops, run_id: UUID) -> None:
    deadline = time.monotonic() + 120
    while not (hold / f"reached-{point}").exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the night never reached {point}\n{run_logs(ops, run_id)}\n{ops.logs()}")
        time.sleep(0.1)


def allocated(folder: Path) -> list[str]:
    return sorted(pl.read_csv(folder / "allocations.csv", infer_schema=False)["orderid"])


def published(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return sorted(row[0] for row in con.sql("SELECT orderid FROM allocations").fetchall())
    finally:
        con.close()


# -- item 1: a cancel at each step ---------------------------------------------------------------
@pytest.mark.parametrize(
    "point", ["after-load", "after-commit", "while-writing-reports", "while-publishing"]
)
def test_a_night_cancelled_at_any_step_never_loses_its_reports(
    ops: Ops, tmp_path: Path, point: str
) -> None:
    """Old code, cancelled after the commit: the night in `runs`, no reports, no analysts' copy,
    no kept copy, for good (the next night wrote only its own)."""
    hold = tmp_path / "hold"
    hold.mkdir()
    params = parameters(tmp_path, DAY)
    warehouse, outbox = Path(params["warehouse"]), Path(params["outbox"])
    env = {"ALLOCATION_HOLD_AT": point, "ALLOCATION_HOLD_DIR": str(hold)}
    run_id = create_run(ops, params, env=env)
    reached(hold, point, ops, run_id)

    with ops.client() as client:
        client.set_flow_run_state(run_id, Cancelling(message="cancelled by the test"), force=True)
    # The worker sends SIGTERM; a committed night holds it back until its reports are written.
    deadline = time.monotonic() + 60
    shielded = point.startswith("while-")
    while time.monotonic() < deadline:
        logs = run_logs(ops, run_id)
        with ops.client() as client:
            state = client.read_flow_run(run_id).state
        if (shielded and "Asked to stop (SIGTERM)" in logs) or (state and state.is_final()):
            break
        time.sleep(0.5)
    (hold / "release").touch()
    run = wait_for(ops, run_id, final, "final")

    assert run.state is not None and run.state.type == StateType.CANCELLED, run_logs(ops, run_id)
    night = [f"{DAY}-a", f"{DAY}-b"]
    if point == "after-load":
        assert not (outbox / DAY).exists()
    elif point == "after-commit":  # stopped inside the allocate step: the next night finishes it
        assert [day for day, _ in ledger(warehouse)] == [DAY]
        assert not (outbox / DAY).exists()
    else:  # the stop waited for the reports and the published copy
        assert allocated(outbox / DAY) == night
        assert published(warehouse) == night

    # The next night, of another date, finds whatever was left undone and finishes it first.
    later = create_run(ops, parameters(tmp_path, NEXT_DAY))
    ended = wait_for(ops, later, final, "final")
    assert ended.state is not None and ended.state.type == StateType.COMPLETED, run_logs(ops, later)
    committed = [day for day, _ in ledger(warehouse)]
    both = sorted([*night, f"{NEXT_DAY}-a", f"{NEXT_DAY}-b"])
    if point == "after-load":  # nothing of the cancelled night was committed
        assert committed == [NEXT_DAY]
        assert published(warehouse) == [f"{NEXT_DAY}-a", f"{NEXT_DAY}-b"]
    else:
        assert committed == [DAY, NEXT_DAY]
        assert allocated(outbox / DAY) == night
        assert published(warehouse) == both
        kept = {p.name[:10] for p in StateFolder.beside(warehouse).published.glob("*.duckdb")}
        assert DAY in kept  # rollback --to DAY finds its copy


# -- item 2: one warehouse, two spellings --------------------------------------------------------
def test_nights_naming_one_warehouse_through_a_symlink_and_dotdot_still_commit_in_date_order(
    ops: Ops, tmp_path: Path
) -> None:
    """Old code: the later night, given `whlink/w.duckdb`, did not wait for the earlier one
    given `wh/sub/../w.duckdb`: it committed first, and the earlier night failed for good."""
    real = tmp_path / "wh"
    (real / "sub").mkdir(parents=True)
    (tmp_path / "whlink").symlink_to(real)
    spellings = {DAY: real / "sub" / ".." / "w.duckdb", NEXT_DAY: tmp_path / "whlink" / "w.duckdb"}
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    due = {NEXT_DAY: 0, DAY: 12}  # the later night is due first (see test_operations)
    runs = {}
    for day in (NEXT_DAY, DAY):
        params = {**parameters(tmp_path, day), "warehouse": str(spellings[day])}
        runs[day] = create_run(ops, params, at=soon + dt.timedelta(seconds=due[day]))
    ended = {day: wait_for(ops, run_id, final, "final") for day, run_id in runs.items()}

    for day, run in ended.items():
        assert run.state is not None and run.state.type == StateType.COMPLETED, (
            f"{day}: {run.state}\n{run_logs(ops, run.id)}"
        )
    assert ledger(real / "w.duckdb") == [(DAY, str(runs[DAY])), (NEXT_DAY, str(runs[NEXT_DAY]))]


# -- item 7: an unknown parameter -----------------------------------------------------------------
def test_a_run_with_an_unknown_parameter_fails_in_one_line_naming_it(
    ops: Ops, tmp_path: Path
) -> None:
    """Old code: Crashed with a SignatureMismatchError traceback (and retried, crashing again)."""
    params = {**parameters(tmp_path, DAY), "unknown": "x"}
    try:
        run_id = create_run(ops, params)
    except PrefectHTTPStatusError as refused:  # a server that refuses it is just as good
        assert "unknown" in str(refused)
        return
    run = wait_for(ops, run_id, final, "final")

    assert run.state is not None and run.state.type == StateType.FAILED
    assert run.state.message is not None
    assert run.state.message.startswith("unknown parameter(s) 'unknown': the night takes inbox")
    assert "\n" not in run.state.message
    assert not Path(params["warehouse"]).exists()


# -- items 3 and 4: the API lost or broken mid-night ----------------------------------------------
class CuttableProxy:
    """A TCP proxy on loopback in front of the Prefect server. `cut("reset")` resets every
    connection, open or new (a server gone, a firewall); `cut("http500")` answers every new
    request with `500 Internal Server Error` (a server whose database disk is full)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.mode = "forward"
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def cut(self, mode: str) -> None:
        with self.lock:
            self.mode = mode
            for sock in self.open:
                self._reset(sock)
            self.open.clear()

    def close(self) -> None:
        self.cut("reset")
        self.listener.close()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                mode = self.mode
            if mode == "reset":
                self._reset(client)
            elif mode == "http500":
                threading.Thread(target=self._answer_500, args=(client,), daemon=True).start()
            else:
                threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _answer_500(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError), client:
            client.settimeout(5)
            client.recv(65536)
            body = b'{"exception_message":"Internal Server Error"}'
            client.sendall(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )

    def _forward(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            self._reset(client)
            return
        with self.lock:
            self.open += [client, upstream]
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize("broken", ["reset", "http500"])
def test_a_night_whose_api_is_lost_after_the_load_completes_and_exits_6(
    ops: Ops, tmp_path: Path, broken: str
) -> None:
    """Old code: each progress update waited on the API (~65 s each), then a committed,
    published night ended exit 1 `unexpected error RemoteProtocolError` (or `Server error
    '500' ... /set_state`)."""
    port = int(ops.api_url.rsplit(":", 1)[1].split("/")[0])
    proxy = CuttableProxy(port)
    hold = tmp_path / "hold"
    hold.mkdir()
    inbox = tmp_path / "inbox"
    write_night(inbox, DAY)
    env = {
        **ops.env,
        "PREFECT_API_URL": proxy.url,
        "PREFECT_CLIENT_MAX_RETRIES": "2",  # Prefect's own retries of its final call: a lean test
        "ALLOCATION_HOLD_AT": "after-load",
        "ALLOCATION_HOLD_DIR": str(hold),
    }
    args = [str(BIN / "allocation"), "run", "--inbox", str(inbox), "--warehouse"]
    args += [str(tmp_path / "w.duckdb"), "--outbox", str(tmp_path / "outbox")]
    args += ["--business-date", DAY]
    try:
        with (tmp_path / "night.log").open("wb") as log:
            night = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 120
                while not (hold / "reached-after-load").exists():
                    assert night.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
                proxy.cut(broken)
                (hold / "release").touch()
                _, stderr = night.communicate(timeout=200)
            finally:
                if night.poll() is None:
                    night.send_signal(signal.SIGKILL)
                    night.wait()
    finally:
        proxy.close()
    output = (tmp_path / "night.log").read_text(errors="replace")
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]

    assert night.returncode == 6, f"{output}\n{stderr.decode(errors='replace')}"
    told = [line for line in lines if line.startswith("allocation:")]
    assert len(told) == 1 and "is complete" in told[0] and "Prefect could not be told" in told[0]
    assert f"Night {DAY} completed" in output  # the usual report, on stdout
    assert allocated(tmp_path / "outbox" / DAY) == [f"{DAY}-a", f"{DAY}-b"]
    assert published(tmp_path / "w.duckdb") == [f"{DAY}-a", f"{DAY}-b"]
    # The progress bar gave up after its first unanswered update: no minute-long wait each.
    assert sum("Progress bar not updated" in line for line in lines) <= 1
