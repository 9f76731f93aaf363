"""Load the model `MODEL_PATH` names, whichever of three kinds it is, behind one predict interface.

- our artifact (`python -m ride_duration.train`): a pickled dict with the pipeline and its version;
- an MLflow model directory (it holds an `MLmodel` file), loaded with `mlflow.pyfunc.load_model`;
- the course's `lin_reg.bin`: a pickled `(DictVectorizer, model)` tuple over the course's features
  (`PU_DO` = "<PULocationID>_<DOLocationID>" and `trip_distance`).

The version that labels every metric and document comes from the model itself: our artifact's
own version, the MLflow run id (or the model's uuid when it was saved outside a run), or a hash
of the course file's bytes. Every kind predicts one sample ride at load, so a model that cannot
serve this API fails at start (`ModelLoadError`, one line naming the path and the reason).
"""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ride_duration.features import baseline_features
from ride_duration.model import RideDurationModel
from ride_duration.schema import FIELD_NAMES, MIN_DURATION_MINUTES

MLMODEL_FILE = "MLmodel"
COURSE_FEATURE = "PU_DO"
# The ride every model must be able to predict at load (the schema's fields, as the API passes them).
SAMPLE_RIDE = {
    "lpep_pickup_datetime": "2021-01-05T08:30:00",
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 1.2,
    "passenger_count": 1,
}


class ServedModel(Protocol):
    """What the service needs of a model: a version and durations (minutes) for rides (schema field dicts)."""

    version: str
    kind: str

    def predict_rides(self, rides: list[dict]) -> np.ndarray:
        """Return one duration in minutes per ride."""
        ...


class ModelLoadError(Exception):
    """The model at a path cannot be served; the message names the path and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        reason = " ".join(reason.split())  # one line, whatever the underlying library said
        super().__init__(f"cannot load the model at {path}: {reason}")
        self.path = path
        self.reason = reason


def _minutes(values: Any) -> np.ndarray:
    # Models answer as a list, a 1-D or an (n, 1) array, or a frame; the floor is the shortest trip
    # any training data keeps (a linear model extrapolates below zero for very short rides).
    minutes = np.asarray(values, dtype=float).reshape(-1)
    return np.maximum(minutes, MIN_DURATION_MINUTES)


@dataclass
class OurModel:
    """The artifact `python -m ride_duration.train` writes."""

    model: RideDurationModel
    kind: str = "ride_duration"

    @property
    def version(self) -> str:
        return self.model.version

    def predict_rides(self, rides: list[dict]) -> np.ndarray:
        return self.model.predict_rides(rides)


@dataclass
class CourseModel:
    """The course's `(DictVectorizer, model)` pickle, fed the course's features."""

    vectorizer: Any
    estimator: Any
    version: str
    kind: str = "course"

    def predict_rides(self, rides: list[dict]) -> np.ndarray:
        return _minutes(self.estimator.predict(self.vectorizer.transform([baseline_features(r) for r in rides])))


def mlflow_inputs(ride: dict) -> dict[str, Any]:
    """Return what an MLflow model gets for one ride: the schema's fields and the course's `PU_DO`."""
    return {**ride, COURSE_FEATURE: f"{ride['PULocationID']}_{ride['DOLocationID']}"}


@dataclass
class MlflowModel:
    """An MLflow pyfunc model; `style` is how it takes rides: a pandas frame, or a list of dicts."""

    pyfunc: Any
    version: str
    style: str = "frame"
    columns: list[str] = field(default_factory=list)
    kind: str = "mlflow"

    def predict_rides(self, rides: list[dict]) -> np.ndarray:
        inputs = [mlflow_inputs(ride) for ride in rides]
        if self.style == "records":
            # A DictVectorizer pipeline (the course's MLflow models) wants dicts; missing values stay out.
            return _minutes(self.pyfunc.predict([{k: v for k, v in r.items() if v is not None} for r in inputs]))
        import pandas as pd

        return _minutes(self.pyfunc.predict(pd.DataFrame(inputs, columns=self.columns)))


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _load_mlflow(path: Path) -> MlflowModel:
    try:
        import mlflow.pyfunc
    except ImportError:
        raise ModelLoadError(
            path, "an MLflow model needs the mlflow-skinny package (pip install mlflow-skinny)"
        ) from None
    try:
        pyfunc = mlflow.pyfunc.load_model(str(path))
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; each is one clear line here
        raise ModelLoadError(path, f"MLflow could not load it ({type(exc).__name__}: {exc})") from None
    metadata = pyfunc.metadata
    version = f"mlflow-{metadata.run_id or metadata.model_uuid or _dir_hash(path)}"
    available = [*FIELD_NAMES, COURSE_FEATURE]
    schema = metadata.get_input_schema()
    names = schema.input_names() if schema is not None and schema.has_input_names() else []
    missing = [name for name in names if name not in available]
    if missing:
        raise ModelLoadError(
            path, f"its signature needs {missing}, which the API does not provide (it provides {available})"
        )
    model = MlflowModel(pyfunc, version, columns=list(names) or available)
    errors = []
    for style in ("frame", "records"):
        model.style = style
        try:
            _check(model)
            return model
        except Exception as exc:  # noqa: BLE001 - try the next input style, report both
            errors.append(f"as a {style}: {type(exc).__name__}: {exc}")
    raise ModelLoadError(path, "it cannot predict a sample ride (" + "; ".join(errors) + ")")


def _dir_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(item.relative_to(path).as_posix().encode())
        digest.update(item.read_bytes())
    return digest.hexdigest()[:12]


def _load_pickle(path: Path) -> ServedModel:
    try:
        with open(path, "rb") as src:
            data = pickle.load(src)  # noqa: S301 - MODEL_PATH is the operator's own file (README "Threat model")
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file fails in many ways; say which
        raise ModelLoadError(path, f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    if isinstance(data, dict) and "pipeline" in data and "version" in data:
        return OurModel(
            RideDurationModel(pipeline=data["pipeline"], version=data["version"], info=data.get("info", {}))
        )
    if isinstance(data, RideDurationModel):
        return OurModel(data)
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and hasattr(data[0], "transform")
        and hasattr(data[1], "predict")
    ):
        return CourseModel(data[0], data[1], version=f"course-{_file_hash(path)}")
    raise ModelLoadError(
        path,
        f"a pickled {type(data).__name__} is none of the kinds served: this project's artifact "
        "(python -m ride_duration.train), the course's (DictVectorizer, model) tuple, or an MLflow model directory",
    )


def _check(model: ServedModel) -> None:
    minutes = model.predict_rides([SAMPLE_RIDE])
    if len(minutes) != 1 or not math.isfinite(float(minutes[0])):
        raise ValueError(f"expected one finite duration for one ride, got {minutes!r}")


def load_served_model(path: Path | str) -> ServedModel:
    """Load the model at `path` (any of the three kinds) and check it predicts; raise ModelLoadError otherwise."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(path, "no such file or directory (run `python -m ride_duration.train`, or set MODEL_PATH)")
    if path.is_dir():
        if not (path / MLMODEL_FILE).is_file():
            raise ModelLoadError(path, f"a directory without an {MLMODEL_FILE} file is not an MLflow model")
        return _load_mlflow(path)
    model = _load_pickle(path)
    try:
        _check(model)
    except Exception as exc:  # noqa: BLE001 - whatever the model raises, the start must fail with one line
        raise ModelLoadError(path, f"it cannot predict a sample ride ({type(exc).__name__}: {exc})") from None
    return model
