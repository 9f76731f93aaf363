"""Settings come from the environment once, typed and frozen; bad values name the variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from prediction_service.settings import Settings


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({})
    assert settings.port == 9696 and settings.model_name == "ride_duration"
    assert settings.mongodb_uri == "mongodb://127.0.0.1:27017" and settings.mongodb_database == "prediction_service"
    assert settings.evidently_service_url == "http://127.0.0.1:8085" and settings.monitoring_token is None
    assert settings.log_to_mongodb and settings.forward_to_metrics and not settings.sync_monitoring
    assert settings.worker_class == "buffered"


def test_environment_overrides() -> None:
    settings = Settings.from_env(
        {
            "MODEL_PATH": "/m.pkl",
            "EVIDENTLY_SERVICE_URL": "http://e:1/",
            "WORKERS": "3",
            "PREDICTION_LOG_TO_MONGODB": "false",
            "PREDICTION_MAX_BATCH_ROWS": "7",
            "PREDICTION_FLUSH_INTERVAL_SECONDS": "0.5",
            "MONITORING_TOKEN": "t",
        }
    )
    assert settings.model_path == Path("/m.pkl") and settings.evidently_service_url == "http://e:1"
    assert settings.workers == 3 and not settings.log_to_mongodb and settings.max_batch_rows == 7
    assert settings.flush_interval_seconds == 0.5 and settings.monitoring_token == "t"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PREDICTION_LOG_TO_MONGODB", "maybe"),
        ("PREDICTION_QUEUE_CAPACITY", "-1"),
        ("WORKER_CLASS", "sync"),
    ],
)
def test_bad_values_name_the_variable(name, value) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_gevent_refuses_to_patch_after_the_app_imports_and_gthread_needs_nothing() -> None:
    from service_common.workers import prepare_process

    # This test process imported ssl long ago: patching now is gevent's documented trap, so refuse.
    with pytest.raises(RuntimeError, match="ssl"):
        prepare_process("gevent")
    prepare_process("gthread")
    assert Settings.from_env({"WORKER_CLASS": " GThread "}).worker_class == "gthread"


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
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
