"""Issue 5: the `nightly-allocation` flow itself, run in this process against the session's
temporary Prefect API: outputs, clear failures for bad parameters, dry runs, artifacts under
stable keys, and retries that never apply a night twice."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import importlib
import json
import logging
import pkgutil
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import polars as pl
import prefect.runtime.deployment
import pytest
from prefect import Task, get_client
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import Artifact
from prefect.states import State

import allocation
from allocation.flows import nightly
from allocation.flows.artifacts import OUT_OF_STOCK_KEY, SUMMARY_KEY
from allocation.flows.nightly import nightly_allocation
from allocation.flows.progress import PROGRESS_KEY
from allocation.io.unit_of_work import WarehouseError
from allocation.service import night_transaction
from allocation.service.state import state_db
from allocation.settings import ParameterError
from conftest import SAMPLE_INBOX, Site

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]

NIGHT = "2026-11-25"
NEXT_NIGHT = "2026-11-26"
STEPS = {
    "finish-committed-night",
    "check-already-ingested",
    "load",
    "allocate",
    "write-reports",
    "publish",
}


@pytest.fixture
def sample(site: Site) -> Site:
    """A site whose inbox holds the shipped sample night."""
    shutil.rmtree(site.inbox)
    shutil.copytree(SAMPLE_INBOX, site.inbox)
    return site


def run_flow(site: Site, day: str, **overrides: Any) -> State[Any]:
    parameters: dict[str, Any] = {
        "inbox": str(site.inbox),
        "warehouse": str(site.warehouse),
        "outbox": str(site.outbox),
        "business_date": day,
        **overrides,
    }
    state: State[Any] = nightly_allocation(**parameters, return_state=True)
    return state


def flow_run_id(state: State[Any]) -> UUID:
    assert state.state_details.flow_run_id is not None
    return state.state_details.flow_run_id


def artifacts_of(state: State[Any]) -> dict[str | None, Artifact]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id(state)])
            )
        )
    return {artifact.key: artifact for artifact in found if artifact.type != "result"}


def table_rows(artifact: Artifact) -> list[dict[str, Any]]:
    data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert isinstance(data, list)
    return data


def runs_committed(site: Site) -> int:
    path = state_db(site.params(NIGHT))
    if not path.exists():
        return 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM runs").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_night_runs_as_named_steps_and_writes_its_outputs(sample: Site) -> None:
    state = run_flow(sample, NIGHT)

    assert state.is_completed(), state.message
    result = state.result()
    folder = sample.outbox / NIGHT
    assert result["outbox_folder"] == str(folder)
    for name in ("allocations.csv", "out_of_stock.parquet", "rejected.csv", "summary.json"):
        assert (folder / name).is_file(), name
    assert (sample.outbox / "latest").resolve() == folder.resolve()
    assert result["allocated"] > 0 and result["out_of_stock"] > 0  # the sample has both
    assert sample.query("SELECT count(*) FROM allocations WHERE business_date = ?", [NIGHT]) == [
        (result["allocated"],)
    ]
    assert runs_committed(sample) == 1

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id(state))
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
        )
    assert run.name == f"night-{NIGHT}"
    assert {task.name.rsplit("-", 1)[0] for task in tasks} == STEPS


def test_a_night_called_in_process_never_asks_the_api_whether_a_deployment_made_it(
    sample: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`prefect.runtime.deployment.id` fetches the whole flow run from the API each time it is
    read when no deployment made the run (20-85 ms each, four reads a night). The run's own
    context says it: the command's night asks nothing, and still runs as the command's night
    (not confined to the data roots, not ordered among a deployment's runs)."""
    asked: list[object] = []

    async def flow_run_fetched(run_id: object) -> None:
        asked.append(run_id)
        raise AssertionError("the flow run was fetched from the API to learn its deployment")

    monkeypatch.setattr(prefect.runtime.deployment, "_get_flow_run", flow_run_fetched)

    state = run_flow(sample, NIGHT)

    assert state.is_completed(), state.message
    assert asked == []


