"""The counts a run keeps in its `runs` row, each named once here with what it counts: the
table's column comments, the night summary's sums and the tests read their names from here.
(The columns themselves are the schema's history, `warehouse_tables`: a migration's text is never
rewritten.)"""

from __future__ import annotations

#: Every count column of `runs`, with its comment.
RUN_COUNTS: dict[str, str] = {
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
}

#: What a run's row says of the state after it, not of what it received or changed: the night
#: summary reads these from the state itself rather than adding them up over the date's runs.
STATE_AFTER_RUN = ("allocated", "out_of_stock", "lines_waiting", "oldest_wait_days")

#: The `runs` counts the night summary adds up over the date's runs.
SUMMARY_COUNTS = tuple(name for name in RUN_COUNTS if name not in STATE_AFTER_RUN)
