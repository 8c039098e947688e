"""A failed night's log: an expected error's one-line cause without a traceback; a bug's
traceback kept."""

from __future__ import annotations

import logging
import sys

from allocation import cli
from allocation.flows.error_logs import ENGINE_EXITED, EXPECTED_ERRORS, OneLineForExpectedErrors
from allocation.io.readers import InboxError


def record_of(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "prefect.task_runs", logging.ERROR, __file__, 1, "Task run failed: %r", (error,), exc_info
    )


def test_every_error_with_an_exit_code_of_its_own_logs_one_line() -> None:
    """The CLI's exit codes and the flow's one-line errors are one list: a new exit code's
    error class must be added to EXPECTED_ERRORS too."""
    assert [kind for kind, _ in cli.EXIT_CODES if not issubclass(kind, EXPECTED_ERRORS)] == []


def test_an_expected_error_loses_its_traceback_and_keeps_its_message() -> None:
    record = record_of(InboxError("inbox folder data/inbox does not exist"))

    assert OneLineForExpectedErrors().filter(record)

    formatted = logging.Formatter().format(record)
    assert formatted == "Task run failed: InboxError('inbox folder data/inbox does not exist')"


def test_a_bug_keeps_its_traceback() -> None:
    record = record_of(KeyError("batchref"))

    assert OneLineForExpectedErrors().filter(record)

    assert "Traceback (most recent call last)" in logging.Formatter().format(record)


def test_the_engines_last_unexpected_exception_line_is_dropped_for_an_expected_error() -> None:
    """Seen on a deployment run refused for its date order: the one-line cause, then "Engine
    execution exited with unexpected exception" with the traceback again."""
    record = record_of(InboxError("inbox folder data/inbox does not exist"))
    record.msg, record.args = ENGINE_EXITED, ()

    assert not OneLineForExpectedErrors().filter(record)
