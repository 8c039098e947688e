"""What a streamed sort gets of the night's DuckDB memory: a third, within the limits DuckDB
takes, never more than the night has."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocation.settings.duckdb_limits import DuckDBLimits


@pytest.mark.parametrize(
    ("night", "streaming"),
    [
        ("384MB", "128MB"),  # the default
        ("1GB", "333MB"),  # a night given more gives its sorts more
        ("2GiB", "715MB"),
        ("150MB", "64MB"),  # never below the smallest limit a night may have
        ("64MB", "64MB"),  # nor above the night's own
    ],
)
def test_a_streamed_sort_gets_a_third_of_the_night_memory(night: str, streaming: str) -> None:
    limits = DuckDBLimits(night, Path("/spill"))

    assert limits.streaming() == DuckDBLimits(streaming, Path("/spill"))


@pytest.mark.parametrize(
    ("lines", "sorting"),
    [
        (1_000_000, "128MB"),  # small beside the share: the share
        (10_000_000, "128MB"),
        (30_000_000, "150MB"),  # 0.6 GB of columns: a quarter of them
        (100_000_000, "384MB"),  # 2 GB: ran out of memory in 128MB; the night's limit
    ],
)
def test_a_streamed_sort_gets_more_as_its_data_grows_up_to_the_night_limit(
    lines: int, sorting: str
) -> None:
    limits = DuckDBLimits("384MB", Path("/spill"))

    assert limits.sorting(lines * 20) == DuckDBLimits(sorting, Path("/spill"))
