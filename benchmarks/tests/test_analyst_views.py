"""The views bench fills every table the views read, runs every documented query and measures
what a night pays for the views (`make bench` reports it)."""

from __future__ import annotations

from benchmarks.analyst_views import documented_queries, measure, table


def test_the_synthetic_warehouse_fills_the_tables_the_views_read_and_times_a_night_s_cost() -> None:
    what, timings = measure(nights=3, lines=400, tries=1)
    for name in ("reallocations", "batch_changes", "rejected_rows"):
        count = int(what.split(f"{name} ")[1].split(",")[0].replace(",", ""))
        assert count > 0, (name, what)
    titles = [title for title, _ in timings]
    assert titles[: len(documented_queries())] == [t for t, _ in documented_queries()]
    assert sum(title.startswith("a night's views") for title in titles) == 3
    assert "a night's own cost of the views" in "\n".join(table(what, timings))
