"""Prefect's fixed cost: a flow of a few no-op tasks, run as a whole process.

    python -m benchmarks.trivial [--tasks 5]

`benchmarks.run` runs it against the same server as the pipeline, in the same run, so the table
can state what any flow run pays before and after its work: importing Prefect, creating the flow
and task runs, and the wrap-up at exit. No result is cached or persisted, as in the pipeline's tasks,
and it sends no heartbeats, as a night run by `allocation run` (`allocation.flows.heartbeats`):
with them, the end of the run waits up to a second that the night does not.
"""

from __future__ import annotations

import argparse

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from allocation.flows.heartbeats import without_heartbeats

FLOW_NAME = "bench-trivial"


@task(name="noop", cache_policy=NO_CACHE, persist_result=False)
def noop(number: int) -> int:
    return number


@flow(name=FLOW_NAME, persist_result=False)
def trivial(tasks: int = 5) -> int:
    return sum(noop(number) for number in range(tasks))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5)
    args = parser.parse_args(argv)
    with without_heartbeats():
        print(f"trivial flow: {trivial(args.tasks)}")


if __name__ == "__main__":
    main()
