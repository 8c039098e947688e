"""The checks a night runs on itself after loading and before its commit: how the settings change
them, and how a night's figures turn into results. What each check is, with its default level
and threshold, is declared in `check_definitions` (README, "Checks of the night", lists them).

A check has a level: `stop` (a failure ends the night before it commits: `NightStopped`, exit
5), `warn` (the night commits; the failure is logged, kept and alerted quietly) or `off`. The
settings change any check's level and threshold without code (`ALLOCATION_CHECKS`, see
`parse_overrides`); `ALLOCATION_EMPTY_NIGHT_OK` says a night without orders is normal, and
`ALLOCATION_CHECK_MIN_HISTORY` how many committed nights the volume check needs first. The
operator who has looked at a stopped night runs it again accepting named checks: an accepted
failure is kept as `accepted`, and the night commits.

Everything here is plain values: the figures are read inside the night's transaction through
`allocation.service.storage.CheckFigures` (`gather_figures`); `evaluate` is tested without I/O.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from allocation.service.check_definitions import (
    BY_NAME,
    CHECK_NAMES,
    CHECKS,
    LEVELS,
    Check,
    Level,
)
from allocation.service.storage import CheckFigures
from allocation.settings import ParameterError, RunParameters

ALL = "all"
#: A share over fewer rows, lines or batches than this says little (2 of 5 lines released is a
#: supplier's correction, not a wrong manifest): the share checks skip such a night.
MIN_BASE = 20
Result = Literal["passed", "failed", "accepted", "skipped"]


class NightStopped(RuntimeError):
    """A stop-level check failed: nothing of the night was committed. The message is one line
    naming the check(s), figure, threshold and the way on."""

    def __init__(self, message: str, results: Sequence[CheckResult]) -> None:
        super().__init__(message)
        self.results = tuple(results)  # every check's, the failed ones among them


# -- settings -----------------------------------------------------------------------------
def parse_overrides(text: str) -> dict[str, tuple[Level | None, float | None]]:
    """`ALLOCATION_CHECKS`: comma-separated `NAME=LEVEL`, `NAME=LEVEL:THRESHOLD` or
    `NAME=:THRESHOLD` (e.g. `files_rejected=warn,order_volume=stop:3`). A ParameterError names
    what is wrong and what is allowed."""
    overrides: dict[str, tuple[Level | None, float | None]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = (s.strip() for s in item.partition("="))
        if not sep or name not in BY_NAME:
            raise ParameterError(
                f"ALLOCATION_CHECKS={text!r}: {item!r} is not NAME=LEVEL[:THRESHOLD] with a "
                f"check's name; checks: {', '.join(CHECK_NAMES)}"
            )
        level_text, _, threshold_text = (s.strip() for s in value.partition(":"))
        level: Level | None = None
        if level_text:
            if level_text.lower() not in LEVELS:
                raise ParameterError(
                    f"ALLOCATION_CHECKS={text!r}: level {level_text!r} of {name} is not one of "
                    f"{', '.join(LEVELS)}"
                )
            level = level_text.lower()  # type: ignore[assignment]
        threshold = None
        if threshold_text:
            try:
                threshold = float(threshold_text)
            except ValueError:
                threshold = None
            if threshold is None or threshold != threshold or threshold < 0:  # NaN, negative
                raise ParameterError(
                    f"ALLOCATION_CHECKS={text!r}: threshold {threshold_text!r} of {name} is not "
                    "a number of 0 or more"
                )
            if BY_NAME[name].fails == "outside" and threshold <= 1:
                raise ParameterError(
                    f"ALLOCATION_CHECKS={text!r}: threshold of {name} is a factor and must be "
                    "over 1 (e.g. 2: fails above twice or below half the median)"
                )
        if level is None and threshold is None:
            raise ParameterError(
                f"ALLOCATION_CHECKS={text!r}: {item!r} sets nothing: give a level "
                f"({', '.join(LEVELS)}) and/or :THRESHOLD"
            )
        overrides[name] = (level, threshold)
    return overrides


def configured(params: RunParameters) -> tuple[Check, ...]:
    """The checks as the settings set them (the defaults above, changed by ALLOCATION_CHECKS)."""
    overrides = parse_overrides(params.checks)
    result = []
    for check in CHECKS:
        level, threshold = overrides.get(check.name, (None, None))
        result.append(
            replace(
                check,
                level=check.level if level is None else level,
                threshold=check.threshold if threshold is None else threshold,
            )
        )
    return tuple(result)


def accepted_names(given: Iterable[str]) -> frozenset[str]:
    """The checks a run accepts (`all`, or names), or a ParameterError naming the unknown one."""
    names = {name.strip().lower() for name in given if name.strip()}
    unknown = sorted(names - set(CHECK_NAMES) - {ALL})
    if unknown:  # also beside `all`: a typo is never accepted silently
        raise ParameterError(
            f"cannot accept check(s) {', '.join(unknown)}: no such check; checks: "
            f"{', '.join(CHECK_NAMES)}, or all"
        )
    return frozenset(CHECK_NAMES) if ALL in names else frozenset(names)


def check_settings(params: RunParameters) -> None:
    """Refuses, before anything is read, a bad ALLOCATION_CHECKS or an unknown accepted check."""
    configured(params)
    accepted_names(params.accept_checks)


# -- figures and results ------------------------------------------------------------------
@dataclass(frozen=True)
class NightFigures:
    """What the checks look at, gathered inside the night's transaction before its commit."""

    order_files: int
    new_order_lines: int
    files_read: int
    files_rejected: int
    orders_received: int
    orders_rejected: int
    batches_received: int
    batches_rejected: int
    order_history: Sequence[int]  # new order lines of each earlier committed night, newest first
    allocated_before: int | None  # lines allocated before tonight's manifest changes (None:
    lines_released: int  # no change to a known batch tonight)
    active_batches_before: int | None  # batches with a quantity before tonight's changes
    batches_cancelled: int
    manifests_without_eta: Sequence[str]
    lines_tried: int
    lines_open: int
    last_out_of_stock_share: float | None  # the last committed night's; None before any
    stopped_nights: Sequence[tuple[dt.date, str]] = field(default_factory=tuple)  # date, checks


