"""The counts a run keeps are named once (`allocation.io.run_counts`): every name there is a
count column of `runs` with that comment, and every count column of `runs` is named there, so the
night summary's sums and the table's documentation cannot drift from the table."""

from __future__ import annotations

from pathlib import Path

from allocation.io.run_counts import RUN_COUNTS, STATE_AFTER_RUN, SUMMARY_COUNTS
from allocation.io.unit_of_work import DuckDBUnitOfWork


def test_the_counts_named_once_are_the_count_columns_of_runs_with_their_comments(
    tmp_path: Path,
) -> None:
    with DuckDBUnitOfWork(tmp_path / "state.duckdb") as uow:
        columns = uow.con.sql(
            "SELECT column_name, comment FROM duckdb_columns() "
            "WHERE table_name = 'runs' AND data_type = 'BIGINT'"
        ).fetchall()

    assert dict(columns) == RUN_COUNTS


def test_the_summary_adds_up_every_count_but_the_state_after_a_run() -> None:
    assert set(SUMMARY_COUNTS) == set(RUN_COUNTS) - set(STATE_AFTER_RUN)
    assert set(STATE_AFTER_RUN) <= set(RUN_COUNTS)
