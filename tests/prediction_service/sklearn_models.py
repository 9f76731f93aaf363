"""Model folders built from scikit-learn's bundled data sets: a classifier (wine) and a regressor (diabetes).

Each folder holds the test's own `model.yaml`, `reference.parquet` (features, target, the model's
predictions, class probabilities) and the model, as an MLflow model folder (`model/`) or a pickle
(`model.pkl`): nothing in it is the taxi example's.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from monitoring_core.reference import write_reference

WINE_CLASSES = ("barolo", "grignolino", "barbera")
WINE_NUMERIC = ("alcohol", "malic_acid", "flavanoids", "color_intensity", "proline")
DIABETES_NUMERIC = ("age", "bmi", "bp", "s5")

WINE_DESCRIPTION: dict[str, Any] = {
    "name": "wine",
    "task": "classification",
    "description": "Which cultivar a wine comes from, from its chemistry.",
    "classes": list(WINE_CLASSES),
    "target": {"name": "cultivar", "description": "The wine's cultivar."},
    "prediction": {"name": "prediction", "probabilities": {c: f"proba_{c}" for c in WINE_CLASSES}},
    "features": [
        *({"name": n, "kind": "numerical", "minimum": 0} for n in WINE_NUMERIC),
        {"name": "alcohol_level", "kind": "categorical", "values": ["low", "mid", "high"]},
    ],
    "alerts": {"accuracy": {"min": 0.8}},
}

DIABETES_DESCRIPTION: dict[str, Any] = {
    "name": "diabetes",
    "task": "regression",
    "description": "Disease progression one year after baseline.",
    "target": {"name": "progression", "minimum": 0, "maximum": 400},
    "prediction": {"name": "prediction"},
    "features": [
        *({"name": n, "kind": "numerical", "minimum": -1, "maximum": 1} for n in DIABETES_NUMERIC),
        {"name": "sex", "kind": "categorical", "values": ["female", "male"]},
        {"name": "visit", "kind": "datetime", "required": False, "description": "When the baseline was taken."},
    ],
    "alerts": {"rmse": {"max": 70}},
}


def wine_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Return the wine features (with a string category derived from alcohol) and the cultivar names."""
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"od280/od315_of_diluted_wines": "od280"})[list(WINE_NUMERIC)].copy()
    frame["alcohol_level"] = pd.cut(frame["alcohol"], [0, 12.5, 13.5, 20], labels=["low", "mid", "high"]).astype(str)
    return frame, pd.Series(np.array(WINE_CLASSES)[data.target], name="cultivar")


def diabetes_frame() -> tuple[pd.DataFrame, pd.Series]:
    """Return the diabetes features (sex as a string category, a visit time) and the progression."""
    data = load_diabetes(as_frame=True)
    frame = data.frame[list(DIABETES_NUMERIC)].copy()
    frame["sex"] = np.where(data.frame["sex"] > 0, "male", "female")
    frame["visit"] = pd.Timestamp("2024-03-01 09:00") + pd.to_timedelta(np.arange(len(frame)), unit="h")
    return frame, data.target.rename("progression")


def _encoded(categorical: str, numeric: tuple[str, ...]) -> ColumnTransformer:
    # The datetime column reaches the model too; this one leaves it out (remainder="drop").
    return ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), [categorical]), ("num", StandardScaler(), list(numeric))]
    )


def fit_wine() -> Any:
    """Return a fitted wine classifier (a Pipeline taking a DataFrame) whose classes_ are the cultivar names."""
    frame, target = wine_frame()
    return make_pipeline(_encoded("alcohol_level", WINE_NUMERIC), LogisticRegression(max_iter=2000)).fit(frame, target)


def fit_diabetes() -> Any:
    """Return a fitted diabetes regressor (a Pipeline taking a DataFrame)."""
    frame, target = diabetes_frame()
    return make_pipeline(_encoded("sex", DIABETES_NUMERIC), Ridge(alpha=0.1)).fit(frame, target)


def save_model(model: Any, folder: Path, kind: str) -> None:
    """Write `model` into `folder` as an MLflow model folder (`model/`) or a pickle (`model.pkl`)."""
    if kind == "mlflow":
        import mlflow.sklearn

        # No requirements: MLflow would infer them (a subprocess importing the model, ~30 s here) and check them.
        mlflow.sklearn.save_model(model, str(folder / "model"), serialization_format="cloudpickle", pip_requirements=[])
    else:
        (folder / "model.pkl").write_bytes(pickle.dumps(model))


