"""The documentation (`COMMENT ON`) of every warehouse table: the table's comment and one per
column. `warehouse_comments` puts it together with the views' for the upgrades to apply."""

from __future__ import annotations

from allocation.io.run_counts import RUN_COUNTS

#: Per table: its comment, and a comment per column.
TABLE_COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
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
    "runs": (
        "One row per committed run: when, what it received, what it decided "
        "(the counts of its summary.json).",
        {
            "run_id": "Run identifier (the Prefect flow run id when run under Prefect).",
            "business_date": "Night the run was for.",
            "started_at": "UTC start.",
            "finished_at": "UTC commit time.",
            "status": "completed (a run that fails commits nothing and leaves no row).",
            "input_files": "Inbox files read by the run.",
            "rejected_files": "Inbox files rejected whole.",
            "message": "Note about the run, if any.",
            **RUN_COUNTS,
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
