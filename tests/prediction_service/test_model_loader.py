"""The generic model loader: every kind served, versions from the model, and the start checks that refuse a model.

The taxi example's kinds are served from its folder with MODEL_PATH naming the file; the wine
classifier and the diabetes regressor are folders built here from scikit-learn's data.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from model_kinds import course_features, write_course_pickle, write_mlflow_dict_model, write_mlflow_frame_model
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn_models import (
    WINE_CLASSES,
    WINE_NUMERIC,
    ColumnsModel,
    binary_wine_folder,
    diabetes_folder,
    diabetes_frame,
    foreign_course_pickle,
    wine_folder,
    wine_frame,
)

from monitoring_core.model_folder import load_model_folder
from prediction_service.model_loader import ModelLoadError, feature_frame, load_model, load_served_model
from ride_duration.schema import DESCRIPTION

SHORT = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 1.2,
    "passenger_count": 1,
    "lpep_pickup_datetime": None,
}
LONG = {**SHORT, "DOLocationID": 42, "trip_distance": 6.5}


@pytest.fixture(scope="module")
def taxi_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    return {
        "course": write_course_pickle(out / "lin_reg.bin"),
        "mlflow_dicts": write_mlflow_dict_model(out / "mlflow_dicts"),
        "mlflow_frame": write_mlflow_frame_model(out / "mlflow_frame"),
    }


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("folders")
    return {
        f"{name}-{kind}": make(out / f"{name}-{kind}", kind)
        for name, make in (("wine", wine_folder), ("diabetes", diabetes_folder))
        for kind in ("pickle", "mlflow")
    }


def served(folder: Path, model_path: Path | None = None):
    return load_served_model(load_model_folder(folder), model_path)


@pytest.mark.parametrize(
    ("name", "kind", "prefix"),
    [
        ("ride_duration", "object", "synthetic-"),
        ("course", "course", "course-"),
        ("mlflow_dicts", "mlflow", "mlflow-"),
        ("mlflow_frame", "mlflow", "mlflow-"),
    ],
)
def test_each_taxi_kind_loads_with_its_own_version_and_predicts(
    artifacts_dir: Path, taxi_models, name, kind, prefix
) -> None:
    path = artifacts_dir / "model.pkl" if name == "ride_duration" else taxi_models[name]
    model = served(artifacts_dir, path)  # MODEL_PATH overrides the folder's model file
    assert model.kind == kind and model.version.startswith(prefix) and len(model.version) > len(prefix)
    short, long = model.predict(feature_frame(DESCRIPTION, [SHORT, LONG])).predictions
    assert short < long


@pytest.mark.parametrize("name", ["ride_duration", "course", "mlflow_dicts", "mlflow_frame"])
def test_predict_rows_answers_as_the_frame_does(artifacts_dir: Path, taxi_models, name) -> None:
    # /predict calls predict_rows: a DictVectorizer model gets its dicts straight from the rows (no DataFrame);
    # the answers must be the frame path's, a pickup time and a missing passenger count included.
    from datetime import datetime

    path = artifacts_dir / "model.pkl" if name == "ride_duration" else taxi_models[name]
    model = served(artifacts_dir, path)
    if name == "ride_duration":  # its artifact takes dicts (predict_records): no DataFrame per request
        assert model.records
    rows = [SHORT, {**LONG, "lpep_pickup_datetime": datetime(2021, 1, 5, 8, 30), "passenger_count": None}]
    assert model.predict_rows(rows).predictions == pytest.approx(
        model.predict(feature_frame(DESCRIPTION, rows)).predictions
    )


def test_the_course_model_gets_dicts_of_the_features(artifacts_dir: Path, taxi_models) -> None:
    with open(taxi_models["course"], "rb") as src:
        dv, lr = pickle.load(src)  # noqa: S301 - written by the fixture
    rows = [{k: v for k, v in r.items() if v is not None} for r in (SHORT, LONG)]
    expected = lr.predict(dv.transform(rows))
    predictions = served(artifacts_dir, taxi_models["course"]).predict(feature_frame(DESCRIPTION, [SHORT, LONG]))
    # The course's own PU_DO is no described feature: only trip_distance reaches it (a wrapper in the example
    # code would build it); the vocabulary shares a name with the description, so it is served.
    assert predictions.predictions == pytest.approx(list(expected))


def test_the_wrapped_course_model_gets_the_courses_own_features(artifacts_dir: Path, taxi_models, tmp_path) -> None:
    from ride_duration.course import main

    wrapped = tmp_path / "model.pkl"
    assert main([str(taxi_models["course"]), str(wrapped)]) == 0
    model = served(artifacts_dir, wrapped)
    with open(taxi_models["course"], "rb") as src:
        dv, lr = pickle.load(src)  # noqa: S301 - written by the fixture
    expected = lr.predict(dv.transform(course_features(pd.DataFrame([SHORT, LONG]))))
    assert model.kind == "object" and model.version == load_model(taxi_models["course"], DESCRIPTION).version
    answers = model.predict(feature_frame(DESCRIPTION, [SHORT, LONG])).predictions
    assert answers == pytest.approx(list(np.maximum(expected, 1.0)))


def test_versions_come_from_the_model_itself(artifacts_dir: Path, taxi_models, tmp_path: Path) -> None:
    import mlflow.pyfunc

    assert load_model(taxi_models["mlflow_dicts"], DESCRIPTION).version == (
        f"mlflow-{mlflow.pyfunc.load_model(str(taxi_models['mlflow_dicts'])).metadata.model_uuid}"
    )
    copy = tmp_path / "lin_reg_copy.bin"
    copy.write_bytes(taxi_models["course"].read_bytes())
    assert load_model(copy, DESCRIPTION).version == load_model(taxi_models["course"], DESCRIPTION).version
    copy.write_bytes(copy.read_bytes() + b"\x00")  # another file (pickle ignores the trailing byte)
    assert load_model(copy, DESCRIPTION).version != load_model(taxi_models["course"], DESCRIPTION).version


@pytest.mark.parametrize("kind", ["pickle", "mlflow"])
def test_a_classifier_answers_its_classes_with_probabilities(folders, kind) -> None:
    model = served(folders[f"wine-{kind}"])
    frame, target = wine_frame()
    answers = model.predict(frame.iloc[::20])
    assert set(answers.predictions) <= set(WINE_CLASSES) and len(set(answers.predictions)) == 3
    assert np.mean(np.array(answers.predictions) == target.iloc[::20].to_numpy()) > 0.8
    for predicted, probabilities in zip(answers.predictions, answers.probabilities, strict=True):
        assert set(probabilities) == set(WINE_CLASSES) and sum(probabilities.values()) == pytest.approx(1)
        assert max(probabilities, key=probabilities.get) == predicted


@pytest.mark.parametrize("kind", ["pickle", "mlflow"])
def test_a_regressor_answers_finite_numbers(folders, kind) -> None:
    model = served(folders[f"diabetes-{kind}"])
    frame, target = diabetes_frame()
    answers = model.predict(frame.head(50))
    assert answers.probabilities is None and all(np.isfinite(answers.predictions))
    assert np.corrcoef(answers.predictions, target.head(50))[0, 1] > 0.5


class SeesDatetimes:
    """A pickled object with predict(DataFrame) that insists on pandas datetimes (defined here: in-process only)."""

    version = "sees-datetimes-1"

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        assert pd.api.types.is_datetime64_any_dtype(frame["visit"]), frame.dtypes
        return frame["visit"].dt.hour.to_numpy() + frame["bmi"].to_numpy()


def test_any_object_with_predict_gets_a_frame_with_pandas_datetimes(tmp_path: Path) -> None:
    folder = diabetes_folder(tmp_path / "dates", "pickle", model=SeesDatetimes())
    model = served(folder)
    assert model.kind == "object" and model.version == "sees-datetimes-1"  # its own version attribute
    rows = [{"age": 0, "bmi": 0.1, "bp": 0, "s5": 0, "sex": "male", "visit": "2024-03-01T07:00:00"}]
    frame = feature_frame(load_model_folder(folder).description, rows)
    assert model.predict(frame).predictions == [pytest.approx(7.1)]


class TakesRecords:
    """A pickled classifier taking dicts (`predict_records`, `predict_proba_records`): never given a DataFrame."""

    version = "records-1"

    def __init__(self, fitted) -> None:
        self.fitted = fitted
        self.classes_ = fitted.classes_

    def _frame(self, rows: list[dict]) -> pd.DataFrame:
        assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows), type(rows)
        return pd.DataFrame(rows)[list(self.fitted.feature_names_in_)]

    def predict(self, frame):  # pragma: no cover - the loader must prefer predict_records
        raise AssertionError("given a frame")

    def predict_records(self, rows: list[dict]) -> np.ndarray:
        return self.fitted.predict(self._frame(rows))

    def predict_proba_records(self, rows: list[dict]) -> np.ndarray:
        return self.fitted.predict_proba(self._frame(rows))


def test_an_object_with_predict_records_gets_dicts_on_both_paths(tmp_path: Path) -> None:
    from sklearn_models import fit_wine

    fitted = fit_wine()
    model = served(wine_folder(tmp_path / "records", model=TakesRecords(fitted)))
    assert model.kind == "object" and model.version == "records-1"
    frame, _ = wine_frame()
    rows = frame.head(5).to_dict(orient="records")
    by_rows, by_frame = model.predict_rows(rows), model.predict(frame.head(5))
    expected = [str(c) for c in fitted.predict(frame.head(5))]
    assert [str(c) for c in by_rows.predictions] == [str(c) for c in by_frame.predictions] == expected
    assert by_rows.probabilities == by_frame.probabilities and len(by_rows.probabilities) == 5
    assert all(sum(p.values()) == pytest.approx(1) for p in by_rows.probabilities)


def test_a_classifier_with_integer_classes_answers_class_zero(tmp_path: Path) -> None:
    model = served(binary_wine_folder(tmp_path / "binary"))
    frame, _ = wine_frame()
    answers = model.predict(frame.iloc[::10])
    assert set(answers.predictions) == {"0", "1"}
    assert all(set(p) == {"0", "1"} for p in answers.probabilities)


def broken_models(root: Path, artifact: Path) -> dict[str, tuple[Path, str]]:
    """(path, a phrase the one-line reason must hold) for each way a taxi MODEL_PATH can be wrong."""
    root.mkdir(parents=True, exist_ok=True)
    garbage = root / "garbage.bin"
    garbage.write_bytes(b"this is not a pickle")
    truncated = root / "truncated.pkl"
    truncated.write_bytes(artifact.read_bytes()[:200])
    foreign = root / "foreign.pkl"
    foreign.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    empty_dir = root / "not_mlflow"
    empty_dir.mkdir(exist_ok=True)
    bad_signature = write_mlflow_frame_model(root / "needs_fare", columns=("trip_distance", "fare_amount"))
    broken_mlflow = write_mlflow_dict_model(root / "broken_mlflow")
    (broken_mlflow / "model.pkl").write_bytes(b"\x80\x05garbage")
    # Pickles name their classes: one defined in the training script (__main__), one in a module absent here.
    script_class = root / "script_class.pkl"
    script_class.write_bytes(b"c__main__\nDoubler\n)\x81.")
    missing_module = root / "missing_module.pkl"
    missing_module.write_bytes(b"cmy_training_code\nDoubler\n)\x81.")
    return {
        "script_class": (
            script_class,
            "move the class into a module on PYTHONPATH, or save the model with cloudpickle",
        ),
        "missing_module": (missing_module, "the module 'my_training_code', which is not importable here"),
        "missing": (root / "nowhere.pkl", "no such file"),
        "garbage": (garbage, "not a readable pickle"),
        "truncated": (truncated, "not a readable pickle"),
        "foreign": (foreign, "none of the kinds served"),
        "not_mlflow": (empty_dir, "without an MLmodel file"),
        "bad_signature": (bad_signature, "fare_amount"),
        "broken_mlflow": (broken_mlflow, "MLflow could not load it"),
    }


def test_a_model_that_cannot_load_raises_one_clear_error(artifacts_dir: Path, tmp_path: Path) -> None:
    for name, (path, phrase) in broken_models(tmp_path, artifacts_dir / "model.pkl").items():
        with pytest.raises(ModelLoadError) as info:
            served(artifacts_dir, path)
        message = str(info.value)
        assert message.startswith(f"cannot load the model at {path}: ") and phrase in message, name
        assert "\n" not in message, name


def refused_folders(root: Path) -> dict[str, tuple[Path, str]]:
    """(folder, a phrase of the reason) for each model the start checks refuse."""
    frame, target = diabetes_frame()
    wine, cultivar = wine_frame()
    nan_model = LinearRegression().fit(frame[["bmi"]], target)
    nan_model.intercept_ = float("nan")
    other_classes = DummyClassifier(strategy="stratified").fit(wine, cultivar.str.upper())
    numeric = ColumnTransformer([("numeric", "passthrough", list(WINE_NUMERIC))])
    return {
        "constant": (diabetes_folder(root / "constant", model=DummyRegressor().fit(frame, target)), "same answer"),
        "constant_class": (
            wine_folder(root / "constant_class", model=DummyClassifier().fit(wine, cultivar)),
            "same answer",
        ),
        "foreign_vectorizer": (
            diabetes_folder(root / "foreign_vectorizer", model=foreign_course_pickle()),
            "its DictVectorizer expects the features ['PU_DO', 'trip_distance']",
        ),
        "not_finite": (diabetes_folder(root / "not_finite", model=ColumnsModel(nan_model, ["bmi"])), "non-finite"),
        "other_classes": (wine_folder(root / "other_classes", model=other_classes), "not among the description's"),
        # A classifier without predict_proba for a description naming probability columns: served, its rows
        # lacked them, and their drift, log loss, Brier and the quality estimate never came.
        "no_probabilities": (
            wine_folder(root / "no_probabilities", model=make_pipeline(numeric, RidgeClassifier()).fit(wine, cultivar)),
            "prediction.probabilities names ['proba_barbera', 'proba_barolo', 'proba_grignolino'], but the model "
            "gives no class probabilities",
        ),
    }


def test_the_start_checks_refuse_a_model_that_cannot_serve_its_description(tmp_path: Path) -> None:
    for name, (folder, phrase) in refused_folders(tmp_path).items():
        with pytest.raises(ModelLoadError) as info:
            served(folder)
        message = str(info.value)
        assert message.startswith(f"cannot load the model at {folder / 'model.pkl'}: "), (name, message)
        assert phrase in message and "\n" not in message, (name, message)