def gather_figures(
    store: CheckFigures,
    day: dt.date,
    counts: Mapping[str, int],
    *,
    order_files: int,
    manifests_without_eta: Sequence[str],
    before: tuple[int, int] | None,
    lines_tried: int,
) -> NightFigures:
    """Tonight's figures: the night's `counts` (the run's counts, `out_of_stock` among them),
    what the warehouse says of earlier nights (`store`, read in the open transaction), and
    `before`, the allocated lines and active batches read before tonight's manifest changes
    (None: no change to a known batch tonight)."""
    return NightFigures(
        order_files=order_files,
        new_order_lines=counts["orders_accepted"] + store.accepted_earlier_today(day),
        files_read=counts["files_received"],
        files_rejected=counts["files_rejected"],
        orders_received=counts["orders_received"],
        orders_rejected=counts["orders_rejected"],
        batches_received=counts["batches_received"],
        batches_rejected=counts["batches_rejected"],
        order_history=store.order_history(day),
        allocated_before=None if before is None else before[0],
        lines_released=counts.get("lines_released", 0),
        active_batches_before=None if before is None else before[1],
        batches_cancelled=counts.get("cancellations", 0),
        manifests_without_eta=manifests_without_eta,
        lines_tried=lines_tried,
        lines_open=counts["out_of_stock"],
        last_out_of_stock_share=store.last_out_of_stock_share(),
        stopped_nights=store.stopped_nights(day),
    )


