"""The batch flow's settings and parameters: strict env parsing, every run knob a typed flow parameter."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitoring_core.paths import DEFAULT_DRIFT_CONFIG_PATH, MODELS_DIR
from prefect_flows.settings import DEFAULT_CRON, RUN_PARAMETERS, BatchSettings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_contract() -> None:
    settings = BatchSettings.from_env({})
    assert settings.mongodb_uri == "mongodb://127.0.0.1:27017" and settings.mongodb_database == "prediction_service"
    # Every model folder of MODELS_DIR unless a run names one (MODEL_NAME is the prediction service's, not read here).
    assert settings.models_dir == MODELS_DIR and settings.model_name is None
    assert BatchSettings.from_env({"MODEL_NAME": "m"}).model_name is None
    assert settings.reports_dir == Path("reports") and settings.config_path == DEFAULT_DRIFT_CONFIG_PATH
    # min_rows unset: derived by the drift calibration at run time.
    assert (settings.min_rows, settings.min_labelled_rows, settings.max_rows, settings.read_batch_size) == (
        None,
        30,
        200_000,
        10_000,
    )
    assert settings.workspace == Path("reports/workspace") and settings.pushgateway_url is None
    assert settings.schedule_cron == DEFAULT_CRON == "10 * * * *"


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("BATCH_MIN_ROWS", "many", "must be an integer"),
        ("BATCH_MIN_ROWS", "0", "must be >= 1"),
        ("BATCH_MIN_LABELLED_ROWS", "-3", "must be >= 1"),
        ("BATCH_MAX_ROWS", "1e5", "must be an integer"),
        ("BATCH_MAX_ROWS", "0", "must be >= 1"),
        ("BATCH_READ_BATCH_SIZE", "big", "must be an integer"),
        ("BATCH_READ_BATCH_SIZE", "-1", "must be >= 1"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, rule: str) -> None:
    with pytest.raises(ValueError) as error:
        BatchSettings.from_env({name: value})
    assert str(error.value) == f"{name} {rule}, got {value!r}"


def test_run_parameters_are_the_env_settings_as_json_values() -> None:
    settings = BatchSettings.from_env(
        {"BATCH_MIN_ROWS": "5", "REPORTS_DIR": "/r", "EVIDENTLY_CONFIG": "/c.yaml", "MODELS_DIR": "/m"}
    )
    parameters = settings.run_parameters()
    assert parameters["min_rows"] == 5 and parameters["reports_dir"] == "/r" and parameters["models_dir"] == "/m"
    assert parameters["drift_config"] == "/c.yaml" and "workspace" not in parameters  # unset: under reports_dir
    # Unset settings (the derived minimum, every model) are left out, so the flow derives them.
    assert set(BatchSettings.from_env({"EVIDENTLY_WORKSPACE": "/w"}).run_parameters()) == set(RUN_PARAMETERS) - {
        "min_rows",
        "model_name",
    }
    assert "mongodb_uri" not in parameters and "pushgateway_url" not in parameters  # connections stay settings


def test_parameters_override_settings_and_none_keeps_them() -> None:
    settings = BatchSettings.from_env({"BATCH_MAX_ROWS": "7", "REPORTS_DIR": "/r"})
    run = settings.with_run_parameters(max_rows=None, min_rows=3, workspace="/w", drift_config=Path("/d.yaml"))
    assert (run.max_rows, run.min_rows, run.workspace, run.config_path) == (7, 3, Path("/w"), Path("/d.yaml"))
    assert settings.min_rows is None  # frozen: a new object


def test_a_bad_parameter_is_named() -> None:
    with pytest.raises(ValueError, match=r"^min_rows must be >= 1, got 0$"):
        BatchSettings().with_run_parameters(min_rows=0)
    with pytest.raises(ValueError, match="not flow parameters: min_row"):
        BatchSettings().with_run_parameters(min_row=3)
    with pytest.raises(ValueError, match="^model_name string should have at least 1 character"):
        BatchSettings().with_run_parameters(model_name="")


def test_every_run_knob_is_a_typed_flow_parameter_defaulting_to_its_setting() -> None:
    from prefect_flows.batch_monitoring import batch_monitoring

    signature = inspect.signature(batch_monitoring.fn)
    assert set(signature.parameters) == {"start", "end", *RUN_PARAMETERS}
    for name in RUN_PARAMETERS:
        parameter = signature.parameters[name]
        assert parameter.default is None and parameter.annotation not in (inspect.Parameter.empty, "Any"), name
    schema = batch_monitoring.parameters.model_dump()["properties"]
    assert {"integer", "null"} == {t["type"] for t in schema["min_rows"]["anyOf"]}


def _run(module: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
def test_the_command_stops_on_a_bad_value_with_one_line_naming_it() -> None:
    """Before any Prefect server starts: exit 2 and one line on stderr."""
    done = _run("prefect_flows.batch_monitoring", {"BATCH_MIN_ROWS": "many"}, "--start", "2026-01-05T10:00:00Z")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "prefect_flows.batch_monitoring: BATCH_MIN_ROWS must be an integer, got 'many'"
    ]
    done = _run("prefect_flows.serve", {"BATCH_MAX_ROWS": "0"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["prefect_flows.serve: BATCH_MAX_ROWS must be >= 1, got '0'"]
