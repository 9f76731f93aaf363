"""The model artifact: a scikit-learn pipeline plus its version and training facts."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ride_duration.features import frame_features, ride_features
from ride_duration.schema import MIN_DURATION_MINUTES


@dataclass
class RideDurationModel:
    """A trained pipeline with the facts needed to trace its predictions."""

    pipeline: Pipeline
    version: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def predict_rides(self, rides: list[dict]) -> np.ndarray:
        """Predict the duration in minutes of raw rides (API field dicts)."""
        return _plausible(self.pipeline.predict([ride_features(r) for r in rides]))

    def predict_records(self, rows: list[dict]) -> np.ndarray:
        """Predict the minutes of validated rows given as dicts (what the service calls, without a DataFrame)."""
        return self.predict_rides(rows)

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Predict the duration in minutes of every row of a frame of raw rides."""
        return _plausible(self.pipeline.predict(frame_features(frame)))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predict the minutes of every row of a frame of the described features (the batch and reference path)."""
        return self.predict_frame(frame)


def _plausible(minutes: np.ndarray) -> np.ndarray:
    # A linear model extrapolates below zero for zero-distance rides; no ride is shorter
    # than the shortest one it was trained on.
    return np.maximum(minutes, MIN_DURATION_MINUTES)


def fingerprint(pipeline: Pipeline) -> str:
    """Return a short content hash of a fitted pipeline, used in the model version."""
    return hashlib.sha256(pickle.dumps(pipeline, protocol=5)).hexdigest()[:12]


def save_model(model: RideDurationModel, path: Path) -> None:
    """Write the model artifact atomically: the pickled model object (the service calls its `predict(frame)`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        pickle.dump(model, out, protocol=5)
    tmp.replace(path)


def load_model(path: Path | str) -> RideDurationModel:
    """Read a model artifact written by `python -m ride_duration.train`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}: run `python -m ride_duration.train` first")
    with open(path, "rb") as src:
        data = pickle.load(src)  # noqa: S301 - our own artifact, written by train
    if isinstance(data, RideDurationModel):
        return data
    # Artifacts of the first releases: a dict of the pipeline and its facts.
    return RideDurationModel(pipeline=data["pipeline"], version=data["version"], info=data.get("info", {}))
