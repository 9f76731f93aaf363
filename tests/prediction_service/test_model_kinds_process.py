"""Each taxi model kind served by the real process (MODEL_PATH in the taxi folder), and every broken one
stopping the start with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from model_kinds import write_course_pickle, write_mlflow_dict_model
from prediction_support import RIDE, metric_value
from test_model_loader import broken_models

pytestmark = pytest.mark.integration

LONG = {**RIDE, "DOLocationID": 42, "trip_distance": 6.5}


def offline_env(model_dir: Path, workdir: Path, model_path: Path | None = None) -> dict[str, str]:
    """Return the environment of a service without MongoDB and metrics service, serving `model_dir`."""
    return {
        "MODEL_DIR": str(model_dir),
        **({"MODEL_PATH": str(model_path)} if model_path is not None else {}),
        "PREDICTION_LOG_TO_MONGODB": "false",
        "PREDICTION_FORWARD_TO_METRICS": "false",
        "PREDICTION_SPOOL_DIR": str(workdir / "spool"),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "WORKERS": "1",
        "DO_NOT_TRACK": "1",
    }


@pytest.mark.parametrize("kind", ["ride_duration", "course", "mlflow"])
def test_each_model_kind_is_served_by_the_real_process(
    kind, artifacts_dir: Path, tmp_path: Path, service_factory
) -> None:
    path = {
        "ride_duration": lambda: artifacts_dir / "model.pkl",
        "course": lambda: write_course_pickle(tmp_path / "lin_reg.bin"),
        "mlflow": lambda: write_mlflow_dict_model(tmp_path / "mlflow_model"),
    }[kind]()
    _, url = service_factory("prediction_service", offline_env(artifacts_dir, tmp_path, path))
    short = requests.post(f"{url}/predict", json=RIDE, timeout=10).json()
    long = requests.post(f"{url}/predict", json=LONG, timeout=10).json()
    assert short["duration"] == short["prediction"] and short["duration"] < long["duration"] < 60
    version = short["model_version"]
    assert version.startswith({"ride_duration": "synthetic-", "course": "course-", "mlflow": "mlflow-"}[kind])
    assert requests.get(f"{url}/health", timeout=5).json()["model_version"] == version
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert metric_value(text, "prediction_model_info", model_version=version) == 1
    assert metric_value(text, "prediction_predictions_total", model_version=version) == 2


def test_a_model_that_cannot_load_stops_the_start_with_one_line(artifacts_dir: Path, tmp_path: Path) -> None:
    broken = broken_models(tmp_path / "broken", artifacts_dir / "model.pkl")
    # Every kind of failure is covered in process by test_model_loader; here one of each family, end to end.
    for name in ("missing", "truncated", "broken_mlflow"):
        path, phrase = broken[name]
        env = {**os.environ, **offline_env(artifacts_dir, tmp_path, path), "PORT": "0"}
        # A safety bound only: the process exits as soon as the model fails, before gunicorn starts.
        done = subprocess.run(
            [sys.executable, "-m", "prediction_service"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, (name, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.startswith("prediction_service:")]
        assert len(lines) == 1 and lines[0].startswith(f"prediction_service: cannot load the model at {path}: "), name
        assert phrase in lines[0], (name, lines)
        assert "Traceback" not in done.stderr and "Booting worker" not in done.stderr, name