@dataclass(frozen=True)
class CheckResult:
    check: str
    level: Level
    threshold: float
    figure: float | None  # None when skipped
    result: Result
    detail: str

    @property
    def failed(self) -> bool:
        return self.result in ("failed", "accepted")

    @property
    def stops(self) -> bool:
        return self.level == "stop" and self.result == "failed"

    def line(self) -> str:
        """`files_rejected 2 (fails above 0): <detail>`."""
        shown = "-" if self.figure is None else f"{self.figure:.4g}"
        limit = BY_NAME[self.check]
        return f"{self.check} {shown} ({replace(limit, threshold=self.threshold).limit}): {self.detail}"


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def figure_of(
    check: Check, figures: NightFigures, empty_night_ok: bool, min_history: int
) -> tuple[float | None, str]:
    """The check's figure tonight (None: it does not apply) and what it means, in words."""
    name = check.name
    if name in ("order_files", "new_order_lines") and empty_night_ok:
        return None, "ALLOCATION_EMPTY_NIGHT_OK: a night without orders is normal"
    if name == "order_files" and not any(figures.order_history) and not figures.order_files:
        return None, "no committed night has had order lines yet (a warehouse being stocked)"
    if name == "order_files":
        return figures.order_files, f"{figures.order_files} order file(s) for this night"
    if name == "new_order_lines":
        return figures.new_order_lines, f"{figures.new_order_lines} new order line(s) for this date"
    if name == "files_rejected":
        return figures.files_rejected, (
            f"{figures.files_rejected} of {figures.files_read} file(s) rejected whole"
        )
    if name == "order_rows_rejected":
        if figures.orders_received < MIN_BASE:
            return None, f"{figures.orders_received} order row(s) tonight, under {MIN_BASE}"
        return _share(figures.orders_rejected, figures.orders_received), (
            f"{figures.orders_rejected} of {figures.orders_received} order row(s) rejected"
        )
    if name == "manifest_rows_rejected":
        if figures.batches_received < MIN_BASE:
            return None, f"{figures.batches_received} manifest row(s) tonight, under {MIN_BASE}"
        return _share(figures.batches_rejected, figures.batches_received), (
            f"{figures.batches_rejected} of {figures.batches_received} manifest row(s) rejected"
        )
    if name == "order_volume":
        history = list(figures.order_history)
        if len(history) < min_history:
            return None, (
                f"{len(history)} committed night(s) before this one, {min_history} needed "
                "(ALLOCATION_CHECK_MIN_HISTORY)"
            )
        median = statistics.median(history)
        if median <= 0:
            return None, "the last nights' median of new order lines is 0"
        return figures.new_order_lines / median, (
            f"{figures.new_order_lines} new order line(s) against a median of {median:g} over "
            f"the last {len(history)} night(s)"
        )
    if name in ("lines_released", "batches_cancelled") and figures.allocated_before is None:
        return None, "no manifest change to a known batch tonight"
    if name == "lines_released":
        if figures.allocated_before is None or figures.allocated_before < MIN_BASE:
            return (
                None,
                f"{figures.allocated_before} line(s) allocated before tonight, under {MIN_BASE}",
            )
        return _share(figures.lines_released, figures.allocated_before), (
            f"{figures.lines_released} of {figures.allocated_before} allocated line(s) released"
        )
    if name == "batches_cancelled":
        if figures.active_batches_before is None or figures.active_batches_before < MIN_BASE:
            return (
                None,
                f"{figures.active_batches_before} batch(es) with stock before tonight, under {MIN_BASE}",
            )
        return _share(figures.batches_cancelled, figures.active_batches_before), (
            f"{figures.batches_cancelled} of {figures.active_batches_before} batch(es) cancelled"
        )
    if name == "manifest_without_eta":
        files = ", ".join(figures.manifests_without_eta) or "none"
        return len(figures.manifests_without_eta), f"manifest file(s) without eta: {files}"
    if name == "out_of_stock_jump":
        if figures.last_out_of_stock_share is None or figures.lines_tried < MIN_BASE:
            return None, f"no earlier night, or under {MIN_BASE} line(s) to allocate tonight"
        share = _share(figures.lines_open, figures.lines_tried)
        return share - figures.last_out_of_stock_share, (
            f"{share:.1%} of {figures.lines_tried} line(s) left out of stock, "
            f"{figures.last_out_of_stock_share:.1%} last night"
        )
    if name == "earlier_night_stopped":
        named = "; ".join(f"{day} (stopped by {checks})" for day, checks in figures.stopped_nights)
        return len(figures.stopped_nights), f"earlier night(s) not committed: {named or 'none'}"
    raise AssertionError(f"no figure for check {name}")


def evaluate(
    checks: Sequence[Check],
    figures: NightFigures,
    accepted: frozenset[str],
    *,
    empty_night_ok: bool = False,
    min_history: int = 5,
) -> list[CheckResult]:
    """Every check's result tonight, in declaration order."""
    results = []
    for check in checks:
        if check.level == "off":
            results.append(
                CheckResult(check.name, "off", check.threshold, None, "skipped", "level off")
            )
            continue
        figure, detail = figure_of(check, figures, empty_night_ok, min_history)
        if figure is None:
            result: Result = "skipped"
        elif not check.failed_by(figure):
            result = "passed"
        elif check.name in accepted:
            result = "accepted"
        else:
            result = "failed"
        results.append(
            CheckResult(check.name, check.level, check.threshold, figure, result, detail)
        )
    return results


def stop_message(day: dt.date, results: Sequence[CheckResult]) -> str | None:
    """The one line a stopped night ends with, or None when no stop-level check failed."""
    stopped = [r for r in results if r.stops]
    if not stopped:
        return None
    named = "; ".join(r.line() for r in stopped)
    ways = " ".join(f"{r.check}: {BY_NAME[r.check].way_on.format(name=r.check)}." for r in stopped)
    both = (
        f" All at once: --accept {','.join(r.check for r in stopped)}." if len(stopped) > 1 else ""
    )
    return f"night {day} stopped by check(s) {named}. Nothing was committed. {ways}{both}"
