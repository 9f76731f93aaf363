"""Models of every kind the service serves, trained on synthetic trips for the taxi example's description."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from ride_duration.synthetic import generate_trips


def course_features(frame: pd.DataFrame) -> list[dict]:
    """The course's features, as its model_training.py builds them (zone ids as strings)."""
    pu_do = frame["PULocationID"].astype(str) + "_" + frame["DOLocationID"].astype(str)
    return [{"PU_DO": p, "trip_distance": d} for p, d in zip(pu_do, frame["trip_distance"], strict=True)]


def trips() -> pd.DataFrame:
    return generate_trips(3000, seed=13)


def write_course_pickle(path: Path) -> Path:
    """Train the course's (DictVectorizer, LinearRegression) and pickle the tuple, as lin_reg.bin is."""
    frame = trips()
    dv = DictVectorizer()
    lr = LinearRegression().fit(dv.fit_transform(course_features(frame)), frame["duration"])
    with open(path, "wb") as out:
        pickle.dump((dv, lr), out)
    return path


def write_mlflow_dict_model(path: Path) -> Path:
    """An MLflow sklearn model of a DictVectorizer pipeline over the course's features (its module 4), no signature."""
    import mlflow.sklearn

    frame = trips()
    pipeline = make_pipeline(DictVectorizer(), LinearRegression()).fit(course_features(frame), frame["duration"])
    mlflow.sklearn.save_model(pipeline, str(path), serialization_format="cloudpickle", pip_requirements=[])
    return path


def write_mlflow_frame_model(path: Path, columns: tuple[str, ...] = ("trip_distance",)) -> Path:
    """An MLflow sklearn model over DataFrame columns, with a signature naming them."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    frame = trips()
    model = LinearRegression().fit(frame[["trip_distance"]], frame["duration"])
    inputs = pd.DataFrame({c: frame.get(c, 1.0) for c in columns})
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="cloudpickle",
        signature=infer_signature(inputs, frame["duration"]),
        pip_requirements=[],
    )
    return path
