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
