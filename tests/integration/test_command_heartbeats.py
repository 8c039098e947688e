"""A night run from the command line sends no flow-run heartbeats (nobody watches them, and
Prefect's heartbeat thread held the end of every such run for up to a second); an explicit
setting in the environment still wins."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import prefect.settings
import pytest
from prefect.settings import get_current_settings, temporary_settings

from allocation import cli
from allocation.flows import nightly


class _Completed:
    """What the command reads of a flow run's final state."""

    def __init__(self, summary: dict[str, Any]) -> None:
        self.summary = summary

    def result(self, raise_on_failure: bool = True) -> dict[str, Any]:
        return self.summary

    def is_completed(self) -> bool:
        return True


def heartbeat_frequency_during_a_night(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> int | None:
    """The heartbeat frequency the night's flow run sees when `allocation run` runs it."""
    seen: list[int | None] = []

    def night(**parameters: Any) -> _Completed:
        seen.append(get_current_settings().flows.heartbeat_frequency)
        return _Completed({"business_date": parameters["business_date"]})

    monkeypatch.setattr(nightly, "nightly_allocation", night)
    for folder in ("orders", "batches"):
        (tmp_path / "inbox" / folder).mkdir(parents=True)
    args = cli._parser().parse_args(
        [
            "run",
            "--inbox",
            str(tmp_path / "inbox"),
            "--warehouse",
            str(tmp_path / "warehouse.duckdb"),
            "--outbox",
            str(tmp_path / "outbox"),
            "--business-date",
            "2026-11-26",
        ]
    )
    assert isinstance(args, argparse.Namespace)
    assert cli._run(args) == {"business_date": "2026-11-26"}
    (frequency,) = seen
    return frequency


def test_a_night_run_from_the_command_line_sends_no_heartbeats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)

    assert heartbeat_frequency_during_a_night(tmp_path, monkeypatch) is None
    assert get_current_settings().flows.heartbeat_frequency is not None  # only the night's


def test_heartbeats_asked_for_in_the_environment_are_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a process started with PREFECT_FLOWS_HEARTBEAT_FREQUENCY=45 (Prefect reads its
    settings when it is imported)."""
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "45")
    with temporary_settings(updates={prefect.settings.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 45}):
        assert heartbeat_frequency_during_a_night(tmp_path, monkeypatch) == 45
