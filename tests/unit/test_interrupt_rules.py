"""Issue 27's rules that need no Prefect server: courtesy calls that never stall a night, the
one-line refusals (PREFECT_HOME on a full disk, unknown parameter names)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

from allocation.flows import courtesy, prefect_api, progress
from allocation.flows.progress import NightProgress
from allocation.flows.unknown_parameters import flow_parameter_names, unknown_names_message


def test_a_progress_update_the_api_never_answers_stops_the_bar_without_stalling_the_night(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Old code: every update waited for Prefect's retries (~65 s each with the API gone)."""
    never = threading.Event()
    calls: list[float] = []

    def hanging_update(artifact_id: object, percent: float) -> None:
        calls.append(percent)
        never.wait(30)

    monkeypatch.setattr(progress, "update_progress_artifact", hanging_update)
    monkeypatch.setattr(courtesy, "COURTESY_TIMEOUT_SECONDS", 0.2)
    bar = NightProgress(uuid4())
    report = bar.step("allocate")

    tick = time.monotonic()
    for done in range(0, 101, 10):
        report(done, 100)
    bar.set(100.0)
    elapsed = time.monotonic() - tick
    never.set()

    assert calls == [40.0]  # one try, then no more for the rest of the night
    assert bar.artifact_id is None and bar.updates == 0
    assert elapsed < 5  # about one timeout, not one per update


def test_a_progress_update_that_fails_stops_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []

    def refused(artifact_id: object, percent: float) -> None:
        calls.append(percent)
        raise ConnectionResetError("Connection reset by peer")

    monkeypatch.setattr(progress, "update_progress_artifact", refused)
    bar = NightProgress(uuid4())
    bar.set(50.0)
    bar.set(100.0)

    assert calls == [50.0]


class FullDisk:
    """`os.statvfs` of a disk with `free` bytes left."""

    def __init__(self, free: int) -> None:
        self.free = free

    def __call__(self, path: Path) -> os.statvfs_result:
        return os.statvfs_result((4096, 4096, 1000, 0, self.free // 4096, 1000, 0, 0, 0, 255))


def test_a_full_prefect_home_is_named_in_one_line_before_prefect_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with temporary_settings(updates={PREFECT_HOME: str(home)}, restore_defaults={PREFECT_API_URL}):
        with pytest.raises(prefect_api.PrefectHomeFull) as refused:
            prefect_api.check_prefect_home(FullDisk(12 * 1024 * 1024))
        prefect_api.check_prefect_home(FullDisk(1024**3))  # room enough: nothing to say

    message = str(refused.value)
    assert "\n" not in message and str(home) in message
    assert "12 MiB free" in message and "nothing was run" in message


def test_a_server_of_our_own_is_not_checked_for_space() -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        prefect_api.check_prefect_home(FullDisk(0))


def test_unknown_parameter_names_are_named_with_the_known_ones() -> None:
    known = flow_parameter_names()
    assert known[:3] == ["inbox", "warehouse", "outbox"]
    assert unknown_names_message(["inbox", "business_date"], known) is None

    message = unknown_names_message(["inbox", "unknown", "warehous"], known)

    assert message is not None and "\n" not in message
    assert message.startswith("unknown parameter(s) 'unknown', 'warehous': the night takes inbox")
