"""Issue: a business date earlier than the last committed night must not run.

After 2026-11-26 is committed, a run for 2026-11-25 would allocate 11-26's backorders under the
earlier date, and 11-26's reports and `latest` would no longer match the warehouse. It is refused
before anything is read. Reruns of the last committed date stay allowed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from allocation import cli
from allocation.service import loading, preflight
from allocation.settings import ParameterError
from conftest import Site


def committed_runs(site: Site) -> list[tuple[str, int]]:
    return site.query("SELECT business_date::VARCHAR, count(*) FROM runs GROUP BY ALL ORDER BY 1")


def two_nights(site: Site, day: Callable[[int], str]) -> None:
    site.batches("b1.csv", "b1,RETRO-CLOCK,1,")
    site.orders("o1.csv", "o1,RETRO-CLOCK,1", "o2,RETRO-CLOCK,1")
    site.run(day(0))
    site.batches("b2.csv", "b2,RETRO-CLOCK,1,")
    site.run(day(1))  # o2 (a backorder of day 0) is allocated under day 1


def test_a_date_before_the_last_committed_night_is_refused_before_anything_is_read(
    site: Site, day: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two_nights(site, day)
    site.orders("o3.csv", "o3,RETRO-CLOCK,1")
    published = site.warehouse.read_bytes()

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the inbox was read")

    monkeypatch.setattr(loading, "load_inbox", no_reading)
    with pytest.raises(ParameterError) as refused:
        site.run(day(0))
    message = str(refused.value)
    assert f"business date {day(0)} is earlier than the last committed night {day(1)}" in message
    assert "allocation rollback --to" in message
    assert "\n" not in message
    assert committed_runs(site) == [(day(0), 1), (day(1), 1)]
    assert site.warehouse.read_bytes() == published
    assert (site.outbox / "latest").resolve().name == day(1)


def test_a_dry_run_of_an_earlier_date_is_refused_too(site: Site, day: Callable[[int], str]) -> None:
    two_nights(site, day)
    with pytest.raises(ParameterError, match="earlier than the last committed night"):
        site.run(day(0), dry_run=True)
    assert not (site.outbox / day(0) / "dry-run").exists()


def test_an_older_committed_date_is_refused_even_without_new_files(
    site: Site, day: Callable[[int], str]
) -> None:
    """Its reports cannot be reproduced from today's state (the lines still open are tonight's,
    not that night's): roll back to it first."""
    two_nights(site, day)
    with pytest.raises(ParameterError, match=f"last committed night {day(1)}"):
        site.run(day(0))


def test_the_last_committed_date_can_run_again_with_new_files(
    site: Site, day: Callable[[int], str]
) -> None:
    two_nights(site, day)
    site.orders("o3.csv", "o3,RETRO-CLOCK,1")
    site.batches("b3.csv", "b3,RETRO-CLOCK,1,")
    summary = site.run(day(1))
    assert [(r["orderid"], r["batchref"]) for r in site.report(day(1), "allocations")] == [
        ("o2", "b2"),
        ("o3", "b3"),
    ]
    assert summary["files"]["skipped_already_ingested"] == 3  # b1, o1, b2
    assert committed_runs(site) == [(day(0), 1), (day(1), 2)]


def test_a_later_date_still_runs(site: Site, day: Callable[[int], str]) -> None:
    two_nights(site, day)
    site.run(day(5))
    assert committed_runs(site)[-1] == (day(5), 1)


def test_the_command_refuses_an_earlier_date_with_one_line_and_exit_2(
    site: Site, day: Callable[[int], str], capsys: pytest.CaptureFixture[str]
) -> None:
    two_nights(site, day)
    capsys.readouterr()
    code = cli.main(
        [
            "run",
            "--inbox", str(site.inbox),
            "--warehouse", str(site.warehouse),
            "--outbox", str(site.outbox),
            "--business-date", day(0),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"allocation: business date {day(0)} is earlier than")
    assert day(1) in lines[0]
    assert committed_runs(site) == [(day(0), 1), (day(1), 1)]


def test_the_early_check_leaves_a_running_night_alone(
    site: Site, day: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the state beside a running night would make that night fail to open it: while
    the run lock is held, the command does not look (the run checks under the lock)."""
    from allocation.io.run_lock import run_lock

    two_nights(site, day)

    def no_opening(*args: object, **kwargs: object) -> None:
        raise AssertionError("the state was opened while a night holds it")

    monkeypatch.setattr(preflight, "last_committed_date", no_opening)
    lock = site.params(day(0)).state_dir / "run.lock"
    with run_lock(lock, run_id="a-night", business_date=day(2), timeout=0):
        preflight.check_business_date_if_idle(site.params(day(0)))
    monkeypatch.undo()
    with pytest.raises(ParameterError):
        preflight.check_business_date_if_idle(site.params(day(0)))
