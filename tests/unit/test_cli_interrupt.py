"""What the command says when a person presses Ctrl-C: it cannot know whether the night had
committed, so it must not claim that nothing was."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from allocation import cli


def test_an_interrupted_run_says_to_run_the_night_again_without_claiming_nothing_committed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    code = cli.main(["run", "--business-date", "2026-11-26"])

    err = capsys.readouterr().err
    assert code == 130
    assert "nothing of this run was committed" not in err
    assert "Run the same night again" in err


def test_the_command_prints_big_counts_with_thousands_separators(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 30M-line night's counts read at a glance, as in the log and the run's summary."""
    counts = {"received": 30_000_000, "accepted": 29_990_000, "duplicate": 0, "rejected": 10_000}
    night = {
        "business_date": "2026-11-26",
        "run_id": "r1",
        "outbox_folder": "data/outbox/2026-11-26",
        "warehouse": "data/warehouse.duckdb",
        "orders": counts,
        "batches": {"received": 1_200, "accepted": 1_200, "duplicate": 0, "rejected": 0},
        "allocated": 25_123_456,
        "out_of_stock": 4_866_544,
        "files": {"rejected": 0},
    }

    def ran(args: argparse.Namespace) -> dict[str, Any]:
        return night

    monkeypatch.setattr(cli, "_run", ran)
    assert cli.main(["run", "--business-date", "2026-11-26"]) == 0

    out = capsys.readouterr().out
    assert "received 30,000,000, accepted 29,990,000, duplicate 0, rejected 10,000" in out
    assert "allocated 25,123,456, out of stock 4,866,544" in out
