"""Applies the repository's Prefect automations and the alert webhook block: `make deploy` runs
`python -m deploy.automations` after `prefect deploy`.

- The alert block: a `CustomWebhookNotificationBlock` named `allocation-alerts`, saved (created or
  overwritten) from ALLOCATION_ALERT_WEBHOOK_URL. The URL is kept among the block's secrets, so
  the UI shows it masked. Without the setting, the block an earlier deploy saved is kept and
  used: a deploy that does not mention alerts leaves them as they were. `off` deletes the
  block (`make alerts-off`); one line says which of these happened.
- Every `automations/*.yaml` beside prefect.yaml holds ONE automation in the shape
  `prefect automation create --from-file` takes, with one addition: an action's
  `block_document_id` may be a block document's name instead of its id (e.g. `allocation-alerts`);
  it is replaced by the id found on the server. An automation is created, or updated in place when
  one of that name exists (extra copies of the name are deleted): applying twice changes nothing.
- An automation that needs the alert block while there is none (alerts turned off, or never
  given) is not applied, and one applied by an earlier deploy is disabled (so "alerts are off"
  is true); the others still apply.

Exit 0 when every file applied (or was skipped because alerts are off), 1 otherwise, with one line
per failing file saying what to fix.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound

from allocation.settings import Settings

ALERT_BLOCK = "allocation-alerts"
#: ALLOCATION_ALERT_WEBHOOK_URL=off turns the alerts off (`make alerts-off`).
ALERTS_OFF = "off"
AUTOMATIONS_DIR = Path(__file__).resolve().parents[1] / "automations"


class AutomationFileError(ValueError):
    """An automation file that cannot be applied; the message says what to fix."""


@dataclass(frozen=True)
class AutomationFile:
    path: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    def block_names(self) -> set[str]:
        """The blocks its actions name (instead of giving an id)."""
        return {
            str(action["block_document_id"])
            for action in self.spec.get("actions", [])
            if "block_document_id" in action and not _is_uuid(action["block_document_id"])
        }


def _is_uuid(value: object) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def read_automation_file(path: Path) -> AutomationFile:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise AutomationFileError(f"{path.name}: not valid YAML: {error}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise AutomationFileError(
            f"{path.name}: must hold one automation (a mapping with a `name`, a `trigger` and "
            "`actions`), the shape `prefect automation create --from-file` takes"
        )
    return AutomationFile(path, spec)


def automation_files(folder: Path = AUTOMATIONS_DIR) -> list[AutomationFile]:
    """Every `*.yaml` in `folder`, in name order; two files may not share an automation name."""
    found = [read_automation_file(path) for path in sorted(folder.glob("*.yaml"))]
    names: dict[str, Path] = {}
    for item in found:
        if item.name in names:
            raise AutomationFileError(
                f"{item.path.name} and {names[item.name].name} both name automation "
                f"{item.name!r}: give each file its own name"
            )
        names[item.name] = item.path
    return found


def resolve(item: AutomationFile, blocks: dict[str, UUID]) -> AutomationCore:
    """The automation with each block name replaced by its id, validated by Prefect's model."""
    spec = {**item.spec, "actions": [dict(action) for action in item.spec.get("actions", [])]}
    for action in spec["actions"]:
        name = action.get("block_document_id")
        if name is not None and not _is_uuid(name):
            if str(name) not in blocks:
                raise AutomationFileError(
                    f"{item.path.name}: action {action.get('type')!r} names block {name!r}, "
                    f"which is not on the server: create it, or name one of {sorted(blocks)}"
                )
            action["block_document_id"] = str(blocks[str(name)])
    try:
        return AutomationCore.model_validate(spec)
    except ValueError as error:
        raise AutomationFileError(f"{item.path.name}: not a valid automation: {error}") from None


def save_alert_block(url: str) -> UUID:
    """Creates or overwrites the `allocation-alerts` webhook block; returns its id."""
    if not url.startswith(("https://", "http://")):
        raise AutomationFileError(
            f"ALLOCATION_ALERT_WEBHOOK_URL {url!r} is not an http(s) URL: give the webhook's "
            "full address, e.g. https://hooks.example.com/T000/B000"
        )
    block = CustomWebhookNotificationBlock(
        name=ALERT_BLOCK,
        url="{{alert_url}}",
        method="POST",
        json_data={"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"},
        secrets={"alert_url": url},  # type: ignore[arg-type]  # pydantic coerces to SecretDict
    )
    block_id = block.save(ALERT_BLOCK, overwrite=True)
    if not isinstance(block_id, UUID):
        raise TypeError(f"saving the block returned {block_id!r}, not an id")
    return block_id


