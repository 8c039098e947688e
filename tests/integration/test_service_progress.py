"""The service layer reports its progress through a plain callable (no Prefect): per inbox
file loaded (in bytes), per run of lines allocated, and done when every line is placed."""

from __future__ import annotations

import datetime as dt

import pytest

from allocation.service import loading, night_transaction
from allocation.service.engine import chunk_decision
from allocation.service.state import already_ingested
from conftest import Site


def test_loading_reports_each_file_and_allocating_reports_up_to_every_line(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.batches("b.csv", "b-1,RETRO-CLOCK,100,", "b-2,OAK-SHELF,3,")
    big = site.orders("o1.csv", *(f"o-{n},RETRO-CLOCK,1" for n in range(30)))
    small = site.orders("o2.csv", *(f"p-{n},OAK-SHELF,1" for n in range(5)))
    sizes = [p.stat().st_size for p in (site.inbox / "batches" / "b.csv", big, small)]
    monkeypatch.setattr(
        chunk_decision, "_CHUNK_SLICE_LINES", 10
    )  # several slices of lines on a small night
    params = site.params("2026-11-25")
    loaded: list[tuple[int, int]] = []
    placed: list[tuple[int, int]] = []

    night = loading.load_inbox(params, "run-1", set(), lambda d, t: loaded.append((d, t)))
    night_transaction.allocate_night(
        params, night, "run-1", dt.datetime.now(dt.UTC), progress=lambda d, t: placed.append((d, t))
    )

    total = sum(sizes)
    assert loaded == [(sizes[0], total), (sizes[0] + sizes[1], total), (total, total)]
    # The night is decided in one pass over integer columns (lane lean): the bar reaches every
    # line, never goes back, and never claims more lines than there are.
    assert placed[-1] == (35, 35)
    assert all(total == 35 and 0 <= done <= 35 for done, total in placed)
    assert [done for done, _ in placed] == sorted(done for done, _ in placed)


def test_files_already_committed_still_count_as_loaded(site: Site) -> None:
    site.orders("o1.csv", "o-1,RETRO-CLOCK,1")
    site.run("2026-11-25")
    loaded: list[tuple[int, int]] = []

    params = site.params("2026-11-25")
    night = loading.load_inbox(
        params,
        "run-2",
        already_ingested(params),
        lambda d, t: loaded.append((d, t)),
    )

    assert night.skipped == ["orders/o1.csv"]
    size = (site.inbox / "orders" / "o1.csv").stat().st_size
    assert loaded == [(size, size)]
