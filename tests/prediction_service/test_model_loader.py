"""MODEL_PATH kinds: our artifact, an MLflow model directory, the course's pickle; and models that must not load."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from model_kinds import course_features, write_course_pickle, write_mlflow_dict_model, write_mlflow_frame_model

from ride_duration.model_loader import ModelLoadError, load_served_model

SHORT = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 1.2,
    "passenger_count": 1,
    "lpep_pickup_datetime": None,
}
LONG = {**SHORT, "DOLocationID": 42, "trip_distance": 6.5}


@pytest.fixture(scope="module")
def models(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    return {
        "ride_duration": artifacts_dir / "model.pkl",
        "course": write_course_pickle(out / "lin_reg.bin"),
        "mlflow_dicts": write_mlflow_dict_model(out / "mlflow_dicts"),
        "mlflow_frame": write_mlflow_frame_model(out / "mlflow_frame"),
    }


@pytest.mark.parametrize(
    ("name", "kind", "prefix"),
    [
        ("ride_duration", "ride_duration", "synthetic-"),
        ("course", "course", "course-"),
        ("mlflow_dicts", "mlflow", "mlflow-"),
        ("mlflow_frame", "mlflow", "mlflow-"),
    ],
)
def test_each_kind_loads_with_its_own_version_and_predicts_sensible_durations(models, name, kind, prefix) -> None:
    model = load_served_model(models[name])
    assert model.kind == kind and model.version.startswith(prefix) and len(model.version) > len(prefix)
    short, long = model.predict_rides([SHORT, LONG])
    assert 1 <= short < long < 60


def test_the_course_model_gets_the_course_features(models) -> None:
    with open(models["course"], "rb") as src:
        dv, lr = pickle.load(src)  # noqa: S301 - written by the fixture
    import pandas as pd

    expected = lr.predict(dv.transform(course_features(pd.DataFrame([SHORT, LONG]))))
    assert list(load_served_model(models["course"]).predict_rides([SHORT, LONG])) == pytest.approx(expected)


def test_versions_come_from_the_model_itself(models, tmp_path: Path) -> None:
    import mlflow.pyfunc

    assert load_served_model(models["mlflow_dicts"]).version == (
        f"mlflow-{mlflow.pyfunc.load_model(str(models['mlflow_dicts'])).metadata.model_uuid}"
    )
    copy = tmp_path / "lin_reg_copy.bin"
    copy.write_bytes(models["course"].read_bytes())
    assert load_served_model(copy).version == load_served_model(models["course"]).version  # content, not path
    copy.write_bytes(copy.read_bytes() + b"\x00")  # another file (pickle ignores the trailing byte)
    assert load_served_model(copy).version != load_served_model(models["course"]).version


def broken_models(root: Path, artifact: Path) -> dict[str, tuple[Path, str]]:
    """(path, a phrase the one-line reason must hold) for each way a MODEL_PATH can be wrong."""
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
    return {
        "missing": (root / "nowhere.pkl", "no such file"),
        "garbage": (garbage, "not a readable pickle"),
        "truncated": (truncated, "not a readable pickle"),
        "foreign": (foreign, "none of the kinds served"),
        "not_mlflow": (empty_dir, "without an MLmodel file"),
        "bad_signature": (bad_signature, "fare_amount"),
        "broken_mlflow": (broken_mlflow, "MLflow could not load it"),
    }


def test_a_model_that_cannot_serve_raises_one_clear_error(artifacts_dir: Path, tmp_path: Path) -> None:
    for name, (path, phrase) in broken_models(tmp_path, artifacts_dir / "model.pkl").items():
        with pytest.raises(ModelLoadError) as info:
            load_served_model(path)
        message = str(info.value)
        assert message.startswith(f"cannot load the model at {path}: ") and phrase in message, name
        assert "\n" not in message, name
