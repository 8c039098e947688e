"""prefect.yaml stays in step with the flow's signature: every parameter listed, every default a
value the deployment's enforced schema and the flow both accept."""

from __future__ import annotations

import inspect

import yaml
from prefect.utilities.schema_tools.validation import validate

from allocation.flows.nightly import nightly_allocation
from conftest import REPO


def test_prefect_yaml_lists_every_parameter_with_a_value_the_flow_accepts() -> None:
    [deployment] = yaml.safe_load((REPO / "prefect.yaml").read_text("utf-8"))["deployments"]
    parameters = deployment["parameters"]

    assert set(parameters) == set(inspect.signature(nightly_allocation.fn).parameters)
    schema = nightly_allocation.parameters.model_dump()
    assert validate(parameters, schema, raise_on_error=True) == []
    assert nightly_allocation.validate_parameters(parameters)["business_date"] is None