def write_folder(
    folder: Path,
    description: dict[str, Any],
    frame: pd.DataFrame,
    target: pd.Series,
    model: Any,
    kind: str,
    served: Any = None,
) -> Path:
    """Write a model folder: the description, the reference (with `model`'s answers), `served` or else `model`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    reference = frame.copy()
    reference[description["target"]["name"]] = target.to_numpy()
    reference["prediction"] = model.predict(frame)
    for cls, column in (description["prediction"].get("probabilities") or {}).items():
        reference[column] = model.predict_proba(frame)[:, list(model.classes_).index(cls)]
    write_reference(reference, folder / "reference.parquet", f"test-{kind}")
    save_model(model if served is None else served, folder, kind)
    return folder


def wine_folder(folder: Path, kind: str = "pickle", model: Any = None) -> Path:
    """Write the wine classifier's folder (`model` replaces the fitted classifier, e.g. a broken one)."""
    frame, target = wine_frame()
    return write_folder(folder, WINE_DESCRIPTION, frame, target, fit_wine(), kind, served=model)


def diabetes_folder(folder: Path, kind: str = "pickle", model: Any = None) -> Path:
    """Write the diabetes regressor's folder (`model` replaces the fitted regressor, e.g. a broken one)."""
    frame, target = diabetes_frame()
    return write_folder(folder, DIABETES_DESCRIPTION, frame, target, fit_diabetes(), kind, served=model)


def boosted_diabetes_folder(folder: Path) -> Path:
    """Write the diabetes folder with a HistGradientBoosting regressor (it predicts on an OpenMP thread pool)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame, target = diabetes_frame()
    boosted = make_pipeline(_encoded("sex", DIABETES_NUMERIC), HistGradientBoostingRegressor(max_iter=20))
    return write_folder(folder, DIABETES_DESCRIPTION, frame, target, boosted.fit(frame, target), "pickle")


def foreign_course_pickle() -> tuple[Any, Any]:
    """Return a course-style (DictVectorizer, LinearRegression) fitted on feature names no description here has."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LinearRegression

    frame, target = diabetes_frame()
    dicts = [{"PU_DO": f"{i % 7}_{i % 5}", "trip_distance": float(i % 11)} for i in range(len(frame))]
    dv = DictVectorizer()
    return dv, LinearRegression().fit(dv.fit_transform(dicts), target)


class ColumnsModel:
    """An estimator fed some of the frame's columns (pickled by reference to this module: in-process tests only)."""

    def __init__(self, estimator: Any, columns: list[str]) -> None:
        self.estimator, self.columns = estimator, columns
        if hasattr(estimator, "classes_"):
            self.classes_ = estimator.classes_

    def predict(self, frame: pd.DataFrame) -> Any:
        return self.estimator.predict(frame[self.columns])

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        return self.estimator.predict_proba(frame[self.columns])


def binary_wine_folder(folder: Path) -> Path:
    """Write a wine folder whose classifier answers the integer classes 0 and 1 (is it a barolo?)."""
    from sklearn.linear_model import LogisticRegression

    frame, target = wine_frame()
    fitted = LogisticRegression(max_iter=2000).fit(frame[["alcohol", "proline"]], (target == "barolo").astype(int))
    folder = wine_folder(folder, "pickle", model=ColumnsModel(fitted, ["alcohol", "proline"]))
    description = {
        **WINE_DESCRIPTION,
        "name": "barolo",
        "classes": [0, 1],
        "target": {"name": "is_barolo"},
        "prediction": {"name": "prediction"},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    return folder


def row_of(frame: pd.DataFrame, index: int) -> dict[str, Any]:
    """Return one row of a feature frame as a JSON request body (datetimes as ISO text)."""
    row = frame.iloc[index].to_dict()
    return {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in row.items()}


class HostileRegressor:
    """A regressor that answers NaN, inf or None, or raises, for ages the reference never has (0.5, 0.6, 0.7, 0.8).

    Its answers on the reference are sound, so it passes the start checks; pickled by reference to this
    module (in-process tests only).
    """

    BAD = {0.5: float("nan"), 0.6: float("inf"), 0.7: None}

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict(self, frame: pd.DataFrame) -> Any:
        if (frame["age"] == 0.8).any():
            raise ValueError("age 0.8 is beyond this model")
        answers = self.estimator.predict(frame).astype(object)
        for age, bad in self.BAD.items():
            answers[(frame["age"] == age).to_numpy()] = bad
        return answers
