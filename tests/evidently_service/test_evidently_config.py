"""config.yaml: defaults from the schema, per-model and per-feature overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidently_support import model_folder

from monitoring_core.calibration import CalibrationSettings
from monitoring_core.description import DriftTest
from monitoring_core.model_folder import ModelFolder
from monitoring_core.monitoring_config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from ride_duration.schema import DESCRIPTION

REFERENCE = Path("/data/ride_duration/reference.parquet")


def _folders(*names: str) -> dict[str, ModelFolder]:
    # Folders that exist only as objects: the config never reads the files.
    return {name: ModelFolder(Path(f"/data/{name}"), DESCRIPTION.model_copy(update={"name": name})) for name in names}


def _load(tmp_path: Path, text: str, models: tuple[str, ...] = ("ride_duration", "a", "b")):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, _folders(*models))


def test_an_empty_file_monitors_every_folder_with_the_description_tests(tmp_path):
    configs = _load(tmp_path, "", models=("taxi",))
    assert list(configs) == ["taxi"]
    config = configs["taxi"]
    assert config.tests == DESCRIPTION.drift_tests()
    assert config.reference_path == Path("/data/taxi/reference.parquet")
    # No hand-set minimum: it is derived from the reference by the drift calibration.
    assert config.min_rows is None and config.segment_min_rows is None
    assert config.calibration == CalibrationSettings()


def test_calibration_settings_merge_and_can_be_switched_off(tmp_path):
    configs = _load(
        tmp_path,
        """
defaults: {calibration: {false_alarm_rate: 0.02, draws: 500}}
models:
  a: {calibration: {dataset_false_alarm_rate: 0.05}}
  b: {calibration: {enabled: false}}
""",
    )
    assert configs["a"].calibration == CalibrationSettings(
        false_alarm_rate=0.02, dataset_false_alarm_rate=0.05, draws=500
    )
    assert configs["b"].calibration is None


def test_the_packaged_config_uses_the_schema_tests_unchanged():
    # One source of truth: the online service and the batch flow both get the schema's tests.
    config = load_config(DEFAULT_CONFIG_PATH, _folders("ride_duration"))["ride_duration"]
    assert config.tests == DESCRIPTION.drift_tests()


def test_model_entries_override_defaults_and_resolve_paths_next_to_the_file(tmp_path):
    configs = _load(
        tmp_path,
        """
defaults: {window_size: 500, min_rows: 100, features: {trip_distance: {threshold: 0.2}}}
models:
  a: {}
  b:
    reference_path: refs/b.parquet
    min_rows: 400
    multiple_testing: bh
    features: {trip_distance: {stattest: ks, threshold: 0.01}, PULocationID: {unseen_floor: 0.02}}
""",
    )
    assert configs["a"].window_size == 500 and configs["a"].min_rows == 100
    assert configs["a"].tests["trip_distance"] == DriftTest("wasserstein", 0.2)
    assert configs["a"].reference_path == Path("/data/a/reference.parquet")
    b = configs["b"]
    assert (b.window_size, b.min_rows, b.multiple_testing) == (500, 400, "bh")
    assert b.tests["trip_distance"] == DriftTest("ks", 0.01)
    assert b.tests["PULocationID"] == DriftTest("tv", 0.1, unseen_floor=0.02)
    assert b.reference_path == tmp_path / "refs" / "b.parquet"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults: {window_size: 0}", "window_size"),
        ("defaults: {window_size: 10, min_rows: 20}", "exceeds window_size"),
        ("defaults: {features: {fare_amount: {threshold: 0.1}}}", "unknown monitored column"),
        ("defaults: {multiple_testing: holm}", "multiple_testing"),
        ("defaults: {features: {trip_distance: {unseen_floor: 0.02}}}", "trip_distance.unseen_floor"),
        ("defaults: {calibration: {false_alarm_rate: 1.5}}", "false_alarm_rate"),
        ("defaults: {calibration: {detectable_shift: 0.5}}", "detectable_shift"),
        ("defaults: {calibration: {alpha: 0.01}}", "alpha"),
        ("defaults: {windowsize: 10}", "windowsize"),
        ("models: {'bad name': {}}", "invalid model name"),
        ("models: {c: {}}", "no model folder has that name"),
        ("defaults: [", "cannot read"),
    ],
)
def test_mistakes_are_refused_with_a_clear_message(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


def test_several_models_are_served(make_app, make_rows, artifacts_dir, tmp_path):
    for name in ("green", "yellow"):
        model_folder(tmp_path / "models", artifacts_dir / "reference.parquet", name)
    app = make_app(models_dir=tmp_path / "models", models={"green": {"window_size": 600}})
    client = app.test_client()
    rows, _ = make_rows(5)
    assert client.post("/iterate/green", json=rows).json["window_rows"] == 5
    assert client.post("/iterate/yellow", json=rows[:2]).json["window_rows"] == 2
    text = client.get("/metrics").text
    assert 'evidently_window_rows{model="green"} 5.0' in text
    assert 'evidently_window_rows{model="yellow"} 2.0' in text
