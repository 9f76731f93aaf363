"""Model folders built in a test from scikit-learn's bundled data: a regressor and classifiers, not the taxi.

Each folder holds a `model.yaml` written here, the fitted model (`model.pkl`) and `reference.parquet`
(features, target, prediction and, for classifiers, one probability column per class). `serving_rows`
gives rows the model never saw, with its outputs, as a period's traffic.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from monitoring_core.model_folder import ModelFolder, load_model_folder


@dataclass(frozen=True)
class BuiltModel:
    """A model folder and the rows held out of its reference, with the model's outputs."""

    folder: ModelFolder
    held_out: pd.DataFrame


def _write(folder: Path, description: dict, model: object, reference: pd.DataFrame) -> ModelFolder:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    reference.to_parquet(folder / "reference.parquet", index=False)
    return load_model_folder(folder)


def diabetes_regressor(models_dir: Path, name: str = "diabetes") -> BuiltModel:
    """Return a ridge regressor of disease progression (442 rows): a numerical target with a unit, a binned segment."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.frame.rename(columns={"target": "progression"}).sample(frac=1.0, random_state=0)
    features = ["age", "bmi", "bp", "s5", "sex"]
    frame["sex"] = frame["sex"].map({1.0: "f", 2.0: "m"})
    x = pd.get_dummies(frame[features], columns=["sex"], dtype=float)
    model = Ridge(alpha=1.0).fit(x.iloc[:300], frame["progression"].iloc[:300])
    frame["prediction"] = model.predict(x)
    fit, rest = frame.iloc[:300], frame.iloc[300:]
    description = {
        "name": name,
        "task": "regression",
        "target": {"name": "progression", "unit": "points", "minimum": 0},
        "prediction": {"name": "prediction", "unit": "points"},
        "features": [
            {"name": "age", "kind": "numerical", "minimum": 0, "maximum": 120},
            {"name": "bmi", "kind": "numerical"},
            {"name": "bp", "kind": "numerical"},
            {"name": "s5", "kind": "numerical"},
            {"name": "sex", "kind": "categorical", "type": "str", "values": ["f", "m"]},
        ],
        "segments": [
            {"name": "age_band", "column": "age", "bins": [0, 40, 60, 120], "labels": ["<40", "40-60", "60+"]}
        ],
        "alerts": {"rmse": {"max": 80.0}},
    }
    columns = [*features, "progression", "prediction"]
    folder = _write(models_dir / name, description, model, fit[columns].reset_index(drop=True))
    return BuiltModel(folder, rest[columns].reset_index(drop=True))


def wine_classifier(models_dir: Path, name: str = "wine") -> BuiltModel:
    """Return a 3-class logistic regression of wine cultivars (178 rows), with class probabilities."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression

    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "cultivar"}).sample(frac=1.0, random_state=1).reset_index(drop=True)
    features = ["alcohol", "malic_acid", "color_intensity", "proline", "flavanoids"]
    model = LogisticRegression(max_iter=5000).fit(frame[features].iloc[:110], frame["cultivar"].iloc[:110])
    probabilities = model.predict_proba(frame[features])
    frame["prediction"] = model.predict(frame[features])
    columns = {str(c): f"proba_{c}" for c in model.classes_}
    for k, c in enumerate(model.classes_):
        frame[columns[str(c)]] = probabilities[:, k]
    description = {
        "name": name,
        "task": "classification",
        "classes": [int(c) for c in model.classes_],
        "target": {"name": "cultivar"},
        "prediction": {"name": "prediction", "probabilities": columns},
        "features": [{"name": f, "kind": "numerical"} for f in features],
        "alerts": {"accuracy": {"min": 0.8}},
    }
    kept = [*features, "cultivar", "prediction", *columns.values()]
    reference = frame.iloc[:110][kept].reset_index(drop=True)
    return BuiltModel(_write(models_dir / name, description, model, reference), frame.iloc[110:][kept])


def cancer_classifier(models_dir: Path, name: str = "cancer") -> BuiltModel:
    """Return a binary classifier of tumours (569 rows) with text classes, a categorical feature and a segment."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.sample(frac=1.0, random_state=2).reset_index(drop=True)
    frame["diagnosis"] = np.where(frame["target"] == 1, "benign", "malignant")
    frame = frame.rename(columns={"mean radius": "radius", "mean texture": "texture", "worst area": "area"})
    frame["size"] = pd.cut(frame["radius"], [0, 12, 16, 100], labels=["small", "medium", "large"]).astype(str)
    features = ["radius", "texture", "area", "size"]
    x = pd.get_dummies(frame[features], columns=["size"], dtype=float)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(x.iloc[:350], frame["diagnosis"].iloc[:350])
    frame["prediction"] = model.predict(x)
    probabilities = model.predict_proba(x)
    columns = {str(c): f"p_{c}" for c in model.classes_}
    for k, c in enumerate(model.classes_):
        frame[columns[str(c)]] = probabilities[:, k]
    description = {
        "name": name,
        "task": "classification",
        "classes": [str(c) for c in model.classes_],
        "target": {"name": "diagnosis"},
        "prediction": {"name": "prediction", "probabilities": columns},
        "features": [
            {"name": "radius", "kind": "numerical", "minimum": 0},
            {"name": "texture", "kind": "numerical"},
            {"name": "area", "kind": "numerical"},
            {"name": "size", "kind": "categorical", "type": "str"},
        ],
        "segments": [{"name": "tumour_size", "column": "size"}],
    }
    kept = [*features, "diagnosis", "prediction", *columns.values()]
    reference = frame.iloc[:350][kept].reset_index(drop=True)
    return BuiltModel(_write(models_dir / name, description, model, reference), frame.iloc[350:][kept])
