"""An error and the errors it was raised from, each once: what the checks of a failure's kind
(`disk.is_disk_full`, `memory_limit.is_out_of_memory`, `flows.prefect_api.is_api_error`) look
through, since the error that reaches a step is often a later one raised from the cause."""

from __future__ import annotations

from collections.abc import Iterator


def error_chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then what it was raised from (`__cause__`, else `__context__`), until the chain
    ends or comes back to an error already given."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
