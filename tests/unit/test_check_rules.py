"""The checks of the night over plain figures: each one passes an ordinary night, fails the case it
is there for, stops at level stop and only warns at level warn, and an accepted failure is kept as
accepted. The settings change levels and thresholds without code."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from allocation.service.check_definitions import BY_NAME, CHECK_NAMES, CHECKS
from allocation.service.night_checks import (
    NightFigures,
    accepted_names,
    configured,
    evaluate,
    parse_overrides,
    stop_message,
)
from allocation.settings import ParameterError, RunParameters

DAY = dt.date(2026, 11, 26)

#: An ordinary night: a few files, a few rejected rows, a volume like the last nights'.
ORDINARY = NightFigures(
    order_files=2,
    new_order_lines=1000,
    files_read=3,
    files_rejected=0,
    orders_received=1010,
    orders_rejected=10,
    batches_received=50,
    batches_rejected=1,
    order_history=[950, 1100, 1000, 980, 1020, 990],
    allocated_before=5000,
    lines_released=40,
    active_batches_before=400,
    batches_cancelled=3,
    manifests_without_eta=[],
    lines_tried=1200,
    lines_open=150,
    last_out_of_stock_share=0.12,
    stopped_nights=[],
)

#: Per check: a night that fails it (changes to the ordinary one), and its default level.
FAILING: dict[str, dict[str, object]] = {
    "order_files": {"order_files": 0, "new_order_lines": 0},  # the orders folder misnamed
    "new_order_lines": {"new_order_lines": 0},  # last night's files again
    "files_rejected": {"files_rejected": 1},  # an orders file missing its qty column
    "order_rows_rejected": {"orders_rejected": 900},
    "manifest_rows_rejected": {"batches_rejected": 50},  # a manifest with a renamed qty column
    "order_volume": {"new_order_lines": 2100},  # a doubled feed
    "lines_released": {"lines_released": 2500},
    "batches_cancelled": {"batches_cancelled": 200},
    "manifest_without_eta": {"manifests_without_eta": ["batches/m.csv"]},  # eta renamed
    "out_of_stock_jump": {"lines_open": 900},
    "earlier_night_stopped": {"stopped_nights": [(dt.date(2026, 11, 25), "files_rejected")]},
}
DEFAULT_LEVELS = {
    "order_files": "stop",
    "new_order_lines": "warn",
    "files_rejected": "stop",
    "order_rows_rejected": "stop",
    "manifest_rows_rejected": "stop",
    "order_volume": "stop",
    "lines_released": "stop",
    "batches_cancelled": "stop",
    "manifest_without_eta": "stop",
    "out_of_stock_jump": "warn",
    "earlier_night_stopped": "stop",
}


def night(**changes: object) -> NightFigures:
    return dataclasses.replace(ORDINARY, **changes)  # type: ignore[arg-type]


def result_of(name: str, figures: NightFigures, **kwargs: object) -> str:
    [found] = [r for r in evaluate(CHECKS, figures, frozenset(), **kwargs) if r.check == name]  # type: ignore[arg-type]
    return found.result


def test_every_check_is_declared_with_a_failing_case_here() -> None:
    assert set(FAILING) == set(CHECK_NAMES) == set(DEFAULT_LEVELS)
    assert {c.name: c.level for c in CHECKS} == DEFAULT_LEVELS


def test_an_ordinary_night_passes_every_check() -> None:
    results = evaluate(CHECKS, ORDINARY, frozenset())
    assert {r.check: r.result for r in results} == dict.fromkeys(CHECK_NAMES, "passed")
    assert stop_message(DAY, results) is None


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_each_check_fails_its_case_at_its_default_level(name: str) -> None:
    results = evaluate(CHECKS, night(**FAILING[name]), frozenset())
    [found] = [r for r in results if r.check == name]
    assert found.result == "failed"
    message = stop_message(DAY, results)
    if DEFAULT_LEVELS[name] == "stop":
        assert message is not None and f"night {DAY} stopped by check(s) {name} " in message
        assert "Nothing was committed" in message and f"--accept {name}" in message
    else:
        assert message is None or name not in message


@pytest.mark.parametrize("name", CHECK_NAMES)
@pytest.mark.parametrize("level", ["warn", "stop"])
def test_each_check_stops_at_level_stop_and_only_warns_at_level_warn(name: str, level: str) -> None:
    checks = configured(RunParameters.build(business_date=DAY, checks=f"{name}={level}"))
    results = evaluate(checks, night(**FAILING[name]), frozenset())
    message = stop_message(DAY, results)
    stops = message is not None and f" {name} " in message
    assert stops is (level == "stop")
    assert [r.result for r in results if r.check == name] == ["failed"]


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_an_accepted_failure_is_kept_as_accepted_and_does_not_stop(name: str) -> None:
    results = evaluate(CHECKS, night(**FAILING[name]), frozenset({name}))
    [found] = [r for r in results if r.check == name]
    assert found.result == "accepted" and found.failed
    assert stop_message(DAY, results) is None or f" {name} " not in str(stop_message(DAY, results))


def test_the_stop_line_names_the_figure_the_threshold_and_the_way_on() -> None:
    results = evaluate(CHECKS, night(files_rejected=2, files_read=4), frozenset())
    message = stop_message(DAY, results)
    assert message is not None and "\n" not in message
    assert "files_rejected 2 (fails above 0): 2 of 4 file(s) rejected whole" in message
    assert "--accept files_rejected" in message


def test_an_empty_night_stops_unless_a_setting_says_it_is_normal() -> None:
    empty = night(order_files=0, new_order_lines=0, orders_received=0, orders_rejected=0)
    assert result_of("order_files", empty) == "failed"
    assert result_of("order_files", empty, empty_night_ok=True) == "skipped"
    assert result_of("new_order_lines", empty, empty_night_ok=True) == "skipped"


def test_the_volume_check_waits_for_enough_history_then_flags_half_and_double() -> None:
    short = night(order_history=[1000] * 4, new_order_lines=5000)
    assert result_of("order_volume", short) == "skipped"
    assert result_of("order_volume", short, min_history=4) == "failed"
    assert result_of("order_volume", night(new_order_lines=500)) == "failed"  # half a feed
    assert result_of("order_volume", night(new_order_lines=1700)) == "passed"


def test_manifest_checks_apply_only_when_a_known_batch_changed() -> None:
    quiet = night(allocated_before=None, active_batches_before=None, lines_released=0)
    assert result_of("lines_released", quiet) == "skipped"
    assert result_of("batches_cancelled", quiet) == "skipped"


@pytest.mark.parametrize(
    ("name", "small"),
    [
        ("order_rows_rejected", {"orders_received": 10, "orders_rejected": 9}),
        ("manifest_rows_rejected", {"batches_received": 5, "batches_rejected": 5}),
        ("lines_released", {"allocated_before": 5, "lines_released": 2}),
        ("batches_cancelled", {"active_batches_before": 2, "batches_cancelled": 1}),
        ("out_of_stock_jump", {"lines_tried": 3, "lines_open": 3}),
    ],
)
def test_a_share_of_a_handful_is_skipped_not_failed(name: str, small: dict[str, object]) -> None:
    assert result_of(name, night(**small)) == "skipped"


def test_no_order_file_is_normal_while_no_night_has_had_orders_yet() -> None:
    """A new warehouse is stocked first: manifests, no orders. After a night with orders, a
    night without an order file stops."""
    stocking = night(order_files=0, new_order_lines=0, order_history=[0, 0])
    assert result_of("order_files", stocking) == "skipped"
    assert result_of("order_files", night(order_files=0, order_history=[0, 12])) == "failed"


def test_the_out_of_stock_jump_needs_an_earlier_night() -> None:
    assert result_of("out_of_stock_jump", night(last_out_of_stock_share=None)) == "skipped"


def test_level_off_skips_a_check() -> None:
    checks = configured(RunParameters.build(business_date=DAY, checks="files_rejected=off"))
    results = evaluate(checks, night(files_rejected=3), frozenset())
    assert [r.result for r in results if r.check == "files_rejected"] == ["skipped"]
    assert stop_message(DAY, results) is None


def test_overrides_set_a_level_a_threshold_or_both() -> None:
    assert parse_overrides(" files_rejected=warn , order_volume=:3,lines_released=STOP:0.5") == {
        "files_rejected": ("warn", None),
        "order_volume": (None, 3.0),
        "lines_released": ("stop", 0.5),
    }
    checks = {
        c.name: c
        for c in configured(RunParameters.build(business_date=DAY, checks="order_volume=:3"))
    }
    assert checks["order_volume"].threshold == 3 and checks["order_volume"].level == "stop"
    assert checks["files_rejected"] == BY_NAME["files_rejected"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("no_such_check=warn", "not NAME=LEVEL[:THRESHOLD] with a check's name"),
        ("files_rejected", "not NAME=LEVEL[:THRESHOLD]"),
        ("files_rejected=loud", "level 'loud' of files_rejected is not one of warn, stop, off"),
        ("files_rejected=stop:many", "threshold 'many' of files_rejected is not a number"),
        ("files_rejected=stop:-1", "is not a number of 0 or more"),
        ("files_rejected=stop:nan", "is not a number of 0 or more"),
        ("order_volume=:0.5", "threshold of order_volume is a factor and must be over 1"),
        ("files_rejected=", "sets nothing"),
    ],
)
def test_a_bad_override_is_refused_naming_the_variable_and_what_is_allowed(
    text: str, words: str
) -> None:
    with pytest.raises(ParameterError, match="ALLOCATION_CHECKS=") as error:
        parse_overrides(text)
    assert words in str(error.value)


def test_accepting_all_accepts_every_check_and_an_unknown_name_is_refused() -> None:
    assert accepted_names(["all"]) == frozenset(CHECK_NAMES)
    assert accepted_names([" Files_Rejected ", ""]) == {"files_rejected"}
    with pytest.raises(ParameterError, match=r"cannot accept check.*files_rejectd.*checks: "):
        accepted_names(["files_rejectd"])
    with pytest.raises(ParameterError, match="files_rejectd"):  # not hidden by `all`
        accepted_names(["all", "files_rejectd"])


def test_accept_checks_come_from_the_caller_never_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALLOCATION_ACCEPT_CHECKS", '["all"]')
    assert RunParameters.build(business_date=DAY).accept_checks == ()
    given = RunParameters.build(business_date=DAY, accept_checks="files_rejected, order_files")
    assert given.accept_checks == ("files_rejected", "order_files")
