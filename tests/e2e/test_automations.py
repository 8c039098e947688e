"""`python -m deploy.automations` (run by `make deploy`) against a real Prefect API:
every automations/*.yaml applied by name, idempotently, the alert block saved from the setting,
and alerts off in one line without it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prefect import get_client
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events.schemas.automations import AutomationCore

from allocation.settings import Settings
from deploy.automations import (
    ALERT_BLOCK,
    AUTOMATIONS_DIR,
    AutomationFileError,
    apply_all,
    automation_files,
    resolve,
    same_automation,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("prefect_harness")]

URL = "http://127.0.0.1:9/alerts"
SHIPPED = {"allocation-nightly-failed", "allocation-nightly-late", "allocation-nightly-warned"}
# The shape another automation (no block needed) takes: it must apply with alerts on or off.
CRASH_SILENT = {
    "name": "test-mark-silent-runs-crashed",
    "trigger": {
        "type": "event",
        "posture": "Proactive",
        "after": ["prefect.flow-run.heartbeat"],
        "expect": ["prefect.flow-run.heartbeat"],
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "for_each": ["prefect.resource.id"],
        "threshold": 1,
        "within": 600,
    },
    "actions": [{"type": "change-flow-run-state", "state": "CRASHED", "message": "silent"}],
}


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """The shipped automations, plus one that needs no block; their names are cleared from the
    server before and after (the API is shared with other tests' flow runs)."""
    shutil.copytree(AUTOMATIONS_DIR, tmp_path / "automations")
    (tmp_path / "automations" / "crash-silent.yaml").write_text(yaml.safe_dump(CRASH_SILENT))
    clear_automations()
    yield tmp_path / "automations"
    clear_automations()


def clear_automations() -> None:
    with get_client(sync_client=True) as client:
        for name in [*SHIPPED, CRASH_SILENT["name"]]:
            for automation in client.read_automations_by_name(name):
                client.delete_automation(automation.id)


def on_server(name: str) -> list[AutomationCore]:
    with get_client(sync_client=True) as client:
        return list(client.read_automations_by_name(name))


def test_every_file_is_applied_once_and_applying_again_changes_nothing(folder: Path) -> None:
    first = apply_all(folder, Settings(alert_webhook_url=URL))
    second = apply_all(folder, Settings(alert_webhook_url=URL))

    assert f"alert webhook block {ALERT_BLOCK!r}: saved" in first
    for name in [*SHIPPED, CRASH_SILENT["name"]]:
        assert any(
            line.startswith(f"automation {name!r}") and line.endswith("created") for line in first
        ), first
        assert any(
            line.startswith(f"automation {name!r}") and line.endswith("unchanged")
            for line in second
        ), second
        assert len(on_server(name)) == 1
    block = CustomWebhookNotificationBlock.load(ALERT_BLOCK)
    assert block.url == "{{alert_url}}"  # the address itself is kept as a secret
    assert block.secrets.get_secret_value() == {"alert_url": URL}
    assert block._build_request_args("body", "subject")["url"] == URL
    failed = on_server("allocation-nightly-failed")[0]
    assert [action.block_document_id for action in failed.actions] == [block._block_document_id]  # type: ignore[union-attr]


def test_a_changed_file_updates_in_place_and_extra_copies_are_deleted(folder: Path) -> None:
    apply_all(folder, Settings(alert_webhook_url=URL))
    with get_client(sync_client=True) as client:  # someone created a second one by hand
        client.create_automation(AutomationCore.model_validate(CRASH_SILENT))
    changed = CRASH_SILENT | {"description": "now described"}
    (folder / "crash-silent.yaml").write_text(yaml.safe_dump(changed))

    lines = apply_all(folder, Settings(alert_webhook_url=URL))

    assert (
        f"automation {CRASH_SILENT['name']!r} (crash-silent.yaml): updated (1 duplicate(s) deleted)"
        in lines
    )
    [automation] = on_server(CRASH_SILENT["name"])
    assert automation.description == "now described"


def test_a_deploy_that_does_not_mention_the_webhook_keeps_the_alerts_on(folder: Path) -> None:
    """Old code: a second `make deploy` without ALLOCATION_ALERT_WEBHOOK_URL disabled both alerts
    (one line among forty said so, exit 0)."""
    apply_all(folder, Settings(alert_webhook_url=URL))  # alerts configured once

    lines = apply_all(folder, Settings(alert_webhook_url=""))

    [kept] = [line for line in lines if line.startswith("alerts stay on")]
    assert "make alerts-off" in kept
    for name in SHIPPED:
        assert [a.enabled for a in on_server(name)] == [True]
    block = CustomWebhookNotificationBlock.load(ALERT_BLOCK)
    assert block.secrets.get_secret_value() == {"alert_url": URL}


def test_alerts_go_off_only_when_asked_and_stay_off_until_a_webhook_is_given(
    folder: Path,
) -> None:
    apply_all(folder, Settings(alert_webhook_url=URL))

    lines = apply_all(folder, Settings(alert_webhook_url="off"))

    [off] = [line for line in lines if line.startswith("alerts are off")]
    assert "ALLOCATION_ALERT_WEBHOOK_URL=off" in off
    for name in SHIPPED:
        assert name in off
        assert [a.enabled for a in on_server(name)] == [False]  # no alert is sent any more
    assert [a.enabled for a in on_server(CRASH_SILENT["name"])] == [True]

    again = apply_all(folder, Settings(alert_webhook_url=""))  # a later plain deploy
    assert any(line.startswith("alerts are off") for line in again), again
    assert not any(a.enabled for name in SHIPPED for a in on_server(name))

    apply_all(folder, Settings(alert_webhook_url=URL))  # and back on
    assert all(a.enabled for name in SHIPPED for a in on_server(name))


def test_a_broken_file_is_named_and_the_others_still_apply(folder: Path) -> None:
    (folder / "broken.yaml").write_text("name: broken\ntrigger: {type: event, posture: Sideways}\n")

    with pytest.raises(AutomationFileError, match=r"broken\.yaml: not a valid automation") as error:
        apply_all(folder, Settings(alert_webhook_url=URL))

    assert "allocation-nightly-failed" in str(error.value)  # the lines of what did apply
    assert len(on_server("allocation-nightly-failed")) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must hold one automation"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_file_that_is_not_one_automation_says_so(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(AutomationFileError, match=f"bad.yaml: {message}"):
        automation_files(tmp_path)


def test_two_files_with_one_name_are_refused(tmp_path: Path) -> None:
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(yaml.safe_dump(CRASH_SILENT))
    with pytest.raises(AutomationFileError, match="both name automation"):
        automation_files(tmp_path)


def test_a_block_name_unknown_to_the_server_is_refused(folder: Path) -> None:
    [item] = [i for i in automation_files(folder) if i.name == "allocation-nightly-failed"]
    with pytest.raises(AutomationFileError, match="names block 'allocation-alerts'"):
        resolve(item, {})


def test_a_webhook_that_is_not_an_http_url_is_refused(folder: Path) -> None:
    with pytest.raises(AutomationFileError, match="is not an http"):
        apply_all(folder, Settings(alert_webhook_url="hooks.example.com/x"))


def test_the_same_automation_with_its_sets_listed_in_another_order_is_unchanged() -> None:
    """The server returns `expect` as a set built in its own order: still the same automation."""
    spec = yaml.safe_load((AUTOMATIONS_DIR / "nightly-late.yaml").read_text("utf-8"))
    spec["actions"][0]["block_document_id"] = "00000000-0000-0000-0000-000000000001"
    shuffled = yaml.safe_load(yaml.safe_dump(spec))
    shuffled["trigger"]["expect"] = list(reversed(spec["trigger"]["expect"]))
    many = [f"prefect.flow-run.S{n}" for n in range(40)]  # enough for hash collisions
    spec["trigger"]["expect"] += many
    shuffled["trigger"]["expect"] += list(reversed(many))

    one, other = (AutomationCore.model_validate(s) for s in (spec, shuffled))

    assert same_automation(one, other)
