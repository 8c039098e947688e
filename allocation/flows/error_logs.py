"""Failed nights' logs an on-call engineer can read: the cause in one line, tracebacks for bugs.

Prefect logs a task or flow run that raises with its traceback (`Task run failed with
exception: ... - Retries are exhausted`, `Encountered exception during execution: ...`), about
25 lines each around a one-line cause. An expected error, one with an exit code of its own on
the command line (a bad parameter or inbox, the warehouse, publishing) or a night that cannot
run in date order, already says what is wrong and what to do: its log lines keep Prefect's
one-line message and lose the traceback. Anything else is a bug, and keeps its traceback.

`EXPECTED_ERRORS` lists the exception classes of `allocation.cli.EXIT_CODES` (the CLI sits above
the flows, so it cannot be imported from here; tests/unit/test_error_logs.py keeps the two
lists in step) and `NightOutOfOrder`.
"""

from __future__ import annotations

import logging

from allocation.flows.ordering import NightOutOfOrder
from allocation.io.outbox import OutboxError
from allocation.io.publish import PublishError
from allocation.io.readers import InboxError
from allocation.io.run_lock import RunLockError
from allocation.io.unit_of_work import WarehouseError
from allocation.service.night_checks import NightStopped
from allocation.settings import ParameterError

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ParameterError,
    InboxError,
    WarehouseError,
    RunLockError,
    PublishError,
    OutboxError,
    NightStopped,
    NightOutOfOrder,
)

#: What Prefect's engine logs last, with the traceback again, when a flow run raised.
ENGINE_EXITED = "Engine execution exited with unexpected exception"

#: The loggers Prefect's engines log run failures on.
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


def is_expected(error: BaseException | None) -> bool:
    return isinstance(error, EXPECTED_ERRORS)


class OneLineForExpectedErrors(logging.Filter):
    """Drops the traceback of a log record whose exception is an expected error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_expected(record.exc_info[1]):
            if record.msg == ENGINE_EXITED:  # the cause is logged already, and not unexpected
                return False
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def install() -> None:
    """Adds the filter to Prefect's run loggers (once; idempotent)."""
    for name in RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OneLineForExpectedErrors) for f in logger.filters):
            logger.addFilter(OneLineForExpectedErrors())
