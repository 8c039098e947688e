"""`make deploy` keeps a paused deployment paused.

`prefect deploy` resumes every deployment it updates (Prefect's behaviour): an operator who had
paused the nightly schedule (a broken feed, a migration) would find it running again after a
redeploy. This wrapper notes which deployments of prefect.yaml are paused, runs the deploy
command it is given, pauses those again and says so:

    python -m deploy.keep_paused -- prefect --no-prompt deploy --all

Between the deploy and the pause again (well under a second) the scheduler may create scheduled
runs; none can start before the schedule's next time, and a paused deployment's workers get none.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from prefect import get_client
from prefect.exceptions import ObjectNotFound


def deployment_names(prefect_yaml: Path) -> list[str]:
    """`flow-name/deployment-name` of every deployment in prefect.yaml (the flow's name is read
    from the entrypoint's decorator by Prefect; here from the deployment's `flow_name` if set,
    else the one flow this repo deploys)."""
    spec = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8"))
    names = []
    for deployment in spec.get("deployments", []):
        flow_name = deployment.get("flow_name") or "nightly-allocation"
        names.append(f"{flow_name}/{deployment['name']}")
    return names


def paused_deployments(names: list[str]) -> list[str]:
    paused = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                if client.read_deployment_by_name(name).paused:
                    paused.append(name)
            except ObjectNotFound:
                continue  # not deployed yet: nothing to keep
    return paused


def pause(names: list[str]) -> None:
    with get_client(sync_client=True) as client:
        for name in names:
            client.pause_deployment(client.read_deployment_by_name(name).id)


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        print("usage: python -m deploy.keep_paused -- DEPLOY COMMAND...", file=sys.stderr)
        return 2
    paused = paused_deployments(deployment_names(Path("prefect.yaml")))
    done = subprocess.run(command, check=False)
    if paused:
        pause(paused)
        for name in paused:
            print(
                f"Deployment '{name}' was paused before this deploy: it is paused again (its "
                "schedule starts no nights). Resume it in the Prefect UI when it should run: "
                "Deployments, then its on/off toggle."
            )
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
