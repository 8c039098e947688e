"""Issue 15 item 8: the allocate step checks for its own run's commit every time it starts, not
only on a task retry. A retried flow run (the UI's Retry, or a crashed night rescheduled) starts
its tasks at run count 1 with the same flow-run id: it must find its commit and not apply the
night again."""

from __future__ import annotations

import datetime as dt
import shutil

from allocation.flows import nightly
from allocation.service.after_commit import publish, write_reports
from allocation.service.loading import load_inbox
from allocation.service.night import NightRun
from conftest import SAMPLE_INBOX, Site

NIGHT = "2026-11-25"
RUN_ID = "0b6c3a52-7d51-4c4e-9a65-7f3f1d2b9a10"


def test_a_retried_flow_run_finds_its_own_commit_on_its_first_allocate_attempt(
    site: Site,
) -> None:
    shutil.rmtree(site.inbox)
    shutil.copytree(SAMPLE_INBOX, site.inbox)
    params = nightly.check_parameters(
        str(site.inbox), str(site.warehouse), str(site.outbox), NIGHT, False
    )
    night = NightRun(params, RUN_ID, dt.datetime.now(dt.UTC))
    first = nightly.allocate.fn(params, load_inbox(params, RUN_ID, set()), RUN_ID, night.started)
    assert first.counts  # the night was allocated and committed
    write_reports(params, first)
    publish(params, night.label)
    allocated = site.query("SELECT count(*) FROM allocations")

    # The same flow run again, from its first task attempt (no task retry in between).
    again = nightly.allocate.fn(params, load_inbox(params, RUN_ID, set()), RUN_ID, night.started)

    assert again.counts == {}  # found committed: nothing applied twice
    publish(params, night.label)
    assert site.query("SELECT count(*) FROM runs") == [(1,)]
    assert site.query("SELECT count(*) FROM allocations") == allocated
