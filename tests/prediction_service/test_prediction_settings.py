"""Settings come from the environment once, typed and frozen; bad values name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from prediction_service.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({})
    # The model served is MODEL_DIR's; its name is its description's (no MODEL_NAME here).
    assert settings.port == 9696 and settings.model_dir == REPO / "models" / "ride_duration"
    assert settings.model_path is None and not hasattr(settings, "model_name")
    assert settings.mongodb_uri == "mongodb://127.0.0.1:27017" and settings.mongodb_database == "prediction_service"
    assert settings.evidently_service_url == "http://127.0.0.1:8085" and settings.monitoring_token is None
    assert settings.log_to_mongodb and settings.forward_to_metrics and not settings.spool_per_replica
    assert settings.worker_class == "buffered"


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "MODEL_DIR": "/models/wine",
            "MODEL_PATH": "/m.pkl",
            "EVIDENTLY_SERVICE_URL": "http://e:1/",
            "WORKERS": "3",
            "PREDICTION_LOG_TO_MONGODB": "false",
            "PREDICTION_MAX_BATCH_ROWS": "7",
            "PREDICTION_FLUSH_INTERVAL_SECONDS": "0.5",
            "MONITORING_TOKEN": "t",
        }
    )
    assert settings.model_dir == Path("/models/wine") and settings.model_path == Path("/m.pkl")
    assert settings.evidently_service_url == "http://e:1"
    assert settings.workers == 3 and not settings.log_to_mongodb and settings.max_batch_rows == 7
    assert settings.flush_interval_seconds == 0.5 and settings.monitoring_token == "t"


@pytest.mark.parametrize(
    ("name", "value", "rule"),
    [
        ("PORT", "http", "must be an integer"),
        ("PORT", "70000", "must be <= 65535"),
        ("PORT", "-1", "must be >= 0"),
        ("WORKERS", "0", "must be >= 1"),
        ("THREADS", "four", "must be an integer"),
        ("PREDICTION_MAX_BODY_BYTES", "-1", "must be >= 1"),
        ("PREDICTION_MAX_BATCH_ROWS", "0", "must be >= 1"),
        ("PREDICTION_LOG_TO_MONGODB", "maybe", "must be a boolean (1/0, true/false, yes/no, on/off)"),
        ("PREDICTION_FORWARD_TO_METRICS", "ture", "must be a boolean (1/0, true/false, yes/no, on/off)"),
        ("PREDICTION_SPOOL_PER_REPLICA", "y", "must be a boolean (1/0, true/false, yes/no, on/off)"),
        ("PREDICTION_QUEUE_CAPACITY", "-1", "must be >= 0"),
        ("PREDICTION_FORWARD_CAPACITY", "lots", "must be an integer"),
        ("PREDICTION_BATCH_SIZE", "abc", "must be an integer"),
        ("PREDICTION_BATCH_SIZE", "2.5", "must be an integer"),
        ("PREDICTION_FLUSH_INTERVAL_SECONDS", "soon", "must be a number"),
        ("PREDICTION_MONGO_TIMEOUT_SECONDS", "-1", "must be >= 0"),
        ("PREDICTION_MONGO_RETRY_SECONDS", "inf", "must be a finite number"),
        ("PREDICTION_FORWARD_TIMEOUT_SECONDS", "nan", "must be a finite number"),
        ("PREDICTION_FORWARD_RETRIES", "-2", "must be >= 0"),
        ("PREDICTION_SPOOL_CAPACITY_RECORDS", "1e6", "must be an integer"),
        ("PREDICTION_MAX_PENDING_LABELS", "-1", "must be >= 0"),
        ("PREDICTION_LABEL_RETRY_SECONDS", "10m", "must be a number"),
        ("PREDICTION_HEALTH_CACHE_SECONDS", "x", "must be a number"),
        ("WORKER_CLASS", "sync", "input should be 'buffered', 'gthread' or 'gevent'"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, rule: str) -> None:
    with pytest.raises(ValueError) as error:
        Settings.from_env({name: value})
    assert str(error.value) == f"{name} {rule}, got {value!r}"


@pytest.mark.parametrize(("word", "expected"), [("1", True), ("TRUE", True), ("on", True), ("No", False), ("0", False)])
def test_switch_spellings(word: str, expected: bool) -> None:
    settings = Settings.from_env({"PREDICTION_LOG_TO_MONGODB": word, "PREDICTION_SPOOL_PER_REPLICA": word})
    assert settings.log_to_mongodb is expected and settings.spool_per_replica is expected


def test_empty_values_are_unset_and_names_case_insensitive() -> None:
    settings = Settings.from_env({"PORT": "", "PREDICTION_LOG_TO_MONGODB": "", "prediction_batch_size": "7"})
    assert settings.port == 9696 and settings.log_to_mongodb and settings.batch_size == 7
    assert Settings.from_env({"HOST": "127.0.0.1", "threads": "8"}).host == "127.0.0.1"


def test_gevent_refuses_to_patch_after_the_app_imports_and_gthread_needs_nothing() -> None:
    from service_common.workers import prepare_process

    # This test process imported ssl long ago: patching now is gevent's documented trap, so refuse.
    with pytest.raises(RuntimeError, match="ssl"):
        prepare_process("gevent")
    prepare_process("gthread")
    assert Settings.from_env({"WORKER_CLASS": " GThread "}).worker_class == "gthread"


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        Settings().port = 1  # type: ignore[misc]


def test_multiprocess_dir_is_emptied_of_metric_files_only(tmp_path, monkeypatch) -> None:
    from prediction_service.__main__ import prepare_multiprocess_dir

    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert prepare_multiprocess_dir() == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_default_spool_is_per_mongodb_target() -> None:
    a = Settings.from_env({"MONGODB_URI": "mongodb://a:27017"}).spool_dir
    assert a == Settings.from_env({"MONGODB_URI": "mongodb://a:27017"}).spool_dir
    assert a != Settings.from_env({"MONGODB_URI": "mongodb://b:27017"}).spool_dir
    assert a != Settings.from_env({"MONGODB_URI": "mongodb://a:27017", "MONGODB_DATABASE": "other"}).spool_dir
    assert Settings.from_env({"PREDICTION_SPOOL_DIR": "/var/spool/x"}).spool_dir == Path("/var/spool/x")


@pytest.mark.integration
def test_the_command_stops_on_a_bad_value_with_one_line_naming_it(tmp_path) -> None:
    """`python -m prediction_service` exits 2 before starting anything, with one line on stderr."""
    env = {**os.environ, "PREDICTION_BATCH_SIZE": "abc", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "prediction_service"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    expected = "prediction_service: PREDICTION_BATCH_SIZE must be an integer, got 'abc'"
    assert done.stderr.strip().splitlines() == [expected]
