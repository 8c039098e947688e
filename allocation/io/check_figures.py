"""What the night's checks (`allocation.service.night_checks`) read from the warehouse inside the
night's transaction: earlier nights' volumes, the last out-of-stock share, stopped nights, the
state before tonight's manifest changes; and where their results are kept (`night_checks`).
`DuckDBCheckFigures` asks them of one connection, as `allocation.service.storage.CheckFigures`.

Each query is an aggregate over the bookkeeping tables (`runs` has one row per run) or a count
over the lines' status: a few milliseconds at ten million lines (docs/benchmarks.md).
"""

from __future__ import annotations

import datetime as dt

import duckdb

#: Earlier committed nights the order-volume check takes the median of.
HISTORY_NIGHTS = 14


class DuckDBCheckFigures:
    """What the night's checks read, over the night's connection
    (`allocation.service.storage.CheckFigures`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def order_history(self, day: dt.date) -> list[int]:
        """New order lines of each committed night before `day`, newest first (at most 14)."""
        rows = self.con.sql(
            "SELECT sum(orders_accepted)::BIGINT FROM runs WHERE status = 'completed' "
            "AND business_date < ? GROUP BY business_date ORDER BY business_date DESC LIMIT ?",
            params=[day, HISTORY_NIGHTS],
        ).fetchall()
        return [int(row[0] or 0) for row in rows]

    def accepted_earlier_today(self, day: dt.date) -> int:
        """New order lines that committed runs of `day` stored before this run."""
        row = self.con.sql(
            "SELECT coalesce(sum(orders_accepted), 0)::BIGINT FROM runs "
            "WHERE status = 'completed' AND business_date = ?",
            params=[day],
        ).fetchall()[0]
        return int(row[0])

    def last_out_of_stock_share(self) -> float | None:
        """Share of the lines it tried that the last committed run left out of stock; None before
        any run (or when it tried none)."""
        row = self.con.sql(
            "SELECT arg_max(out_of_stock, finished_at), arg_max(allocated, finished_at) FROM runs "
            "WHERE status = 'completed'"
        ).fetchall()[0]
        open_lines, allocated = row
        if open_lines is None or allocated is None or open_lines + allocated == 0:
            return None
        return float(open_lines) / float(open_lines + allocated)

    def stopped_nights(self, day: dt.date) -> list[tuple[dt.date, str]]:
        """Nights before `day` that a check stopped and that no committed run of that date or a
        later one has followed since (date, the checks that stopped it): their files may still be
        in the inbox. `day` itself is not one: running it again is the way on."""
        rows = self.con.sql(
            """
            SELECT s.business_date, string_agg(DISTINCT s.check_name, ',' ORDER BY s.check_name)
            FROM night_checks s
            WHERE NOT s.committed AND s.level = 'stop' AND s.result = 'failed'
              AND s.business_date < $day
              AND NOT EXISTS (
                  SELECT 1 FROM runs r WHERE r.status = 'completed'
                    AND r.business_date >= s.business_date AND r.finished_at > s.checked_at)
            GROUP BY s.business_date ORDER BY s.business_date
            """,
            params={"day": day},
        ).fetchall()
        return [(row[0], str(row[1])) for row in rows]

    def allocated_lines(self) -> int:
        """Lines allocated now."""
        return int(
            self.con.sql("SELECT count(*) FROM order_lines WHERE status = 'allocated'").fetchall()[
                0
            ][0]
        )

    def active_batches(self) -> int:
        """Batches with a quantity now."""
        return int(
            self.con.sql("SELECT count(*) FROM batches WHERE purchased > 0").fetchall()[0][0]
        )

    def waiting(self, day: dt.date) -> tuple[int, int | None]:
        """Open lines that arrived before `day`, and the days the oldest open line has waited."""
        row = self.con.sql(
            "SELECT count(*) FILTER (WHERE first_seen < $day)::BIGINT, "
            "max(greatest($day::DATE - first_seen, 0))::BIGINT "
            "FROM order_lines WHERE status = 'out_of_stock'",
            params={"day": day},
        ).fetchall()[0]
        return int(row[0]), None if row[1] is None else int(row[1])
