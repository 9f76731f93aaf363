"""The metrics service's settings: strict, every one read from the environment, bad values name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evidently_service import create_app
from evidently_service.settings import Settings
from monitoring_core.paths import DEFAULT_DRIFT_CONFIG_PATH, MODELS_DIR

REPO = Path(__file__).resolve().parents[2]
FLAG_RULE = "must be a boolean (1/0, true/false, yes/no, on/off)"


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.models_dir) == ("0.0.0.0", 8085, MODELS_DIR)
    assert settings.mongodb_uri == "mongodb://127.0.0.1:27017" and settings.mongodb_database == "prediction_service"
    assert settings.config_path == DEFAULT_DRIFT_CONFIG_PATH
    assert settings.monitoring_token is None and not settings.rewarm_from_mongodb
    assert settings.max_rows_per_request == 10_000 and settings.max_body_bytes == 32 * 1024 * 1024
    assert settings.mongodb_timeout_ms == 3000 and settings.run_evaluators


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "HOST": "127.0.0.1",
            "PORT": "9000",
            "EVIDENTLY_CONFIG": "/c.yaml",
            "MODELS_DIR": "/models",
            "MONITORING_TOKEN": "t",
            "REWARM_FROM_MONGODB": "yes",
            "MONGODB_TIMEOUT_MS": "10",
            "MAX_ROWS_PER_REQUEST": "5",
            "EVIDENTLY_MAX_BODY_BYTES": "2048",
        }
    )
    assert (settings.host, settings.port, settings.models_dir) == ("127.0.0.1", 9000, Path("/models"))
    assert settings.monitoring_token == "t"
    assert settings.config_path == Path("/c.yaml")
    assert settings.rewarm_from_mongodb and settings.mongodb_timeout_ms == 10
    assert settings.max_rows_per_request == 5 and settings.max_body_bytes == 2048


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("PORT", "eighty", "must be an integer"),
        ("PORT", "65536", "must be <= 65535"),
        ("REWARM_FROM_MONGODB", "ture", FLAG_RULE),
        ("REWARM_FROM_MONGODB", "maybe", FLAG_RULE),
        ("MONGODB_TIMEOUT_MS", "3s", "must be an integer"),
        ("MONGODB_TIMEOUT_MS", "-1", "must be >= 0"),
        ("MAX_ROWS_PER_REQUEST", "abc", "must be an integer"),
        ("MAX_ROWS_PER_REQUEST", "0", "must be >= 1"),
        ("EVIDENTLY_MAX_BODY_BYTES", "-1", "must be >= 1"),
        ("EVIDENTLY_MAX_BODY_BYTES", "32MiB", "must be an integer"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, rule: str) -> None:
    with pytest.raises(ValueError) as error:
        Settings.from_env({name: value})
    assert str(error.value) == f"{name} {rule}, got {value!r}"


@pytest.mark.parametrize(
    ("word", "expected"), [("1", True), ("true", True), ("On", True), ("false", False), ("", False)]
)
def test_rewarm_switch_spellings(word: str, expected: bool) -> None:
    assert Settings.from_env({"REWARM_FROM_MONGODB": word}).rewarm_from_mongodb is expected


def test_body_limit_from_the_environment_reaches_the_app(write_config, models_dir, make_rows) -> None:
    env = {
        "EVIDENTLY_CONFIG": str(write_config()),
        "MODELS_DIR": str(models_dir),
        "EVIDENTLY_MAX_BODY_BYTES": "4096",
    }
    app = create_app(Settings.from_env(env).replace(run_evaluators=False))
    try:
        rows, _ = make_rows(40)
        client = app.test_client()
        assert client.post("/iterate/ride_duration", json=rows).status_code == 413
        assert client.post("/iterate/ride_duration", json=rows[:1]).status_code == 200
    finally:
        app.extensions["evidently_service"].close()


def _run_command(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evidently_service"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [("REWARM_FROM_MONGODB", "ture", FLAG_RULE), ("EVIDENTLY_MAX_BODY_BYTES", "-1", "must be >= 1")],
)
def test_the_command_stops_on_a_bad_value_with_one_line_naming_it(name: str, value: str, rule: str) -> None:
    done = _run_command({name: value})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"evidently_service: {name} {rule}, got {value!r}"]


@pytest.mark.integration
def test_the_command_binds_the_host_from_its_settings(tmp_path, write_config, models_dir) -> None:
    """HOST goes through Settings: the service listens on 127.0.0.2 only, not on 127.0.0.1."""
    import requests

    from local_stack.processes import ManagedProcess, free_port, http_ok, port_open, python_module

    port = free_port()
    env = {
        "HOST": "127.0.0.2",
        "PORT": str(port),
        "EVIDENTLY_CONFIG": str(write_config()),
        "MODELS_DIR": str(models_dir),
    }
    proc = ManagedProcess("evidently_service", python_module("evidently_service"), tmp_path / "e.log", env=env)
    proc.start()
    try:
        proc.wait_ready(lambda: http_ok(f"http://127.0.0.2:{port}/health"), timeout=90)
        assert not port_open(port, "127.0.0.1")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        proc.stop()
