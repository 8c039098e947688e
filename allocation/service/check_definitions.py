"""The checks a night runs on itself after loading and before its commit, as declared: each one's
name, the figure it looks at, its default level and threshold, and what the operator does when it
fails. The one place they are declared (README, "Checks of the night", lists them); how the
settings change them and how a night's figures turn into results is `night_checks`.

A check has a level: `stop` (a failure ends the night before it commits: `NightStopped`, exit
5), `warn` (the night commits; the failure is logged, kept and alerted quietly) or `off`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Level = Literal["warn", "stop", "off"]
LEVELS: tuple[Level, ...] = get_args(Level)
#: Every check by name: the run form's multi-choice of checks to accept is built from it.
CheckName = Literal[
    "order_files",
    "new_order_lines",
    "files_rejected",
    "order_rows_rejected",
    "manifest_rows_rejected",
    "order_volume",
    "lines_released",
    "batches_cancelled",
    "manifest_without_eta",
    "out_of_stock_jump",
    "earlier_night_stopped",
]
CHECK_NAMES: tuple[str, ...] = get_args(CheckName)


@dataclass(frozen=True)
class Check:
    """One check: the figure it looks at, when that fails (`above` or `below` the threshold;
    `outside`: above the threshold or below its inverse, for a ratio), and what to do."""

    name: str
    level: Level
    threshold: float
    fails: Literal["above", "below", "outside"]
    figure: str  # what the figure is, in words
    way_on: str  # what the operator does when it fails

    def failed_by(self, figure: float) -> bool:
        if self.fails == "above":
            return figure > self.threshold
        if self.fails == "below":
            return figure < self.threshold
        return figure > self.threshold or figure < 1 / self.threshold

    @property
    def limit(self) -> str:
        """The threshold as a condition, in words."""
        if self.fails == "outside":
            return f"fails above {self.threshold:g} or below {1 / self.threshold:.2g}"
        return f"fails {self.fails} {self.threshold:g}"


ACCEPT = "run the same night again with --accept {name} (the run form: accept_checks)"

#: The checks and their defaults, chosen so that an ordinary night passes and a feed that did
#: not arrive, arrived twice, arrived half or in a new shape stops (README lists the reasons).
CHECKS: tuple[Check, ...] = (
    Check(
        "order_files",
        "stop",
        1,
        "below",
        "order files tonight (read, or already committed for this date)",
        "look for the night's order files (a misnamed orders/ folder, a feed that did not "
        "arrive) and put them in INBOX/orders/; if tonight really has no orders, " + ACCEPT,
    ),
    Check(
        "new_order_lines",
        "warn",
        1,
        "below",
        "new order lines of the date (tonight and earlier runs of it)",
        "every order row was a duplicate or rejected: check that tonight's files are not last "
        "night's again",
    ),
    Check(
        "files_rejected",
        "stop",
        0,
        "above",
        "inbox files rejected whole tonight",
        "read rejected.csv of a dry run (or the log) for the reason, have the file re-exported "
        "and put it in the inbox; to go on without it, " + ACCEPT,
    ),
    Check(
        "order_rows_rejected",
        "stop",
        0.5,
        "above",
        "share of tonight's order rows rejected",
        "read the reasons in the log (a dry run writes rejected.csv), have the file fixed; to "
        "commit the valid rows only, " + ACCEPT,
    ),
    Check(
        "manifest_rows_rejected",
        "stop",
        0.5,
        "above",
        "share of tonight's manifest rows rejected",
        "read the reasons in the log (a dry run writes rejected.csv), have the manifest fixed; "
        "to commit the valid rows only, " + ACCEPT,
    ),
    Check(
        "order_volume",
        "stop",
        1.8,
        "outside",
        "new order lines against the median of the last committed nights (x times)",
        "a missing or doubled feed: compare tonight's order files with earlier nights'; if the "
        "volume is real, " + ACCEPT,
    ),
    Check(
        "lines_released",
        "stop",
        0.3,
        "above",
        "share of allocated lines that tonight's manifest changes took back",
        "a wrong manifest: compare it with the last one (reallocations.csv of a dry run lists "
        "each line); if the changes are real, " + ACCEPT,
    ),
    Check(
        "batches_cancelled",
        "stop",
        0.3,
        "above",
        "share of active batches that tonight's manifests cancelled (qty 0)",
        "a wrong manifest: check the qty column of tonight's manifests; if the cancellations "
        "are real, " + ACCEPT,
    ),
    Check(
        "manifest_without_eta",
        "stop",
        0,
        "above",
        "manifest files with ignored columns and no eta on any row (a renamed eta column)",
        "a renamed eta column makes every batch in stock now: have the file sent with an eta "
        "column; if the whole manifest really is in stock, " + ACCEPT,
    ),
    Check(
        "out_of_stock_jump",
        "warn",
        0.25,
        "above",
        "share of lines left out of stock, minus the last committed night's",
        "see the top out-of-stock skus: stock does run out, but a missing manifest looks the same",
    ),
    Check(
        "earlier_night_stopped",
        "stop",
        0,
        "above",
        "earlier nights stopped by a check and never committed",
        "its files may still be in the inbox: run that night again (accepting its checks), or "
        "to take its files in under this date, " + ACCEPT,
    ),
)
BY_NAME = {check.name: check for check in CHECKS}