def apply_automation(client: SyncPrefectClient, automation: AutomationCore) -> str:
    """Creates the automation, or updates the one of that name in place. Returns what it did."""
    existing = client.read_automations_by_name(automation.name)
    if not existing:
        client.create_automation(automation)
        return "created"
    keep, *extra = existing
    for duplicate in extra:
        client.delete_automation(duplicate.id)
    if same_automation(AutomationCore.model_validate(keep.model_dump()), automation):
        return "unchanged" + (f" ({len(extra)} duplicate(s) deleted)" if extra else "")
    client.update_automation(keep.id, automation)
    return "updated" + (f" ({len(extra)} duplicate(s) deleted)" if extra else "")


def same_automation(one: AutomationCore, other: AutomationCore) -> bool:
    """Equal as models: a trigger's `expect`, `after` and `for_each` are sets, whose order in a
    JSON dump depends on how each set was built (the server's copy vs the file's)."""
    return one == other


def _blocks_on_server(client: SyncPrefectClient, names: set[str]) -> dict[str, UUID]:
    if not names:
        return {}
    return {
        block.name: block.id
        for block in client.read_block_documents()
        if block.name is not None and block.name in names
    }


def apply_all(folder: Path = AUTOMATIONS_DIR, settings: Settings | None = None) -> list[str]:
    """Applies the alert block and every automation file; returns the lines to print. Raises
    AutomationFileError naming every file that failed (the others are applied).

    The server remembers whether alerts are on: its `allocation-alerts` block. A deploy without
    ALLOCATION_ALERT_WEBHOOK_URL keeps the block an earlier deploy saved (alerts stay on); only
    `off` (`make alerts-off`) deletes it and disables the automations that need it."""
    settings = settings or Settings()
    url = settings.alert_webhook_url.strip()
    turn_off = url.lower() == ALERTS_OFF
    items = automation_files(folder)
    out: list[str] = []
    blocks: dict[str, UUID] = {}
    if url and not turn_off:
        blocks[ALERT_BLOCK] = save_alert_block(url)
        out.append(f"alert webhook block {ALERT_BLOCK!r}: saved")
    errors: list[str] = []
    skipped: list[str] = []
    with get_client(sync_client=True) as client:
        others = set().union(*(item.block_names() for item in items)) - {ALERT_BLOCK}
        blocks.update(_blocks_on_server(client, others))
        kept = None if url else _blocks_on_server(client, {ALERT_BLOCK}).get(ALERT_BLOCK)
        if turn_off:
            _delete_alert_block(client)
        elif kept is not None:
            blocks[ALERT_BLOCK] = kept
        for item in items:
            if ALERT_BLOCK in item.block_names() and ALERT_BLOCK not in blocks:
                skipped.append(_disable(client, item.name))
                continue
            try:
                done = apply_automation(client, resolve(item, blocks))
            except AutomationFileError as error:
                errors.append(str(error))
                continue
            out.append(f"automation {item.name!r} ({item.path.name}): {done}")
    not_applied = f" (not applied: {', '.join(skipped)})" if skipped else ""
    if turn_off:
        out.append(
            f"alerts are off: ALLOCATION_ALERT_WEBHOOK_URL={ALERTS_OFF} deleted the webhook block "
            f"{ALERT_BLOCK!r}{not_applied}; later deploys keep them off until one gives "
            "ALLOCATION_ALERT_WEBHOOK_URL=https://..."
        )
    elif kept is not None:
        out.append(
            f"alerts stay on: ALLOCATION_ALERT_WEBHOOK_URL is not set, so the webhook block "
            f"{ALERT_BLOCK!r} an earlier deploy saved is used (to turn alerts off: make alerts-off)"
        )
    elif not url:
        out.append(
            "alerts are off: ALLOCATION_ALERT_WEBHOOK_URL is not set and no earlier deploy saved "
            f"a webhook block {ALERT_BLOCK!r}{not_applied}"
        )
    if errors:
        raise AutomationFileError("\n".join([*out, *errors]))
    return out


def _delete_alert_block(client: SyncPrefectClient) -> None:
    for block_id in _blocks_on_server(client, {ALERT_BLOCK}).values():
        with contextlib.suppress(ObjectNotFound):
            client.delete_block_document(block_id)


def _disable(client: SyncPrefectClient, name: str) -> str:
    """Disables an automation of that name applied by an earlier deploy; returns a label."""
    disabled = 0
    for automation in client.read_automations_by_name(name):
        if automation.enabled:
            try:
                client.pause_automation(automation.id)
            except ObjectNotFound:
                continue
            disabled += 1
    return f"{name} (disabled on the server)" if disabled else name


def main() -> int:
    try:
        lines = apply_all()
    except AutomationFileError as error:
        print(f"automations: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
