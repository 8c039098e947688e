"""The warehouse's views, rebuilt after every upgrade: `out_of_stock` and `stock_position`
(`STOCK_VIEWS`, versions 1-3), and the analysts' answers written once as views and a table macro
(`ANALYST_VIEWS`, schema version 11).

Each of the analysts' answers a question analysts asked first (docs/analysts.md, "Questions answered
directly"), computed from the base tables only, so it cannot disagree with them:

- ``nightly_kpis``: one row per committed business date, built from per-line events (a line
  arrives, is placed, is released) summed night by night, so the backlog after every night costs
  one pass over the history, not one pass per night;
- ``open_lines_asof(d)``: the lines open after the night of ``d``, as ``out_of_stock`` showed them
  that night. A line is open at ``d`` when it had arrived and no allocation made by ``d`` was
  still held at ``d``. A line allocated now, since a night on or before ``d``, holds that
  allocation (never released) and is not open: only lines open now or placed after ``d`` are
  candidates, and of their allocations only the released ones can cover ``d``. So the macro reads
  three columns of ``order_lines`` and the few released allocations, not the whole history
  (docs/benchmarks.md, "`open_lines_asof` at 365 nights"); it is also written without a CTE,
  so DuckDB 1.5 binds it in a ``LATERAL`` join over a column;
- allocations meet their lines on ``arrival_seq`` (an integer, one per line), not on the
  ``(orderid, sku)`` text pair: the joins stay cheap however long the history;
- ``nightly_trend``: a slice of ``nightly_kpis`` under the names the night's summary (``trend``)
  has always used, with the night's check results beside it: one definition of each figure;
- ``orders`` and ``skus``: one row per order and per sku;
- ``line_waits``: each line's first placement, which ``order_lines.allocated_on`` (the current
  placement) is not.

Only SQL that DuckDB 1.1 understands (``FILTER``, window sums, table macros): the published file
is opened by DuckDB 1.1+ clients. Sums are cast to BIGINT (DuckDB's sum of BIGINT is HUGEINT,
which reaches polars as ``Decimal(38,0)``); unit sums are capped at the largest BIGINT as the
older views do.
"""

from __future__ import annotations

# Sums over a sku are HUGEINT in DuckDB; every quantity fits BIGINT but their sum may not, so sums
# are capped at the largest BIGINT (casting them would fail the night's reports, and every later
# night's) and differences are taken before capping.
_BIGINT_MAX = "9223372036854775807"

#: The views of versions 1-3, rebuilt after every upgrade. "Today" for an analyst is the latest
#: committed night.
STOCK_VIEWS = """
CREATE OR REPLACE VIEW out_of_stock AS
WITH last_night AS (
    SELECT max(business_date) AS d FROM runs WHERE status = 'completed'
), sku_stock AS (
    SELECT sku, least(sum(available), BIGINT_MAX)::BIGINT AS available,
           max(available)::BIGINT AS best
    FROM batches GROUP BY sku
), open_lines AS (
    SELECT l.orderid, l.sku, l.qty, l.first_seen, l.arrival_seq,
           coalesce(s.available, 0)::BIGINT AS available,
           greatest(l.qty - coalesce(s.best, 0), 0)::BIGINT AS shortfall,
           (SELECT min(b.eta) FROM batches b
             WHERE b.sku = l.sku AND b.eta IS NOT NULL AND b.available >= l.qty) AS next_eta
    FROM order_lines l LEFT JOIN sku_stock s USING (sku)
    WHERE l.status = 'out_of_stock'
)
SELECT orderid, sku, qty, first_seen,
       greatest(coalesce((SELECT d FROM last_night), first_seen) - first_seen, 0)::BIGINT
           AS days_waiting,
       available, shortfall, next_eta, arrival_seq,
       available AS sku_free_units,
       shortfall AS best_batch_shortfall,
       next_eta AS next_whole_line_eta
FROM open_lines;

CREATE OR REPLACE VIEW stock_position AS
WITH stock AS (
    SELECT sku, sum(purchased) AS purchased, sum(allocated) AS allocated,
           sum(available) AS available,
           min(eta) FILTER (WHERE eta IS NOT NULL AND available > 0) AS next_eta
    FROM batches GROUP BY sku
), demand AS (
    SELECT sku, sum(qty) AS open_demand, count(*)::BIGINT AS open_lines
    FROM order_lines WHERE status = 'out_of_stock' GROUP BY sku
)
SELECT sku,
       least(coalesce(purchased, 0), BIGINT_MAX)::BIGINT AS purchased,
       least(coalesce(allocated, 0), BIGINT_MAX)::BIGINT AS allocated,
       least(coalesce(available, 0), BIGINT_MAX)::BIGINT AS available,
       least(coalesce(open_demand, 0), BIGINT_MAX)::BIGINT AS open_demand,
       coalesce(open_lines, 0)::BIGINT AS open_lines,
       least(greatest(coalesce(open_demand, 0) - coalesce(available, 0), 0), BIGINT_MAX)::BIGINT
           AS shortfall,
       next_eta,
       least(coalesce(available, 0), BIGINT_MAX)::BIGINT AS free_units,
       least(greatest(coalesce(open_demand, 0) - coalesce(available, 0), 0), BIGINT_MAX)::BIGINT
           AS demand_over_free_units,
       next_eta AS next_free_eta
FROM stock FULL OUTER JOIN demand USING (sku);
""".replace("BIGINT_MAX", _BIGINT_MAX)

