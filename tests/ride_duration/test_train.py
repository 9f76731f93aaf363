"""Training writes a model and a reference dataset that match the contract."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd

from ride_duration.model import load_model
from ride_duration.schema import FIELD_NAMES, PREDICTION, TARGET
from ride_duration.train import train


def test_train_writes_model_and_reference(artifacts_dir) -> None:
    model = load_model(artifacts_dir / "model.pkl")
    reference = pd.read_parquet(artifacts_dir / "reference.parquet")
    assert model.version.startswith("synthetic-")
    assert set(reference.columns) == {*FIELD_NAMES, TARGET, PREDICTION}
    assert len(reference) > 1000
    # The model beats the course baseline and predicts sensible minutes.
    assert model.info["rmse"] < model.info["baseline_rmse"]
    assert reference[PREDICTION].between(0, 90).mean() > 0.99
    pred = model.predict_rides([{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2}])
    assert 1 < pred[0] < 30
    # Zero-distance rides do not get a negative duration.
    assert model.predict_rides([{"PULocationID": 1, "DOLocationID": 1, "trip_distance": 0.0}])[0] >= 1.0


def test_training_is_deterministic(tmp_path) -> None:
    a = train("synthetic", 3000, 5, tmp_path / "a", "2021-01", tmp_path)
    b = train("synthetic", 3000, 5, tmp_path / "b", "2021-01", tmp_path)
    assert a["version"] == b["version"]
    assert pd.read_parquet(tmp_path / "a/reference.parquet").equals(pd.read_parquet(tmp_path / "b/reference.parquet"))


def test_cli_prints_rmse(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ride_duration.train", "--rows", "2000", "--out-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "validation RMSE" in result.stdout
    assert (tmp_path / "model.pkl").exists() and (tmp_path / "reference.parquet").exists()
    assert (tmp_path / "model.yaml").exists()  # a whole model folder: MODEL_DIR serves it as it is


def test_cli_reports_offline_tlc_clearly(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ride_duration.train",
            "--source",
            "tlc",
            "--month",
            "1999-99",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "month must look like" in result.stderr
