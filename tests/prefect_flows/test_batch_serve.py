"""The scheduled deployment is built without a server: parameters, schedule, name."""

from __future__ import annotations

from prefect_flows.serve import DEFAULT_CRON, archive_deployment, deployment
from prefect_flows.settings import RUN_PARAMETERS, ArchiveSettings, BatchSettings


def test_deployment_runs_the_previous_hour_on_the_cron(prefect_env, monkeypatch):
    monkeypatch.setenv("BATCH_MIN_ROWS", "20")
    built = deployment("*/30 * * * *")
    assert built.name == "hourly" and built.flow_name == "batch-monitoring"
    assert [s.schedule.cron for s in built.schedules] == ["*/30 * * * *"]
    # start/end unset (the flow takes the previous full hour); every run knob shown with its env setting.
    assert built.parameters == BatchSettings.from_env().run_parameters()
    assert built.parameters["min_rows"] == 20 and "start" not in built.parameters
    properties = built._parameter_openapi_schema.properties
    assert set(properties) == {"start", "end", *RUN_PARAMETERS}
    assert DEFAULT_CRON == "10 * * * *"


def test_deployment_takes_given_settings(prefect_env):
    built = deployment(settings=BatchSettings(max_rows=5, reports_dir="/r"))
    assert built.parameters["max_rows"] == 5 and built.parameters["reports_dir"] == "/r"
    assert [s.schedule.cron for s in built.schedules] == [DEFAULT_CRON]


def test_archive_deployment_rewrites_the_last_hours_on_its_cron(prefect_env, monkeypatch):
    monkeypatch.setenv("ARCHIVE_HOURS", "12")
    monkeypatch.setenv("ARCHIVE_ROOT", "memory://archive")
    built = archive_deployment()
    assert built.flow_name == "archive-predictions"
    assert [s.schedule.cron for s in built.schedules] == [ArchiveSettings.from_env().archive_cron] == ["40 * * * *"]
    assert built.parameters == {"last_hours": 12, "archive_root": "memory://archive"}