def test_the_artifacts_summarise_the_night_under_stable_keys(sample: Site) -> None:
    state = run_flow(sample, NIGHT)
    assert state.is_completed(), state.message
    summary = state.result()

    artifacts = artifacts_of(state)
    assert set(artifacts) == {SUMMARY_KEY, OUT_OF_STOCK_KEY, PROGRESS_KEY}
    assert artifacts[PROGRESS_KEY].type == "progress"
    assert float(artifacts[PROGRESS_KEY].data) == 100.0  # type: ignore[arg-type]
    markdown = artifacts[SUMMARY_KEY]
    assert markdown.type == "markdown"
    text = str(markdown.data)
    assert f"# Night {NIGHT}" in text
    assert f"**Allocated:** {summary['allocated']}" in text
    assert f"in the folder `{sample.outbox / NIGHT}`" in text
    assert "{'" not in text  # counts are written out, not dumped as Python dicts
    for rejected in summary["files"]["rejected_files"]:
        assert rejected["file"] in text
    table = artifacts[OUT_OF_STOCK_KEY]
    assert table.type == "table"
    rows = table_rows(table)
    assert rows and set(rows[0]) == {"sku", "open_lines", "open_qty", "available", "next_eta"}
    assert sum(row["open_lines"] for row in rows) == summary["out_of_stock"]

    # A second night writes the next version under the same keys: the UI's history.
    sample.clear_inbox()
    sample.orders("more.csv", "o-900,OAK-SHELF,1")
    second = run_flow(sample, NEXT_NIGHT)
    assert second.is_completed(), second.message
    assert set(artifacts_of(second)) == {SUMMARY_KEY, OUT_OF_STOCK_KEY, PROGRESS_KEY}


def test_the_summary_names_each_report_file_with_its_rows_and_size(sample: Site) -> None:
    state = run_flow(sample, NIGHT)
    assert state.is_completed(), state.message
    folder = sample.outbox / NIGHT

    text = str(artifacts_of(state)[SUMMARY_KEY].data)

    assert "file://" not in text  # a browser will not open it: the folder is said in words
    assert f"in the folder `{folder.absolute()}`" in text
    for path in folder.iterdir():
        row = next(line for line in text.splitlines() if line.startswith(f"| {path.name} | "))
        _, _, rows, size, _ = row.split("|")
        if path.suffix == ".parquet":
            assert rows.strip() == f"{pl.read_parquet(path).height:,}"
        elif path.suffix == ".csv":  # rejected.csv: its rows, a quoted line break included
            assert rows.strip() == f"{pl.read_csv(path, infer_schema=False).height:,}"
        assert size.strip().endswith("B") and size.strip()[0].isdigit()


def test_old_empty_text_values_still_mean_the_defaults(sample: Site) -> None:
    """Runs scheduled by an older deployment carry "" for business_date and task_runner."""
    state = run_flow(sample, "", task_runner="")

    assert state.is_completed(), state.message
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert state.result()["business_date"] == today


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"business_date": "2026-02-30"},
            "business_date '2026-02-30' is not a real calendar date: use YYYY-MM-DD",
        ),
        ({"business_date": "26/11/2026"}, "business_date '26/11/2026' is not a date"),
        ({"business_date": "2026-11-25T02:30"}, "is not a date: use YYYY-MM-DD"),
        ({"inbox": "{root}/no-such-inbox"}, "no-such-inbox does not exist"),
        ({"warehouse": "{root}"}, "is a folder: give the path of a .duckdb file"),
        ({"outbox": "{root}/inbox/orders/o.csv"}, "is a file: give a folder for the reports"),
    ],
    ids=[
        "not-a-calendar-date",
        "day-first",
        "with-a-time",
        "no-inbox",
        "warehouse-dir",
        "outbox-file",
    ],
)
def test_a_bad_parameter_fails_the_run_with_a_clear_message_before_any_work(
    sample: Site, overrides: dict[str, str], message: str
) -> None:
    sample.orders("o.csv", "o-1,OAK-SHELF,1")
    overrides = {k: v.format(root=sample.root) for k, v in overrides.items()}
    day = overrides.pop("business_date", NIGHT)

    state = run_flow(sample, day, **overrides)

    assert state.is_failed()
    assert message in (state.message or "")
    assert not sample.outbox.exists()
    assert not sample.warehouse.exists()
    assert not state_db(sample.params(NIGHT)).exists()


