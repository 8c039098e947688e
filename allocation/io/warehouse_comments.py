"""The documentation every warehouse table and view carries (`COMMENT ON`), and the objects
analysts are promised by name. Analysts read it in their own tools (`duckdb_tables()`,
`duckdb_views()`, `duckdb_columns()`); it says what `docs/analysts.md` says.
"""

from __future__ import annotations

#: Per table or view: its comment, and a comment per column. Applied on every upgrade.
COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "batches": (
        "Every batch of stock ever announced by a manifest, with its current allocation.",
        {
            "reference": "Batch reference (unique).",
            "sku": "Stock-keeping unit the batch holds.",
            "eta": "Expected arrival date; NULL means the stock is in the warehouse now.",
            "purchased": "Quantity bought (from the latest manifest row; 0 when cancelled).",
            "allocated": "Quantity given to order lines.",
            "available": "purchased - allocated: what is still free.",
            "first_seen": "Business date the batch was first received.",
            "source_file": "Inbox file the batch first came from.",
            "source_line": "1-based data row in that file.",
            "updated_on": "Business date of the latest manifest change, if any.",
        },
    ),
    "order_lines": (
        "Every order line ever received, with its current status.",
        {
            "orderid": "Order identifier; (orderid, sku) identifies a line.",
            "sku": "Stock-keeping unit ordered.",
            "qty": "Quantity ordered; a line is allocated whole or not at all.",
            "status": "allocated, or out_of_stock (still open, retried every night).",
            "batchref": "Batch the line is allocated to (NULL while out of stock).",
            "first_seen": "Business date the line arrived.",
            "allocated_on": "Business date of the current allocation (NULL while out of stock); "
            "a line released and placed again shows the later date: for waiting times use "
            "line_waits.first_allocated_on.",
            "arrival_seq": "Global arrival order (files by name, rows in order, night after night).",
            "source_file": "Inbox file the line came from.",
            "source_line": "1-based data row in that file.",
            "run_id": "Run that received the line.",
            "line_key": "Hash of (orderid, sku), kept so a night finds repeats by an integer.",
        },
    ),
    "allocations": (
        "History of every allocation made, one row per placement of a line in a batch.",
        {
            "orderid": "Order identifier.",
            "sku": "Stock-keeping unit.",
            "qty": "Quantity allocated.",
            "batchref": "Batch the line was given to.",
            "eta": "ETA of that batch when the allocation was made (NULL = in stock).",
            "business_date": "Night the allocation was made.",
            "run_id": "Run that made it.",
            "arrival_seq": "Arrival order of the line (reports list allocations in this order).",
            "released_on": "Night a manifest change took the line back from this batch, if ever.",
        },
    ),
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
    "runs": (
        "One row per committed run: when, what it received, what it decided "
        "(the counts of its summary.json).",
        {
            "run_id": "Run identifier (the Prefect flow run id when run under Prefect).",
            "business_date": "Night the run was for.",
            "started_at": "UTC start.",
            "finished_at": "UTC commit time.",
            "status": "completed (a run that fails commits nothing and leaves no row).",
            "orders_received": "Order rows read (valid, duplicate and rejected).",
            "orders_accepted": "New order lines stored.",
            "orders_duplicate": "Order rows identical to a line already known (ignored).",
            "orders_rejected": "Order rows rejected (see rejected_rows).",
            "batches_received": "Manifest rows read (valid, duplicate and rejected).",
            "batches_accepted": "New batches stored, plus changes to known batches.",
            "batches_duplicate": "Manifest rows repeating what is known (ignored).",
            "batches_rejected": "Manifest rows rejected (see rejected_rows).",
            "allocated": "Lines allocated by the run (new lines and lines that waited).",
            "out_of_stock": "Lines left open (out of stock) after the run.",
            "files_received": "Inbox files found.",
            "files_rejected": "Inbox files rejected whole.",
            "files_skipped": "Inbox files skipped because a run of the same night committed them.",
            "input_files": "Inbox files read by the run.",
            "rejected_files": "Inbox files rejected whole.",
            "message": "Note about the run, if any.",
            "batches_updated": "Known batches a manifest changed.",
            "eta_changes": "Manifest changes of an ETA.",
            "qty_increases": "Manifest changes raising a quantity.",
            "qty_decreases": "Manifest changes lowering a quantity (not to 0).",
            "cancellations": "Manifest changes setting a quantity to 0.",
            "lines_released": "Allocated lines a manifest change took back.",
            "lines_replaced": "Released lines allocated again the same night.",
            "lines_waiting": "Lines left open after the run that arrived on an earlier night.",
            "oldest_wait_days": "Days the longest-waiting open line had waited after the run "
            "(NULL: no open line; also for runs before schema version 6).",
        },
    ),
    "rejected_rows": (
        "Rows and files that were not loaded, with the reason and the values as received.",
        {
            "run_id": "Run that rejected it.",
            "business_date": "Night that read it.",
            "kind": "orders or batches.",
            "source_file": "Inbox file (relative to the inbox).",
            "line": "1-based data row; NULL when the whole file was rejected.",
            "reason": "Why, in words a person can act on.",
            "raw": "The values as received (JSON).",
            "reason_code": "Stable code of the (first) reason, for grouping: see the list in "
            "docs/analysts.md (reason codes).",
        },
    ),
    "ingested_files": (
        "Every inbox entry a run found: the files it read (loaded, or rejected whole) with their "
        "checksum, and the entries it did not read (rejected unread, ignored, waiting) with why.",
        {
            "run_id": "Run that read it.",
            "business_date": "Night that read it.",
            "kind": "orders or batches (the folder it is in); file for an entry in neither.",
            "file_name": "Path relative to the inbox.",
            "size": "Bytes.",
            "sha256": "Checksum of the content (empty for an entry not read).",
            "rows": "Data rows read (0 for a rejected file).",
            "status": "loaded, rejected, ignored (not an inbox file: in the wrong place, hidden, "
            "a backup) or waiting (still being written: a later run reads it; never counted as "
            "read).",
            "reason": "Why the whole file was rejected, ignored or left waiting (NULL when loaded).",
        },
    ),
    "batch_changes": (
        "Manifest updates applied to known batches.",
        {
            "reference": "Batch reference.",
            "sku": "Its sku.",
            "change": "eta, qty_up, qty_down or cancelled.",
            "old_qty": "Purchased quantity before.",
            "new_qty": "Purchased quantity after.",
            "old_eta": "ETA before.",
            "new_eta": "ETA after.",
            "business_date": "Night the change was applied.",
            "run_id": "Run that applied it.",
            "source_file": "Manifest file of the change.",
            "source_line": "1-based data row in that file.",
        },
    ),
    "reallocations": (
        "Lines released by a manifest change, and where each went next.",
        {
            "orderid": "Order identifier.",
            "sku": "Stock-keeping unit.",
            "qty": "Quantity of the line.",
            "from_batchref": "Batch that gave the line back.",
            "to_batchref": "Batch it was re-placed in that night (NULL: out of stock).",
            "reason": "The manifest change that released it.",
            "business_date": "Night of the change.",
            "run_id": "Run that applied it.",
            "reason_code": "qty_down or cancelled: the batch_changes.change that released it.",
            "change_source_file": "Manifest file of that change (batch_changes.source_file).",
            "change_source_line": "1-based data row of that change in its file "
            "(batch_changes.source_line).",
        },
    ),
    "manifest_rows": (
        "Every manifest row received (applied or not), so that a file read again is not applied "
        "again.",
        {
            "source_file": "Inbox file the row came from (relative to the inbox).",
            "line": "1-based data row in that file.",
            "reference": "Batch reference.",
            "sku": "Its sku.",
            "qty": "Purchased quantity the row said.",
            "eta": "ETA the row said (NULL = in stock).",
            "business_date": "Night that received it.",
            "run_id": "Run that received it.",
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
            "line_fill_rate": "lines_placed / lines_eligible (NULL when nothing was eligible).",
            "unit_fill_rate": "units_placed / units_eligible (NULL when nothing was eligible).",
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
    "night_checks": (
        "Every check a night ran on itself before its commit (README, checks of the night): a "
        "committed night's results, and a stopped night's (committed false: nothing else of "
        "that night was kept).",
        {
            "business_date": "Night checked.",
            "run_id": "Run that checked it.",
            "checked_at": "UTC time of the check.",
            "check_name": "The check (README lists them).",
            "level": "stop (a failure stops the night), warn (logged and alerted) or off.",
            "figure": "What the check measured tonight (a count, a share 0-1 or a factor); NULL "
            "when skipped.",
            "threshold": "Where the check fails (above or below it, per the check).",
            "result": "passed, failed, accepted (failed, and the run accepted it, so the night "
            "committed) or skipped (does not apply tonight, or level off).",
            "detail": "The figure in words.",
            "committed": "Whether the night committed (false: stopped by a failed stop check).",
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
    "quarantined_batches": (
        "Batches taken out of the allocation, or repaired, on an upgrade because their eta is "
        "outside the dates the inbox accepts (an older release let them in).",
        {
            "reference": "Batch reference.",
            "sku": "Its sku.",
            "eta": "The eta it held, outside the accepted dates.",
            "purchased": "Quantity bought, when quarantined.",
            "allocated": "Quantity given to order lines, when quarantined.",
            "first_seen": "Business date the batch was first received.",
            "source_file": "Inbox file the batch first came from.",
            "source_line": "1-based data row in that file.",
            "quarantined_at": "UTC time of the upgrade that quarantined or repaired it.",
            "reason": "What was wrong and what was done (removed, or its earlier eta restored).",
        },
    ),
    "schema_version": (
        "Warehouse schema versions applied, newest last.",
        {
            "version": "Schema version.",
            "applied_at": "UTC time the upgrade to it was committed.",
        },
    ),
}

#: Per table macro: its comment (a macro's columns cannot carry comments: the text names them).
MACRO_COMMENTS: dict[str, str] = {
    "open_lines_asof": "Table macro: the order lines open after the night of a date, as "
    "out_of_stock showed them that night: SELECT * FROM open_lines_asof(DATE '2026-11-25'). "
    "Columns orderid, sku, qty, first_seen, days_waiting (to that date), arrival_seq.",
}

#: Keys that hold in every warehouse (checked by the tests; not declared as constraints, whose
#: indexes ignore DuckDB's memory limit on tables this large): table -> its keys.
KEYS: dict[str, tuple[str, ...]] = {
    "batches": ("reference",),
    "order_lines": ("orderid, sku", "arrival_seq"),
    "allocations": ("orderid, sku, run_id",),
    "runs": ("run_id",),
}

#: Joins BI tools use: (table, columns) -> (table, columns) they name.
JOINS: tuple[tuple[str, str, str, str], ...] = (
    ("order_lines", "batchref", "batches", "reference"),
    ("allocations", "batchref", "batches", "reference"),
    ("allocations", "orderid, sku", "order_lines", "orderid, sku"),
    ("allocations", "run_id", "runs", "run_id"),
    ("reallocations", "from_batchref", "batches", "reference"),
    ("reallocations", "to_batchref", "batches", "reference"),
    ("reallocations", "orderid, sku", "order_lines", "orderid, sku"),
    ("batch_changes", "reference", "batches", "reference"),
    ("rejected_rows", "run_id", "runs", "run_id"),
    ("ingested_files", "run_id", "runs", "run_id"),
)

# What analysts are promised by name (docs/analysts.md); the other tables are documented too.
ANALYST_OBJECTS = (
    "batches",
    "order_lines",
    "allocations",
    "out_of_stock",
    "stock_position",
    "runs",
    "rejected_rows",
    "ingested_files",
    "nightly_kpis",
    "line_waits",
    "orders",
    "skus",
    "night_checks",
    "nightly_trend",
)
