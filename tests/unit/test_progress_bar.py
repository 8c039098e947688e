"""The run's progress bar: a handful of updates per night, never backwards, always 100 at the end,
and never a reason for the night to fail."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from allocation.flows import progress as progress_module
from allocation.flows.progress import NightProgress


class FakeArtifacts:
    def __init__(self, fail: bool = False) -> None:
        self.updates: list[float] = []
        self.fail = fail

    def update(self, artifact_id: UUID, value: float) -> UUID:
        if self.fail:
            raise ConnectionError("API unreachable")
        self.updates.append(value)
        return artifact_id


@pytest.fixture
def artifacts(monkeypatch: pytest.MonkeyPatch) -> FakeArtifacts:
    fake = FakeArtifacts()
    monkeypatch.setattr(progress_module, "update_progress_artifact", fake.update)
    return fake


def test_a_big_night_makes_a_handful_of_updates_up_to_100(artifacts: FakeArtifacts) -> None:
    bar = NightProgress(uuid4())
    load = bar.step("load")
    for done in range(1, 201):  # 200 inbox files
        load(done, 200)
    allocate = bar.step("allocate")
    for done in range(0, 10_000_001, 100_000):  # 10M lines, reported per run of lines
        allocate(done, 10_000_000)
    bar.set(100.0)

    assert artifacts.updates[-1] == 100.0
    assert artifacts.updates == sorted(artifacts.updates)
    assert len(artifacts.updates) <= 20
    assert artifacts.updates[0] >= 5.0


def test_the_bar_never_goes_backwards(artifacts: FakeArtifacts) -> None:
    bar = NightProgress(uuid4())
    bar.step("allocate")(1, 1)
    bar.step("load")(1, 1)  # a retried load step reports again
    assert artifacts.updates == [90.0]


def test_an_empty_step_counts_as_done(artifacts: FakeArtifacts) -> None:
    bar = NightProgress(uuid4())
    bar.step("allocate")(0, 0)
    assert artifacts.updates == [90.0]


def test_a_failing_update_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress_module, "update_progress_artifact", FakeArtifacts(True).update)
    bar = NightProgress(uuid4())
    bar.set(100.0)
    assert "Progress bar not updated to 100%: API unreachable" in caplog.text


def test_without_an_artifact_nothing_is_sent(artifacts: FakeArtifacts) -> None:
    NightProgress(None).set(100.0)
    assert artifacts.updates == []


def test_each_step_logs_its_progress_with_counts_a_handful_of_times(
    artifacts: FakeArtifacts, caplog: pytest.LogCaptureFixture
) -> None:
    """The log is what the UI shows live: an open progress-artifact page does not refresh."""
    caplog.set_level("INFO", logger="allocation")
    bar = NightProgress(None)  # no artifact (the API was unreachable): the log still moves
    bar.step("load")(2_500_000, 10_000_000)
    for done in range(0, 1_000_001, 1_000):
        bar.step("allocate")(done, 1_000_000)
    bar.set(100.0, "reports written")

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Progress")]
    assert lines[0] == (
        "Progress 14%: loading, 2.5 MB of 10.0 MB of inbox files read and validated"
    )
    assert "Progress 90%: allocating, 1,000,000 of 1,000,000 open lines done" in lines
    assert lines[-1] == "Progress 100%: reports written"
    assert len(lines) <= 15