def test_a_dry_run_writes_its_reports_aside_and_commits_and_publishes_nothing(
    sample: Site,
) -> None:
    assert run_flow(sample, NIGHT).is_completed()
    published = digest(sample.warehouse)
    sample.clear_inbox()
    sample.orders("new-manifest-night.csv", "o-900,OAK-SHELF,1", "o-901,BLUE-CUSHION,2")

    state = run_flow(sample, NEXT_NIGHT, dry_run=True)

    assert state.is_completed(), state.message
    folder = sample.outbox / NEXT_NIGHT / "dry-run"
    assert state.result()["outbox_folder"] == str(folder)
    assert (folder / "summary.json").is_file()
    assert json.loads((folder / "summary.json").read_text())["orders"]["received"] == 2
    assert sorted(p.name for p in (sample.outbox / NEXT_NIGHT).iterdir()) == ["dry-run"]
    assert (sample.outbox / "latest").resolve() == (sample.outbox / NIGHT).resolve()
    assert digest(sample.warehouse) == published
    assert runs_committed(sample) == 1
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(flow_run_id(state)).name == f"night-{NEXT_NIGHT} (dry run)"

    artifacts = artifacts_of(state)
    assert set(artifacts) == {
        f"{SUMMARY_KEY}-dry-run",
        f"{OUT_OF_STOCK_KEY}-dry-run",
        f"{PROGRESS_KEY}-dry-run",
    }
    text = str(artifacts[f"{SUMMARY_KEY}-dry-run"].data)
    assert "(dry run)" in text and "not published" in text

    # The same night for real afterwards is not affected by the dry run.
    real = run_flow(sample, NEXT_NIGHT)
    assert real.is_completed(), real.message
    assert real.result()["orders"]["accepted"] == 2
    assert runs_committed(sample) == 2


