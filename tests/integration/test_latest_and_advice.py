"""Issue 23 items 9 and 11: what the outbox's `latest` and the refusal of an earlier date tell an
operator. A dry run never moves `latest`; a refused date names a night that can really be rolled
back to (one with a kept copy), or says that none can."""

from __future__ import annotations

import re

import pytest

from allocation.service.night import run_night
from allocation.service.rollback import rollback
from allocation.settings import ParameterError, RunParameters
from conftest import Site


def latest(site: Site) -> str:
    return (site.outbox / "latest").resolve().name


def test_a_dry_run_of_a_future_date_never_pins_latest(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP-1,LAMP,20,")
    site.orders("o1.csv", "o1,LAMP,2")
    site.run("2026-11-01")
    site.run("2026-11-09", dry_run=True)
    assert latest(site) == "2026-11-01", "the dry run left latest alone"

    site.orders("o2.csv", "o2,LAMP,3")
    site.run("2026-11-02")
    assert latest(site) == "2026-11-02", "the next real night is latest, not the dry run's date"
    assert (site.outbox / "latest" / "summary.json").is_file()
    assert (site.outbox / "2026-11-09" / "dry-run" / "summary.json").is_file(), "still there"


def test_a_dry_run_before_any_night_points_latest_nowhere(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP-1,LAMP,20,")
    site.run("2026-11-09", dry_run=True)
    assert not (site.outbox / "latest").is_symlink()


def params(site: Site, day: str, keep: int = 7) -> RunParameters:
    return RunParameters.build(
        inbox=site.inbox,
        warehouse=site.warehouse,
        outbox=site.outbox,
        business_date=day,
        keep_published=keep,
    )


def advised(error: pytest.ExceptionInfo[ParameterError]) -> str | None:
    found = re.search(r"allocation rollback --to (\S+?)[,)]", str(error.value))
    return found.group(1) if found else None


def test_a_date_that_never_ran_is_told_a_night_that_can_be_rolled_back_to(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP-1,LAMP,20,")
    site.run("2026-11-01")
    site.orders("o1.csv", "o1,LAMP,2")
    site.run("2026-11-03")

    with pytest.raises(ParameterError) as refused:
        site.run("2026-11-02")
    target = advised(refused)
    assert target == "2026-11-01", str(refused.value)
    assert "2026-11-02" in str(refused.value)
    rollback(params(site, target))  # the advice works
    site.run("2026-11-02")
    assert latest(site) == "2026-11-02"


def test_a_date_that_ran_is_told_to_roll_back_to_itself(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP-1,LAMP,20,")
    site.run("2026-11-01")
    site.run("2026-11-02")
    site.run("2026-11-03")
    with pytest.raises(ParameterError) as refused:
        site.run("2026-11-02")
    assert advised(refused) == "2026-11-02"


def test_when_no_earlier_night_is_kept_the_refusal_says_none_can_be_rolled_back_to(
    site: Site,
) -> None:
    site.batches("m1.csv", "B-LAMP-1,LAMP,20,")
    run_night(params(site, "2026-11-01", keep=1))
    run_night(params(site, "2026-11-03", keep=1))  # the copy of 11-01 is no longer kept
    with pytest.raises(ParameterError) as refused:
        run_night(params(site, "2026-11-02", keep=1))
    message = str(refused.value)
    assert advised(refused) is None, message
    assert "no night on or before 2026-11-02 can be rolled back to" in message
    assert "2026-11-03" in message  # what is kept
