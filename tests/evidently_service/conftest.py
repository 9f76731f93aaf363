"""Fixtures for the metrics service: contract rows with the real model's predictions, configs, apps."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from evidently_support import model_folder

from evidently_service import create_app
from evidently_service.settings import Settings
from ride_duration.model import RideDurationModel, load_model
from ride_duration.schema import FIELD_NAMES, TARGET
from ride_duration.synthetic import NO_DRIFT, DriftParams, generate_trips

# Small numbers so tests fill windows fast; drift tests are the schema's.
TEST_CONFIG: dict[str, Any] = {
    "window_size": 1000,
    "min_rows": 500,
    "evaluation_period_seconds": 0.2,
    "min_labelled_rows": 100,
    "segment_min_rows": 150,
    "segment_min_labelled_rows": 50,
}
PREDICTED_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def models_dir(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODELS_DIR holding the taxi model's folder, with the session's trained reference."""
    root = tmp_path_factory.mktemp("models")
    model_folder(root, artifacts_dir / "reference.parquet")
    return root


@pytest.fixture(scope="session")
def model(artifacts_dir: Path) -> RideDurationModel:
    return load_model(artifacts_dir / "model.pkl")


@pytest.fixture(scope="session")
def make_rows(model: RideDurationModel) -> Callable[..., tuple[list[dict], list[dict]]]:
    """make_rows(n, seed, drift, prefix) -> (contract rows with real predictions, their labels)."""

    def make(n: int, seed: int = 1, drift: DriftParams = NO_DRIFT, prefix: str = "r") -> tuple[list[dict], list]:
        frame = generate_trips(n, seed=seed, drift=drift)
        predictions = model.predict_frame(frame)
        rows, labels = [], []
        for i, (record, prediction, target) in enumerate(
            zip(frame[list(FIELD_NAMES)].to_dict("records"), predictions, frame[TARGET], strict=True)
        ):
            row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
            row["lpep_pickup_datetime"] = row["lpep_pickup_datetime"].isoformat()
            at = PREDICTED_AT + timedelta(seconds=i)
            rid = f"{prefix}-{seed}-{i}"
            row.update(
                request_id=rid, timestamp=at.isoformat(), model_version=model.version, prediction=float(prediction)
            )
            rows.append(row)
            labels.append(
                {"request_id": rid, "duration": float(target), "timestamp": (at + timedelta(minutes=30)).isoformat()}
            )
        return rows, labels

    return make


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(**overrides, models=None) -> path of a config.yaml with TEST_CONFIG as defaults."""

    def write(models: dict | None = None, **overrides: Any) -> Path:
        path = tmp_path / f"config-{len(list(tmp_path.glob('config-*.yaml')))}.yaml"
        body: dict[str, Any] = {"defaults": {**TEST_CONFIG, **overrides}}
        if models:
            body["models"] = models
        path.write_text(yaml.safe_dump(body))
        return path

    return write


@pytest.fixture
def make_app(models_dir: Path, write_config) -> Iterator[Callable[..., Any]]:
    """make_app(token=None, models=None, max_rows=10_000, models_dir=None, **config) -> an app without evaluations."""
    apps = []

    def make(
        token: str | None = None,
        models: dict | None = None,
        max_rows: int = 10_000,
        models_dir: Path = models_dir,
        **overrides: Any,
    ):
        settings = Settings(
            config_path=write_config(models=models, **overrides),
            models_dir=models_dir,
            monitoring_token=token,
            max_rows_per_request=max_rows,
            run_evaluators=False,
        )
        app = create_app(settings)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["evidently_service"].close()


@pytest.fixture
def monitor_of() -> Callable[..., Any]:
    """monitor_of(app, model="ride_duration") -> that model's ModelMonitor."""
    return lambda app, model="ride_duration": app.extensions["evidently_service"].monitors[model]
