"""The night's checks fed by storage through `gather_figures`, on a fake: what earlier nights
say (volumes, the last out-of-stock share, stopped nights) comes from the warehouse, the rest
from tonight's counts; no DuckDB."""

from __future__ import annotations

import datetime as dt

from fakes import FakeCheckFigures

from allocation.service.check_definitions import CHECKS
from allocation.service.night_checks import NightFigures, evaluate, gather_figures

DAY = dt.date(2026, 11, 26)

#: An ordinary run's counts, as the night's steps report them.
COUNTS = {
    "orders_accepted": 900,
    "files_received": 3,
    "files_rejected": 0,
    "orders_received": 910,
    "orders_rejected": 10,
    "batches_received": 40,
    "batches_rejected": 0,
    "lines_released": 4,
    "cancellations": 1,
    "out_of_stock": 90,
}


def figures(store: FakeCheckFigures, before: tuple[int, int] | None = (500, 60)) -> NightFigures:
    return gather_figures(
        store,
        DAY,
        COUNTS,
        order_files=2,
        manifests_without_eta=[],
        before=before,
        lines_tried=1000,
    )


def results(store: FakeCheckFigures) -> dict[str, str]:
    night = figures(store)
    return {r.check: r.result for r in evaluate(CHECKS, night, frozenset())}


def test_tonight_s_new_lines_add_the_lines_earlier_runs_of_the_date_stored() -> None:
    night = figures(FakeCheckFigures(earlier_today=100))

    assert night.new_order_lines == 1000


def test_earlier_nights_figures_come_from_storage_for_tonight_s_date() -> None:
    store = FakeCheckFigures(history=[1000, 980], out_of_stock_share=0.1)

    night = figures(store)

    assert night.order_history == [1000, 980]
    assert night.last_out_of_stock_share == 0.1
    assert sorted(store.asked) == [
        f"accepted_earlier_today {DAY}",
        f"order_history {DAY}",
        f"stopped_nights {DAY}",
    ]


def test_the_state_before_the_manifest_changes_is_what_the_release_checks_see() -> None:
    night = figures(FakeCheckFigures(), before=(500, 60))

    assert (night.allocated_before, night.lines_released) == (500, 4)
    assert (night.active_batches_before, night.batches_cancelled) == (60, 1)


def test_without_a_change_to_a_known_batch_the_release_checks_have_nothing_to_look_at() -> None:
    night = figures(FakeCheckFigures(), before=None)

    assert night.allocated_before is None
    assert night.active_batches_before is None


def test_an_earlier_night_stopped_by_a_check_fails_tonight_s_check() -> None:
    store = FakeCheckFigures(stopped=[(DAY - dt.timedelta(days=1), "order_volume")])

    assert results(store)["earlier_night_stopped"] == "failed"
    assert results(FakeCheckFigures())["earlier_night_stopped"] == "passed"


def test_a_volume_far_from_the_last_nights_median_fails_the_volume_check() -> None:
    usual = FakeCheckFigures(history=[950, 1000, 1020, 980, 1010])
    tenfold = FakeCheckFigures(history=[95, 100, 102, 98, 101])

    assert results(usual)["order_volume"] == "passed"
    assert results(tenfold)["order_volume"] == "failed"
