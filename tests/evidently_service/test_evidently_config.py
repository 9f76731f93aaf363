"""config.yaml: defaults from the schema, per-model and per-feature overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitoring_core.monitoring_config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from ride_duration.schema import DriftTest, drift_tests

REFERENCE = Path("/data/reference.parquet")


def _load(tmp_path: Path, text: str, default_model: str = "ride_duration"):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path, default_model, REFERENCE)


def test_an_empty_file_monitors_the_default_model_with_the_schema_tests(tmp_path):
    configs = _load(tmp_path, "", default_model="taxi")
    assert list(configs) == ["taxi"]
    config = configs["taxi"]
    assert config.tests == drift_tests()
    assert config.reference_path == REFERENCE
    assert config.min_rows <= config.window_size


def test_the_packaged_config_uses_the_schema_tests_unchanged():
    # One source of truth: the online service and the batch flow both get the schema's tests.
    config = load_config(DEFAULT_CONFIG_PATH, "ride_duration", REFERENCE)["ride_duration"]
    assert config.tests == drift_tests()


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
    features: {trip_distance: {stattest: ks, threshold: 0.01}}
""",
    )
    assert configs["a"].window_size == 500 and configs["a"].min_rows == 100
    assert configs["a"].tests["trip_distance"] == DriftTest("wasserstein", 0.2)
    assert configs["a"].reference_path == REFERENCE
    b = configs["b"]
    assert (b.window_size, b.min_rows, b.multiple_testing) == (500, 400, "bh")
    assert b.tests["trip_distance"] == DriftTest("ks", 0.01)
    assert b.reference_path == tmp_path / "refs" / "b.parquet"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("defaults: {window_size: 0}", "window_size"),
        ("defaults: {window_size: 10, min_rows: 20}", "exceeds window_size"),
        ("defaults: {features: {fare_amount: {threshold: 0.1}}}", "unknown monitored column"),
        ("defaults: {multiple_testing: holm}", "multiple_testing"),
        ("defaults: {windowsize: 10}", "windowsize"),
        ("models: {'bad name': {}}", "invalid model name"),
        ("defaults: [", "cannot read"),
    ],
)
def test_mistakes_are_refused_with_a_clear_message(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


def test_several_models_are_served(make_app, make_rows, artifacts_dir):
    reference = str(artifacts_dir / "reference.parquet")
    app = make_app(models={"green": {"reference_path": reference}, "yellow": {"reference_path": reference}})
    client = app.test_client()
    rows, _ = make_rows(5)
    assert client.post("/iterate/green", json=rows).json["window_rows"] == 5
    assert client.post("/iterate/yellow", json=rows[:2]).json["window_rows"] == 2
    text = client.get("/metrics").text
    assert 'evidently_window_rows{model="green"} 5.0' in text
    assert 'evidently_window_rows{model="yellow"} 2.0' in text
