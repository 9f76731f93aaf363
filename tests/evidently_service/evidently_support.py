"""Model folders for the metrics service's tests: the taxi example's, and models built here from scikit-learn data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from monitoring_core.paths import DEFAULT_MODEL_DIR


def model_folder(root: Path, reference: Path, name: str = "ride_duration", source: Path = DEFAULT_MODEL_DIR) -> Path:
    """Write a model folder under `root`: the taxi description (renamed to `name`) and a copy of `reference`."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    description = yaml.safe_load((source / "model.yaml").read_text())
    description["name"] = name
    (folder / "model.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    (folder / "reference.parquet").write_bytes(reference.read_bytes())
    return folder


def write_folder(root: Path, description: dict[str, Any], reference: pd.DataFrame) -> Path:
    """Write `description` as model.yaml and `reference` as reference.parquet into root/<name>."""
    folder = root / description["name"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    reference.to_parquet(folder / "reference.parquet", index=False)
    return folder


WINE_FEATURES = ("alcohol", "malic_acid", "color_intensity", "proline")


def wine_classifier(root: Path, alerts: dict | None = None) -> tuple[Path, pd.DataFrame]:
    """A logistic regression on scikit-learn's wine data (3 classes, text labels), with class probabilities.

    Returns the folder and the full frame (features, target, prediction, probabilities) to send rows from.
    """
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_wine(as_frame=True)
    frame = data.frame[list(WINE_FEATURES)].copy()
    names = ["barolo", "grignolino", "barbera"]
    frame["cultivar"] = np.array(names, dtype=object)[data.target.to_numpy()]
    # A categorical feature from a number: rows with strong colour (the model never sees it).
    frame["hue_band"] = np.where(data.frame["hue"] > 1.0, "pale", "deep")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        frame[list(WINE_FEATURES)], frame["cultivar"]
    )
    frame["prediction"] = model.predict(frame[list(WINE_FEATURES)])
    probabilities = model.predict_proba(frame[list(WINE_FEATURES)])
    for i, cls in enumerate(model.classes_):
        frame[f"prob_{str(cls)}"] = probabilities[:, i]
    description = {
        "name": "wine",
        "task": "classification",
        "classes": list(names),
        "target": {"name": "cultivar"},
        "prediction": {"name": "prediction", "probabilities": {c: f"prob_{c}" for c in names}},
        "features": [
            *({"name": f, "kind": "numerical", "minimum": 0, "maximum": 5000} for f in WINE_FEATURES),
            {"name": "hue_band", "kind": "categorical", "type": "str"},
        ],
        "alerts": alerts if alerts is not None else {"accuracy": {"min": 0.8}, "log_loss": {"max": 0.7}},
    }
    return write_folder(root, description, frame), frame


def diabetes_regressor(root: Path, rows: int | None = None) -> tuple[Path, pd.DataFrame]:
    """A ridge regression on scikit-learn's diabetes data (a categorical `sex`), optionally only `rows` rows."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.frame.rename(columns={"target": "progression"})
    features = ["age", "bmi", "bp", "s5"]
    frame = frame[[*features, "sex", "progression"]].copy()
    frame["sex"] = frame["sex"].astype(int)
    model = Ridge().fit(frame[features], frame["progression"])
    frame["prediction"] = model.predict(frame[features])
    if rows is not None:
        frame = frame.head(rows)
    description = {
        "name": "diabetes" if rows is None else f"diabetes_{rows}",
        "task": "regression",
        "target": {"name": "progression", "unit": "points", "minimum": 0},
        "features": [
            *({"name": f, "kind": "numerical", "minimum": -1000, "maximum": 1000} for f in features),
            {"name": "sex", "kind": "categorical", "type": "int"},
        ],
        "segments": [{"name": "sex_group", "column": "sex", "map": {1: "one", 2: "two"}}],
        "alerts": {"rmse": {"max": 70}},
    }
    return write_folder(root, description, frame), frame


def rows_of(frame: pd.DataFrame, description: dict[str, Any], prefix: str, start: int = 0) -> tuple[list, list]:
    """Return (/iterate rows, /feedback labels) for the frame's rows, typed as JSON."""
    features = [f["name"] for f in description["features"]]
    outputs = ["prediction", *(description.get("prediction", {}).get("probabilities") or {}).values()]
    target = description["target"]["name"]
    rows, labels = [], []
    for i, record in enumerate(frame.to_dict("records"), start=start):
        rid = f"{prefix}-{i}"
        row = {k: _json(record[k]) for k in (*features, *outputs)}
        row.update(request_id=rid, timestamp="2026-12-01T12:00:00Z")
        rows.append(row)
        labels.append({"request_id": rid, target: _json(record[target])})
    return rows, labels


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
