"""The scheduled deployment is built without a server: parameters, schedule, name."""

from __future__ import annotations

from prefect_flows.serve import DEFAULT_CRON, deployment


def test_deployment_runs_the_previous_hour_on_the_cron(prefect_env):
    built = deployment("*/30 * * * *")
    assert built.name == "hourly" and built.flow_name == "batch-monitoring"
    assert [s.schedule.cron for s in built.schedules] == ["*/30 * * * *"]
    assert built.parameters == {}  # start/end default to None: the flow takes the previous full hour
    properties = built._parameter_openapi_schema.properties
    assert set(properties) == {"start", "end", "model_name"}
    assert DEFAULT_CRON == "10 * * * *"