@pytest.fixture
def allocate_fails_after_commit(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The allocate step commits, then fails once with an I/O error worth retrying (a full
    disk is not retried: see test_operator_mistakes.py)."""
    calls: list[str] = []
    real = night_transaction.allocate_night

    def commit_then_fail(*args: Any, **kwargs: Any) -> night_transaction.NightOutcome:
        calls.append("allocate")
        outcome = real(*args, **kwargs)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        return outcome

    monkeypatch.setattr(night_transaction, "allocate_night", commit_then_fail)
    monkeypatch.setattr(nightly, "allocate", nightly.allocate.with_options(retry_delay_seconds=0))
    yield calls


def test_a_retry_after_the_commit_does_not_apply_the_night_twice(
    sample: Site, allocate_fails_after_commit: list[str]
) -> None:
    state = run_flow(sample, NIGHT)

    assert state.is_completed(), state.message
    assert allocate_fails_after_commit == ["allocate"]  # the retry did not allocate again
    assert runs_committed(sample) == 1
    summary = state.result()  # read back from the state the first attempt committed
    assert summary["orders"]["accepted"] > 0
    assert summary["orders"]["duplicate"] < summary["orders"]["received"]
    assert sample.query("SELECT count(*) FROM allocations") == [(summary["allocated"],)]


def test_a_full_disk_is_not_retried(sample: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def disk_full(*args: Any, **kwargs: Any) -> night_transaction.NightOutcome:
        calls.append("allocate")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(night_transaction, "allocate_night", disk_full)
    monkeypatch.setattr(nightly, "allocate", nightly.allocate.with_options(retry_delay_seconds=0))

    state = run_flow(sample, NIGHT)

    assert state.is_failed()
    assert calls == ["allocate"]  # once: no retry of a full disk
    assert "No space left on device" in (state.message or "")


@pytest.mark.parametrize(
    "error",
    [KeyError("batchref"), ParameterError("business_date '2026-13-01' is not a date")],
    ids=["a bug", "a contract error"],
)
def test_only_io_errors_are_retried_never_a_bug_or_a_contract_error(
    sample: Site, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    calls: list[str] = []

    def fails(*args: Any, **kwargs: Any) -> night_transaction.NightOutcome:
        calls.append("allocate")
        raise error

    monkeypatch.setattr(night_transaction, "allocate_night", fails)
    monkeypatch.setattr(nightly, "allocate", nightly.allocate.with_options(retry_delay_seconds=0))

    state = run_flow(sample, NIGHT)

    assert state.is_failed()
    assert calls == ["allocate"]  # once: retrying would fail the same way


def test_a_held_duckdb_file_is_retried(sample: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = night_transaction.allocate_night

    def held_once(*args: Any, **kwargs: Any) -> night_transaction.NightOutcome:
        calls.append("allocate")
        if len(calls) == 1:
            raise WarehouseError("cannot open the warehouse state") from duckdb.IOException(
                'Could not set lock on file "state.duckdb": Conflicting lock is held'
            )
        return real(*args, **kwargs)

    monkeypatch.setattr(night_transaction, "allocate_night", held_once)
    monkeypatch.setattr(nightly, "allocate", nightly.allocate.with_options(retry_delay_seconds=0))

    state = run_flow(sample, NIGHT)

    assert state.is_completed(), state.message
    assert calls == ["allocate", "allocate"]


def test_a_hung_night_fails_after_4_hours() -> None:
    """The flow's declared timeout (README, docs/operations.md: a hung night fails after 4
    hours), read from the flow Prefect runs, not waited for."""
    assert nightly_allocation.timeout_seconds == 4 * 60 * 60


def every_task_of_the_package() -> dict[str, Task[Any, Any]]:
    """Every Prefect task defined anywhere in `allocation`, by name: found, not listed by hand,
    so a task added later is checked too."""
    found: dict[str, Task[Any, Any]] = {}
    for module in pkgutil.walk_packages(allocation.__path__, "allocation."):
        for value in vars(importlib.import_module(module.name)).values():
            if isinstance(value, Task):
                found[value.name] = value
    return found


def test_only_the_io_steps_retry_and_no_step_caches_its_result() -> None:
    io_steps = {
        "finish-committed-night",
        "check-already-ingested",
        "load",
        "allocate",
        "write-reports",
        "publish",
    }
    io_steps.add("allocate-shard")  # reads and writes its shard's Parquet files
    tasks = every_task_of_the_package()
    assert io_steps <= set(tasks), sorted(tasks)
    for name, step in tasks.items():
        assert step.cache_policy is NO_CACHE, name
        assert step.persist_result is False, name
        assert step.retries == (2 if name in io_steps else 0), name
    # The night's steps ask first whether the error is one a retry can fix (never a full disk).
    for name in io_steps - {"allocate-shard"}:
        assert tasks[name].retry_condition_fn is nightly.worth_retrying, name


class RunLogs(logging.Handler):
    """Every record Prefect's run loggers and the allocation logger emit, as the API and the UI
    receive it (after the loggers' own filters)."""

    NAMES = ("prefect.flow_runs", "prefect.task_runs", "allocation")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(logging.Formatter().format(record) for record in self.records)


@pytest.fixture
def run_logs() -> Iterator[RunLogs]:
    handler = RunLogs()
    for name in RunLogs.NAMES:
        logging.getLogger(name).addHandler(handler)
    yield handler
    for name in RunLogs.NAMES:
        logging.getLogger(name).removeHandler(handler)


def test_a_missing_inbox_logs_one_line_naming_the_inbox_parameter(
    sample: Site, run_logs: RunLogs
) -> None:
    """Old code: two ERROR tracebacks of about 25 lines around the cause, whose hint said
    `--inbox`, a flag a UI user cannot pass."""
    state = run_flow(sample, NIGHT, inbox=str(sample.root / "no-such-inbox"))

    assert state.is_failed()
    assert "set the run's inbox parameter to another folder" in (state.message or "")
    assert "--inbox" not in (state.message or "")
    text = run_logs.text()
    assert "no-such-inbox does not exist: create it" in text
    assert "Traceback" not in text, text


def test_a_bug_still_logs_its_traceback(
    sample: Site, monkeypatch: pytest.MonkeyPatch, run_logs: RunLogs
) -> None:
    def bug(*args: Any, **kwargs: Any) -> night_transaction.NightOutcome:
        raise KeyError("batchref")

    monkeypatch.setattr(night_transaction, "allocate_night", bug)

    assert run_flow(sample, NIGHT).is_failed()
    assert "Traceback" in run_logs.text()


def test_the_log_and_the_summary_count_the_same_rejected_rows(
    sample: Site, run_logs: RunLogs
) -> None:
    """Rows refused while allocating (an order line known with another qty, a batch known with
    another sku) count too: old code logged "13 rejected in all" beside a summary of 14."""
    run_flow(sample, NIGHT)
    sample.clear_inbox()
    sample.orders("again.csv", "order-1001,RETRO-CLOCK,99", "order-9,RETRO-CLOCK,x")
    sample.batches("b.csv", "batch-001,OAK-SHELF,5,")
    run_logs.records.clear()

    state = run_flow(sample, NEXT_NIGHT)

    assert state.is_completed(), state.message
    summary = state.result()
    rejected = summary["orders"]["rejected"] + summary["batches"]["rejected"]
    [line] = [r.getMessage() for r in run_logs.records if "in all" in r.getMessage()]
    assert line.startswith(f"Rejected {rejected:,} row(s) in all"), (line, summary)
    assert rejected == 3
    # The summary artifact shows the first rejected rows: the reasons without the worker's disk.
    text = str(artifacts_of(state)[SUMMARY_KEY].data)
    assert "| reason | file | line |" in text
    for source, line_no in (("orders/again.csv", 1), ("orders/again.csv", 2), ("batches/b.csv", 1)):
        assert f"| {source} | {line_no} |" in text, text
