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
            "allocated_on": "Business date of the current allocation (NULL while out of stock).",
            "arrival_seq": "Global arrival order (files by name, rows in order, night after night).",
            "source_file": "Inbox file the line came from.",
            "source_line": "1-based data row in that file.",
            "run_id": "Run that received the line.",
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
        },
    ),
    "ingested_files": (
        "Every inbox file a run read, with its checksum.",
        {
            "run_id": "Run that read it.",
            "business_date": "Night that read it.",
            "kind": "orders or batches.",
            "file_name": "Path relative to the inbox.",
            "size": "Bytes.",
            "sha256": "Checksum of the content.",
            "rows": "Data rows read (0 for a rejected file).",
            "status": "loaded or rejected.",
            "reason": "Why the whole file was rejected (NULL when loaded).",
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
)
