"""The documentation (`COMMENT ON`) of every warehouse view and table macro: the view's comment
and one per column. `warehouse_comments` puts it together with the tables' for the upgrades to
apply."""

from __future__ import annotations

#: Per view: its comment, and a comment per column.
VIEW_COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "out_of_stock": (
        "Open order lines (not allocated yet), with what the sku has and when stock could come.",
        {
            "orderid": "Order identifier.",
            "sku": "Stock-keeping unit.",
            "qty": "Quantity ordered.",
            "first_seen": "Business date the line arrived.",
            "days_waiting": "Days from first_seen to the latest committed night.",
            "available": "Free quantity of the sku over all its batches, in stock and coming.",
            "shortfall": "How much more the sku's best batch would need to take the line whole.",
            "next_eta": "Earliest ETA of a batch of the sku that could still take the line whole "
            "(NULL: no such batch is known).",
            "arrival_seq": "Arrival order; lines are tried in this order.",
            "sku_free_units": "Same as available, named for what it is: free units of the sku "
            "over all its batches.",
            "best_batch_shortfall": "Same as shortfall, named for what it is: units the sku's "
            "best batch lacks to take this line whole.",
            "next_whole_line_eta": "Same as next_eta, named for what it is: earliest ETA of a "
            "batch that could take this line whole.",
        },
    ),
    "stock_position": (
        "Per sku: stock bought, given, free, the open demand and when stock comes next.",
        {
            "sku": "Stock-keeping unit.",
            "purchased": "Sum of purchased quantities over its batches.",
            "allocated": "Sum allocated over its batches.",
            "available": "Sum free over its batches, in stock and coming.",
            "open_demand": "Quantity of its open (out of stock) lines.",
            "open_lines": "Number of its open lines.",
            "shortfall": "open_demand - available, at least 0 (lines are not split, so lines "
            "can wait even at 0).",
            "next_eta": "Earliest ETA of a batch with free stock (NULL: none coming).",
            "free_units": "Same as available, named for what it is.",
            "demand_over_free_units": "Same as shortfall, named for what it is: open_demand - "
            "free_units, at least 0 (per sku, not per line).",
            "next_free_eta": "Same as next_eta, named for what it is (may be in the past: "
            "skus.overdue_free_units).",
        },
    ),
    "nightly_kpis": (
        "Per committed business date: what arrived, what could be placed, what was placed, what "
        "still waits after the night (docs/analysts.md: KPI definitions).",
        {
            "business_date": "Night (one row per date, however many runs it had).",
            "runs": "Committed runs of that date (a rerun adds one).",
            "lines_received": "New order lines stored that night.",
            "units_received": "Units of those new lines.",
            "lines_eligible": "Lines the night tried to place: open before it, new, or released "
            "by a manifest change (= lines_placed + lines_open).",
            "units_eligible": "Units of the eligible lines.",
            "lines_placed": "Lines given a batch that night (allocations of that date).",
            "units_placed": "Units of the lines placed.",
            "lines_open": "Lines still open after the night: the backlog (= open_lines_asof).",
            "units_open": "Units of the lines still open after the night.",
            "line_fill_rate": "lines_placed / lines_eligible to 4 places, a half rounded away from zero (NULL when nothing was eligible).",
            "unit_fill_rate": "units_placed / units_eligible to 4 places, a half rounded away from zero (NULL when nothing was eligible).",
            "lines_placed_from_stock": "Placements in a batch without ETA (stock on hand).",
            "lines_placed_from_incoming": "Placements in a batch with an ETA (incoming stock).",
            "lines_released": "Allocated lines a manifest change took back that night.",
            "lines_replaced": "Of those, lines placed again the same night.",
            "order_rows_received": "Order rows read (accepted, duplicate and rejected).",
            "order_rows_duplicate": "Order rows repeating a known line (no effect).",
            "order_rows_rejected": "Order rows rejected (rejected_rows, kind orders).",
            "manifest_rows_received": "Manifest rows read (accepted, duplicate and rejected).",
            "manifest_rows_rejected": "Manifest rows rejected (rejected_rows, kind batches).",
            "rows_rejected": "order_rows_rejected + manifest_rows_rejected.",
            "lines_waiting": "Of lines_open, lines that arrived on an earlier night (the date's "
            "last run's count; NULL for nights before schema version 6).",
            "oldest_wait_days": "Days the longest-waiting open line had waited after the night "
            "(the date's last run's count; NULL: no open line, or a night before schema "
            "version 6).",
        },
    ),
    "line_waits": (
        "Per order line: when it was first placed, which order_lines.allocated_on (its current "
        "placement) is not for a line released and placed again.",
        {
            "orderid": "Order identifier.",
            "sku": "Stock-keeping unit.",
            "qty": "Quantity ordered.",
            "first_seen": "Business date the line arrived.",
            "first_allocated_on": "Night of its first placement (NULL: never placed yet).",
            "days_to_first_allocation": "first_allocated_on - first_seen (NULL: never placed).",
            "status": "allocated or out_of_stock now.",
            "allocated_on": "Night of its current placement (NULL while open).",
            "arrival_seq": "Arrival order.",
        },
    ),
    "orders": (
        "One row per order: its lines and how many are allocated.",
        {
            "orderid": "Order identifier.",
            "lines": "Lines of the order.",
            "units": "Units ordered over its lines.",
            "lines_allocated": "Lines allocated now.",
            "lines_open": "Lines still open (out of stock) now.",
            "units_open": "Units of its open lines.",
            "order_status": "fully allocated, partly allocated or not allocated.",
            "first_seen": "Night its first line arrived.",
            "last_allocated_on": "Night of its latest current placement (NULL: none).",
        },
    ),
    "skus": (
        "One row per sku: free stock on hand and incoming, and the open demand.",
        {
            "sku": "Stock-keeping unit.",
            "batches": "Batches of the sku ever announced (cancelled ones included).",
            "on_hand_free_units": "Free units in batches without ETA (in the warehouse now).",
            "incoming_free_units": "Free units in batches with an ETA (not arrived as far as the "
            "manifests say), overdue ones included.",
            "overdue_free_units": "Of incoming_free_units, those in batches whose ETA is on or "
            "before the latest committed night: due but not reported as arrived.",
            "next_free_eta": "Earliest ETA of a batch with free units (may be in the past: see "
            "overdue_free_units).",
            "open_lines": "Lines of the sku still open.",
            "open_units": "Units of those lines.",
            "oldest_open_first_seen": "Arrival night of its oldest open line.",
        },
    ),
    "nightly_trend": (
        "One row per committed business date: what arrived and what the night decided, to "
        "compare a night with the ones before it. A slice of nightly_kpis under older names "
        "(each column says which), with the night's check results.",
        {
            "business_date": "Night.",
            "received": "Order rows received (every run of the date): "
            "nightly_kpis.order_rows_received.",
            "accepted": "New order lines stored: nightly_kpis.lines_received.",
            "rejected": "Order rows rejected: nightly_kpis.order_rows_rejected.",
            "allocated": "Lines (not units) allocated by the night's runs: "
            "nightly_kpis.lines_placed.",
            "out_of_stock": "Lines left open (out of stock) after the night: "
            "nightly_kpis.lines_open.",
            "lines_waiting": "Of those, lines that arrived on an earlier night.",
            "oldest_wait_days": "Days the longest-waiting open line had waited after the night.",
            "checks_warned": "Warn-level checks that failed.",
            "checks_accepted": "Stop-level checks that failed and were accepted.",
            "runs": "Committed runs of the date (more than 1 after a rerun).",
        },
    ),
}

#: Per table macro: its comment (a macro's columns cannot carry comments: the text names them).
MACRO_COMMENTS: dict[str, str] = {
    "open_lines_asof": "Table macro: the order lines open after the night of a date, as "
    "out_of_stock showed them that night: SELECT * FROM open_lines_asof(DATE '2026-11-25'). "
    "Columns orderid, sku, qty, first_seen, days_waiting (to that date), arrival_seq.",
}