#: Views and macros of version 11, rebuilt with the older views after every upgrade.
ANALYST_VIEWS = """
CREATE OR REPLACE VIEW nightly_kpis AS
WITH nights AS (
    SELECT business_date,
           count(*)::BIGINT AS runs,
           sum(orders_received)::BIGINT AS order_rows_received,
           sum(orders_accepted)::BIGINT AS lines_received,
           sum(orders_duplicate)::BIGINT AS order_rows_duplicate,
           sum(orders_rejected)::BIGINT AS order_rows_rejected,
           sum(batches_received)::BIGINT AS manifest_rows_received,
           sum(batches_rejected)::BIGINT AS manifest_rows_rejected,
           sum(coalesce(lines_replaced, 0))::BIGINT AS lines_replaced,
           arg_max(lines_waiting, finished_at)::BIGINT AS lines_waiting,
           arg_max(oldest_wait_days, finished_at)::BIGINT AS oldest_wait_days
    FROM runs WHERE status = 'completed' GROUP BY business_date
), events AS (
    SELECT first_seen AS business_date, 1 AS lines, qty AS units, 0 AS placed,
           0 AS placed_units, 0 AS from_stock, 0 AS from_incoming, 0 AS released, qty AS new_units
    FROM order_lines
    UNION ALL
    SELECT business_date, -1, -qty, 1, qty, CASE WHEN eta IS NULL THEN 1 ELSE 0 END,
           CASE WHEN eta IS NULL THEN 0 ELSE 1 END, 0, 0
    FROM allocations
    UNION ALL
    SELECT released_on, 1, qty, 0, 0, 0, 0, 1, 0
    FROM allocations WHERE released_on IS NOT NULL
), per_night AS (
    SELECT business_date,
           sum(lines) AS open_delta, sum(units) AS open_units_delta,
           sum(placed) AS lines_placed, sum(placed_units) AS units_placed,
           sum(from_stock) AS placed_from_stock, sum(from_incoming) AS placed_from_incoming,
           sum(released) AS lines_released, sum(new_units) AS units_received
    FROM events GROUP BY business_date
), running AS (
    SELECT n.*, p.units_received, p.lines_placed, p.units_placed, p.placed_from_stock,
           p.placed_from_incoming, p.lines_released,
           sum(coalesce(p.open_delta, 0)) OVER (ORDER BY n.business_date) AS lines_open,
           sum(coalesce(p.open_units_delta, 0)) OVER (ORDER BY n.business_date) AS units_open
    FROM nights n LEFT JOIN per_night p USING (business_date)
), eligible AS (
    SELECT *,
           coalesce(lines_placed, 0)::HUGEINT AS placed_lines,
           (coalesce(lines_placed, 0) + coalesce(lines_open, 0))::HUGEINT AS eligible_lines,
           coalesce(units_placed, 0)::HUGEINT AS placed_units,
           (coalesce(units_placed, 0) + coalesce(units_open, 0))::HUGEINT AS eligible_units
    FROM running
)
SELECT r.business_date,
       r.runs,
       r.lines_received,
       least(coalesce(r.units_received, 0), BIGINT_MAX)::BIGINT AS units_received,
       r.eligible_lines::BIGINT AS lines_eligible,
       least(r.eligible_units, BIGINT_MAX)::BIGINT AS units_eligible,
       r.placed_lines::BIGINT AS lines_placed,
       least(r.placed_units, BIGINT_MAX)::BIGINT AS units_placed,
       coalesce(r.lines_open, 0)::BIGINT AS lines_open,
       least(coalesce(r.units_open, 0), BIGINT_MAX)::BIGINT AS units_open,
       -- placed / eligible to 4 places, halves away from zero, worked out in whole numbers:
       -- round() of the DOUBLE quotient rounded a half either way (1/32 = 0.03125 up to 0.0313,
       -- 3/160 = 0.01875 down to 0.0187), as the binary fraction fell. NULL when none eligible.
       ((20000 * r.placed_lines + r.eligible_lines) // nullif(2 * r.eligible_lines, 0)) / 10000
           AS line_fill_rate,
       ((20000 * r.placed_units + r.eligible_units) // nullif(2 * r.eligible_units, 0)) / 10000
           AS unit_fill_rate,
       coalesce(r.placed_from_stock, 0)::BIGINT AS lines_placed_from_stock,
       coalesce(r.placed_from_incoming, 0)::BIGINT AS lines_placed_from_incoming,
       coalesce(r.lines_released, 0)::BIGINT AS lines_released,
       r.lines_replaced,
       r.order_rows_received,
       r.order_rows_duplicate,
       r.order_rows_rejected,
       r.manifest_rows_received,
       r.manifest_rows_rejected,
       (r.order_rows_rejected + r.manifest_rows_rejected)::BIGINT AS rows_rejected,
       r.lines_waiting,
       r.oldest_wait_days
FROM eligible r
ORDER BY r.business_date;

CREATE OR REPLACE VIEW nightly_trend AS
WITH checks AS (
    SELECT business_date,
           count(*) FILTER (WHERE result = 'failed' AND level = 'warn')::BIGINT AS checks_warned,
           count(*) FILTER (WHERE result = 'accepted')::BIGINT AS checks_accepted
    FROM night_checks WHERE committed GROUP BY business_date
)
SELECT k.business_date,
       k.order_rows_received AS received,
       k.lines_received AS accepted,
       k.order_rows_rejected AS rejected,
       k.lines_placed AS allocated,
       k.lines_open AS out_of_stock,
       k.lines_waiting,
       k.oldest_wait_days,
       coalesce(c.checks_warned, 0)::BIGINT AS checks_warned,
       coalesce(c.checks_accepted, 0)::BIGINT AS checks_accepted,
       k.runs
FROM nightly_kpis k LEFT JOIN checks c USING (business_date);

CREATE OR REPLACE MACRO open_lines_asof(night) AS TABLE
SELECT l.orderid, l.sku, l.qty, l.first_seen,
       (CAST(night AS DATE) - l.first_seen)::BIGINT AS days_waiting,
       l.arrival_seq
FROM order_lines l
WHERE l.first_seen <= CAST(night AS DATE)
  AND (l.status = 'out_of_stock' OR l.allocated_on > CAST(night AS DATE))
  AND NOT EXISTS (
      SELECT 1 FROM allocations a
      WHERE a.arrival_seq = l.arrival_seq
        AND a.business_date <= CAST(night AS DATE) AND a.released_on > CAST(night AS DATE)
  )
ORDER BY l.arrival_seq;

CREATE OR REPLACE VIEW line_waits AS
WITH placed AS (
    SELECT arrival_seq, min(business_date) AS first_allocated_on
    FROM allocations GROUP BY arrival_seq
)
SELECT l.orderid, l.sku, l.qty, l.first_seen, p.first_allocated_on,
       (p.first_allocated_on - l.first_seen)::BIGINT AS days_to_first_allocation,
       l.status, l.allocated_on, l.arrival_seq
FROM order_lines l LEFT JOIN placed p USING (arrival_seq);

CREATE OR REPLACE VIEW orders AS
SELECT orderid,
       count(*)::BIGINT AS lines,
       least(sum(qty), BIGINT_MAX)::BIGINT AS units,
       count(*) FILTER (WHERE status = 'allocated')::BIGINT AS lines_allocated,
       count(*) FILTER (WHERE status = 'out_of_stock')::BIGINT AS lines_open,
       least(coalesce(sum(qty) FILTER (WHERE status = 'out_of_stock'), 0), BIGINT_MAX)::BIGINT
           AS units_open,
       CASE
           WHEN count(*) FILTER (WHERE status = 'out_of_stock') = 0 THEN 'fully allocated'
           WHEN count(*) FILTER (WHERE status = 'allocated') = 0 THEN 'not allocated'
           ELSE 'partly allocated'
       END AS order_status,
       min(first_seen) AS first_seen,
       max(allocated_on) AS last_allocated_on
FROM order_lines
GROUP BY orderid;

CREATE OR REPLACE VIEW skus AS
WITH last_night AS (
    SELECT max(business_date) AS d FROM runs WHERE status = 'completed'
), stock AS (
    SELECT sku,
           count(*)::BIGINT AS batches,
           least(coalesce(sum(available) FILTER (WHERE eta IS NULL), 0), BIGINT_MAX)::BIGINT
               AS on_hand_free_units,
           least(coalesce(sum(available) FILTER (WHERE eta IS NOT NULL), 0), BIGINT_MAX)::BIGINT
               AS incoming_free_units,
           least(coalesce(sum(available) FILTER (
               WHERE eta IS NOT NULL AND eta <= (SELECT d FROM last_night)), 0), BIGINT_MAX
           )::BIGINT AS overdue_free_units,
           min(eta) FILTER (WHERE eta IS NOT NULL AND available > 0) AS next_free_eta
    FROM batches GROUP BY sku
), demand AS (
    SELECT sku, count(*)::BIGINT AS open_lines,
           least(sum(qty), BIGINT_MAX)::BIGINT AS open_units,
           min(first_seen) AS oldest_open_first_seen
    FROM order_lines WHERE status = 'out_of_stock' GROUP BY sku
)
SELECT sku,
       coalesce(batches, 0)::BIGINT AS batches,
       coalesce(on_hand_free_units, 0)::BIGINT AS on_hand_free_units,
       coalesce(incoming_free_units, 0)::BIGINT AS incoming_free_units,
       coalesce(overdue_free_units, 0)::BIGINT AS overdue_free_units,
       next_free_eta,
       coalesce(open_lines, 0)::BIGINT AS open_lines,
       coalesce(open_units, 0)::BIGINT AS open_units,
       oldest_open_first_seen
FROM stock FULL OUTER JOIN demand USING (sku);
""".replace("BIGINT_MAX", _BIGINT_MAX)
