"""Telemetry stays off in what is started outside Python: the Makefile's recipes and the
deployment's worker runs repeat `allocation.TELEMETRY_OFF` (written once for Python) and must
not drift from it."""

from __future__ import annotations

import re

import yaml

from allocation import TELEMETRY_OFF
from conftest import REPO


def test_the_makefile_exports_the_telemetry_off_environment() -> None:
    makefile = (REPO / "Makefile").read_text("utf-8")
    exported = dict(re.findall(r"^export (\w+) :?= (\S+)$", makefile, flags=re.MULTILINE))

    assert {name: exported.get(name) for name in TELEMETRY_OFF} == dict(TELEMETRY_OFF)


def test_every_deployment_runs_with_the_telemetry_off_environment() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text("utf-8"))
    deployments = config["deployments"]
    assert deployments

    for deployment in deployments:
        env = deployment["work_pool"].get("job_variables", {}).get("env", {})
        assert {name: env.get(name) for name in TELEMETRY_OFF} == dict(TELEMETRY_OFF)
