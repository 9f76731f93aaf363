"""Load the model of a model folder, whichever kind it is, behind one predict interface; check it can serve.

Kinds served (`ModelFolder.model_path`, or `MODEL_PATH` when set):
- an MLflow model folder (it holds an `MLmodel` file), loaded with `mlflow.pyfunc.load_model`; class
  probabilities come from the underlying estimator's `predict_proba` when the flavour has one;
- a pickled scikit-learn estimator or Pipeline, or any pickled object with `predict(DataFrame)` (and
  `predict_proba` for a classifier: its `classes_` are mapped onto the description's classes);
- the course's `(DictVectorizer, model)` pickle, fed a list of dicts of the features.

The model gets a pandas DataFrame of the description's features (datetimes as pandas datetimes);
a model whose first step is a DictVectorizer gets a list of dicts instead. The version that labels
every metric and document comes from the model: the MLflow run id (or model uuid), the object's own
`version`, or a hash of the file's bytes.

At start the model predicts rows drawn from the folder's reference (`check_model`): it must answer
every row, finitely (regression) or with one of the description's classes (classification), and not
the same answer for every row (a DictVectorizer fitted on other feature names answers its intercept
for anything). Any failure is a `ModelLoadError`: one line naming the path and the reason.
"""

from __future__ import annotations

import hashlib
import math
import pickle
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.description import Kind, ModelDescription, category_key
from monitoring_core.model_folder import MLMODEL_FILE, ModelFolder
from monitoring_core.reference import read_reference

# Distinct reference rows every model predicts at start.
CHECK_ROWS = 20


class ModelLoadError(Exception):
    """The model at a path cannot be served; the message names the path and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        reason = " ".join(reason.split())  # one line, whatever the underlying library said
        super().__init__(f"cannot load the model at {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class Answers:
    """A model's answers for rows: predictions (numbers or class texts) and class probabilities when it has them."""

    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    # Row index -> why the model's answer for that row is unusable (NaN, None, a class outside `classes`,
    # a probability outside [0, 1]): such an answer is never served, logged or forwarded.
    problems: dict[int, str] = field(default_factory=dict)


class ModelOutputError(Exception):
    """The model gave an unusable answer for valid rows; `problems` says which row and why."""

    def __init__(self, problems: dict[int, str], is_batch: bool, raised: bool = False) -> None:
        first = next(iter(problems.items()))
        super().__init__(f"row {first[0]}: {first[1]}")
        self.problems = problems
        self.is_batch = is_batch
        # `prediction_model_errors_total{reason}`: the model raised, or answered something unusable.
        self.reason = "raised" if raised else "unusable_answer"


def _number_or_none(value: Any) -> float | None:
    """Return a prediction as a finite float, or None when it is missing, not a number, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 40 else text[:37] + "..."


def feature_frame(description: ModelDescription, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Return the rows' features as a DataFrame in the description's order; datetimes as pandas datetimes,
    numbers in numeric columns (a missing one is NaN)."""
    # Column arrays, not records: building the frame is on every request's path (about half the cost of
    # DataFrame.from_records plus per-column conversions).
    columns = {}
    for spec in description.features:
        values = [row.get(spec.name) for row in rows]
        if spec.kind is Kind.DATETIME:
            columns[spec.name] = _datetimes(values)
        elif spec.python_type in (int, float):
            columns[spec.name] = np.array(values, dtype=float if None in values else None)
        else:
            columns[spec.name] = np.array(values, dtype=object)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)), copy=False)


# pandas' nanosecond clock spans 1677-2262; numpy would wrap a time outside it silently.
_NS_RANGE = (np.datetime64("1677-09-22", "us"), np.datetime64("2262-04-10", "us"))


def _datetimes(values: list[Any]) -> np.ndarray:
    micros = np.array(values, dtype="datetime64[us]")
    known = micros[~np.isnat(micros)]
    if known.size and (known.min() < _NS_RANGE[0] or known.max() > _NS_RANGE[1]):
        return micros  # a valid ISO time such as year 1: kept, at microsecond resolution
    return micros.astype("datetime64[ns]")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    # A DictVectorizer takes dicts: missing values stay out, datetimes as ISO text (it one-hot encodes text).
    records = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for key, value in record.items():
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                continue
            row[key] = value.isoformat() if isinstance(value, pd.Timestamp) else value
        records.append(row)
    return records


def _row_record(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # `_records` of one validated row, without the frame: missing values left out, datetimes as ISO text.
    record = {}
    for name in names:
        value = row.get(name)
        if value is None or (isinstance(value, float) and value != value):
            continue
        record[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return record


def _dict_vectorizer(model: Any) -> Any | None:
    """Return the DictVectorizer a model starts with (itself, or a Pipeline's first step), else None."""
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.pipeline import Pipeline

    if isinstance(model, DictVectorizer):
        return model
    if isinstance(model, Pipeline) and model.steps and isinstance(model.steps[0][1], DictVectorizer):
        return model.steps[0][1]
    return None


def _vocabulary_names(vectorizer: Any) -> list[str]:
    """Return the input names a fitted DictVectorizer knows (one-hot `name=value` entries folded to `name`)."""
    names = getattr(vectorizer, "feature_names_", None) or []
    separator = getattr(vectorizer, "separator", "=")
    return list(dict.fromkeys(str(name).split(separator, 1)[0] for name in names))


@dataclass
class ServedModel:
    """A loaded model and how to call it: `predict(frame)` gives `Answers` typed by the description's task."""

    description: ModelDescription
    model: Any  # what `predict` is called on (MLflow pyfunc, estimator, object, or the course's model)
    version: str
    kind: str
    vectorizer: Any = None  # the course's tuple: its DictVectorizer, applied first
    records: bool = False  # the model takes a list of dicts (a DictVectorizer pipeline)
    columns: tuple[str, ...] | None = None  # an MLflow signature's input names, in its order
    proba_model: Any = None  # what `predict_proba` is called on (classifiers), None without probabilities
    # The start check's comparison with the reference's recorded predictions ({} when it could not be made).
    reference_check: dict[str, Any] = field(default_factory=dict)

    def _inputs(self, frame: pd.DataFrame) -> Any:
        if self.columns is not None:
            frame = frame[list(self.columns)]
        if self.vectorizer is not None:
            return self.vectorizer.transform(_records(frame))
        return _records(frame) if self.records else frame

    def predict(self, frame: pd.DataFrame) -> Answers:
        """Return the model's answers for every row of a frame of features."""
        return self._answers(self._inputs(frame), len(frame))

    def predict_rows(self, rows: list[dict[str, Any]]) -> Answers:
        """Return the model's answers for validated feature rows (what `/predict` calls).

        The same answers as `predict(feature_frame(description, rows))`; a model fed dicts (a DictVectorizer
        first) gets them straight from the rows, without a DataFrame built and taken apart again on
        every request (that round trip cost more than the course's whole model).
        """
        if self.vectorizer is None and not self.records:
            return self.predict(feature_frame(self.description, rows))
        names = self.columns or self.description.feature_names
        records = [_row_record(row, names) for row in rows]
        return self._answers(self.vectorizer.transform(records) if self.vectorizer is not None else records, len(rows))

    def _answers(self, inputs: Any, count: int) -> Answers:
        raw = self.model.predict(inputs)
        if isinstance(raw, pd.DataFrame):
            raw = raw.iloc[:, 0]
        values = np.asarray(raw).reshape(count, -1)[:, 0] if count else np.asarray([])
        problems: dict[int, str] = {}
        if not self.description.is_classification:
            predictions = [_number_or_none(v) for v in values]
            for index, number in enumerate(predictions):
                if number is None:
                    problems[index] = f"the model answered {_shown(values[index])}, not a finite number"
            return Answers(predictions, problems=problems)
        known = self._class_set
        predictions = [category_key(v) for v in values]
        for index, key in enumerate(predictions):
            if key not in known:
                problems[index] = (
                    f"the model answered {_shown(values[index])}, not among the description's classes "
                    f"{list(self.description.class_keys)}"
                )
        if self.proba_model is None:
            return Answers(predictions, problems=problems)
        probabilities = self._probabilities(inputs)
        for index, row in enumerate(probabilities):
            bad = next((c for c, p in row.items() if not 0.0 <= p <= 1.0), None)  # NaN fails both comparisons
            if bad is not None and index not in problems:
                problems[index] = f"the model's probability of class {bad!r} is {row[bad]!r}, not within [0, 1]"
        return Answers(predictions, probabilities, problems)

    @cached_property  # on the request path: built once, not per call
    def _class_set(self) -> frozenset[str]:
        return frozenset(self.description.class_keys)

    def _probabilities(self, inputs: Any) -> list[dict[str, float]]:
        matrix = np.asarray(self.proba_model.predict_proba(inputs), dtype=float)
        classes = [category_key(c) for c in self.proba_model.classes_]
        if matrix.ndim != 2 or matrix.shape[1] != len(classes):
            raise ValueError(
                f"its predict_proba gives {matrix.shape[1] if matrix.ndim == 2 else 'no'} columns "
                f"for its {len(classes)} classes_ {classes}"
            )
        # Every described class gets a probability: one the model never learned has 0.
        keys = self.description.class_keys
        return [{key: 0.0 for key in keys} | dict(zip(classes, map(float, row), strict=True)) for row in matrix]


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _dir_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(item.relative_to(path).as_posix().encode())
        digest.update(item.read_bytes())
    return digest.hexdigest()[:12]


class _RecordsModel:
    """A model object with `predict_records(list[dict])` (and optionally `predict_proba_records`), called as a model."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        if callable(getattr(inner, "predict_proba_records", None)) and hasattr(inner, "classes_"):
            self.classes_ = inner.classes_
            self.predict_proba = inner.predict_proba_records

    def predict(self, records: list[dict[str, Any]]) -> Any:
        return self.inner.predict_records(records)


def _proba_of(description: ModelDescription, model: Any, path: Path) -> Any:
    """Return the object to ask for class probabilities (None for a regressor or without predict_proba)."""
    if not description.is_classification or not hasattr(model, "predict_proba"):
        return None
    classes = getattr(model, "classes_", None)
    if classes is None:
        return None
    unknown = sorted({category_key(c) for c in classes} - set(description.class_keys))
    if unknown:
        raise ModelLoadError(
            path, f"its classes {unknown} are not among the description's classes {list(description.class_keys)}"
        )
    return model


def _load_mlflow(path: Path, description: ModelDescription) -> ServedModel:
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
    schema = metadata.get_input_schema()
    names = tuple(schema.input_names()) if schema is not None and schema.has_input_names() else None
    missing = [name for name in names or () if name not in description.feature_names]
    if missing:
        raise ModelLoadError(
            path,
            f"its signature needs {missing}, which the description does not have "
            f"(its features: {list(description.feature_names)})",
        )
    try:
        raw = pyfunc.get_raw_model()
    except Exception:  # noqa: BLE001 - flavours without a raw model: predictions only
        raw = None
    vectorizer = _dict_vectorizer(raw)
    if vectorizer is not None:
        _check_vocabulary(path, description, vectorizer)
    elif names is None and raw is not None:  # no signature: the raw model's own columns, in its order
        _check_fitted_names(path, description, raw)
        names = _fitted_columns(raw)
    return ServedModel(
        description,
        pyfunc,
        version,
        "mlflow",
        records=vectorizer is not None,
        columns=names,
        proba_model=_proba_of(description, raw, path) if raw is not None else None,
    )


def _check_vocabulary(path: Path, description: ModelDescription, vectorizer: Any) -> None:
    expected = _vocabulary_names(vectorizer)
    if expected and not set(expected) & set(description.feature_names):
        raise ModelLoadError(
            path,
            f"its DictVectorizer expects the features {expected}, and the description has none of them "
            f"(it has {list(description.feature_names)})",
        )


def _fitted_columns(model: Any) -> tuple[str, ...] | None:
    """Return the columns a scikit-learn model was fitted on, in their order (it refuses any other order or extra)."""
    fitted = getattr(model, "feature_names_in_", None)
    return tuple(str(name) for name in fitted) if fitted is not None else None


def _check_fitted_names(path: Path, description: ModelDescription, model: Any) -> None:
    """Refuse a scikit-learn model fitted on columns the description lacks (it would fail on every request)."""
    fitted = getattr(model, "feature_names_in_", None)
    missing = [str(name) for name in fitted if name not in description.feature_names] if fitted is not None else []
    if missing:
        raise ModelLoadError(
            path,
            f"it was fitted on the column(s) {missing}, which the description does not have "
            f"(its features: {list(description.feature_names)}); add it to the description, or, for a column "
            "the draft left out (a leading digit, `$`, quotes, or a name the stack reserves), rename it in the "
            "reference and the model",
        )


def _load_pickle(path: Path, description: ModelDescription) -> ServedModel:
    try:
        with open(path, "rb") as src:
            data = pickle.load(src)  # noqa: S301 - the model file is the operator's own (README "Threat model")
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file fails in many ways; say which
        raise ModelLoadError(
            path, f"not a readable pickle ({type(exc).__name__}: {exc}){_unpickle_hint(exc)}"
        ) from None
    if (
        isinstance(data, tuple | list)
        and len(data) == 2
        and hasattr(data[0], "transform")
        and hasattr(data[1], "predict")
    ):
        vectorizer, estimator = data
        if _dict_vectorizer(vectorizer) is not None:
            _check_vocabulary(path, description, vectorizer)
        proba = _proba_of(description, estimator, path)
        return ServedModel(
            description, estimator, f"course-{_file_hash(path)}", "course", vectorizer, proba_model=proba
        )
    if callable(getattr(data, "predict_records", None)):
        # A model object taking the rows as dicts is given them straight from the validated request, without a
        # DataFrame built per request (the taxi example: about half a millisecond per call).
        own = getattr(data, "version", None)
        version = own if isinstance(own, str) and own else f"object-{_file_hash(path)}"
        adapter = _RecordsModel(data)
        proba = _proba_of(description, adapter, path)
        return ServedModel(description, adapter, version, "object", records=True, proba_model=proba)
    if callable(getattr(data, "predict", None)):
        own = getattr(data, "version", None)
        is_sklearn = hasattr(data, "get_params")
        kind = "sklearn" if is_sklearn else "object"
        version = own if isinstance(own, str) and own else f"{kind}-{_file_hash(path)}"
        vectorizer = _dict_vectorizer(data)
        if vectorizer is not None:
            _check_vocabulary(path, description, vectorizer)
        _check_fitted_names(path, description, data)
        proba = _proba_of(description, data, path)
        # Fed its own columns in its own order: the description may order them otherwise or hold more.
        columns = _fitted_columns(data) if vectorizer is None else None
        return ServedModel(
            description, data, version, kind, records=vectorizer is not None, columns=columns, proba_model=proba
        )
    raise ModelLoadError(
        path,
        f"a pickled {type(data).__name__} is none of the kinds served: an object with predict(DataFrame) "
        "(a scikit-learn estimator or Pipeline), the course's (DictVectorizer, model) tuple, or an MLflow model folder",
    )


def _unpickle_hint(exc: Exception) -> str:
    """Say what to do when a pickle names code this process cannot import (pickle stores classes by name)."""
    if isinstance(exc, ModuleNotFoundError):
        return (
            f": the model's code is in the module {exc.name!r}, which is not importable here: install it or put it "
            "on PYTHONPATH"
        )
    if isinstance(exc, AttributeError) and "__main__" in str(exc):
        return (
            ": its class was defined in the script that pickled it (__main__), which this service is not: move the "
            "class into a module on PYTHONPATH, or save the model with cloudpickle (classes by value) or MLflow"
        )
    return ""


def load_model(path: Path | str, description: ModelDescription) -> ServedModel:
    """Load the model at `path` (any kind served) for `description`; raise ModelLoadError when it cannot be."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(path, "no such file or directory (train the model into its folder, or set MODEL_PATH)")
    if path.is_dir():
        if not (path / MLMODEL_FILE).is_file():
            raise ModelLoadError(path, f"a directory without an {MLMODEL_FILE} file is not an MLflow model")
        return _load_mlflow(path, description)
    return _load_pickle(path, description)


def check_rows(folder: ModelFolder, limit: int = CHECK_ROWS) -> list[dict[str, Any]]:
    """Return up to `limit` distinct rows of the folder's reference that pass request validation, as features."""
    return _reference_rows(folder, limit)[0]


def _reference_rows(folder: ModelFolder, limit: int = CHECK_ROWS) -> tuple[list[dict[str, Any]], list[Any]]:
    """Return `check_rows` and, for each, the prediction the reference records for it (None when absent)."""
    from pydantic import ValidationError

    from monitoring_core.validation import validate_request

    description = folder.description
    names = list(description.feature_names)
    reference = read_reference(folder.reference_path)
    absent = [name for name in names if name not in reference.columns]
    if absent:
        raise ValueError(f"the reference {folder.reference_path} lacks the feature column(s) {absent}")
    distinct = reference[names].drop_duplicates()
    # Spread over the file (not its first rows, which may be alike), reproducibly.
    distinct = distinct.sample(min(len(distinct), limit * 5), random_state=0)
    column = description.prediction_column
    recorded = reference[column] if column in reference.columns else pd.Series(None, index=reference.index)
    rows: list[dict[str, Any]] = []
    expected: list[Any] = []
    for index, record in zip(distinct.index, distinct.to_dict(orient="records"), strict=True):
        try:
            valid = validate_request(description, record)
        except ValidationError:
            continue
        rows.append({name: getattr(valid, name) for name in names})
        expected.append(recorded.loc[index])
        if len(rows) == limit:
            break
    return rows, expected


def reference_check(model: ServedModel, rows: list[dict[str, Any]], expected: list[Any]) -> dict[str, Any]:
    """Compare the served answers for reference rows with the predictions the reference records for them.

    A difference means the model sees other inputs through the service than when the reference was written
    (a datetime's timezone, a category's type, a unit), or the reference comes from another model: every
    prediction served is then silently not what its owner expects, and prediction drift compares unlike things.
    """
    description = model.description
    pairs = [(row, want) for row, want in zip(rows, expected, strict=True) if not _missing(want)]
    if not pairs:
        return {}
    served = model.predict_rows([row for row, _ in pairs]).predictions
    differing = [
        (got, want) for got, (_, want) in zip(served, pairs, strict=True) if not _same_answer(description, got, want)
    ]
    check: dict[str, Any] = {"rows": len(pairs), "differing": len(differing)}
    if differing:
        got, want = differing[0]
        check["message"] = (
            f"the model's answers for {len(differing)} of {len(pairs)} reference rows differ from the reference's "
            f"`{description.prediction_column}` column (e.g. {got!r} served, {_native(want)!r} recorded): the "
            "service feeds it other inputs than it saw when the reference was written (a datetime's timezone, a "
            "category's type, a unit), or the reference comes from another model; fix the description or write "
            "the reference again"
        )
    return check


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _same_answer(description: ModelDescription, served: Any, recorded: Any) -> bool:
    if description.is_classification:
        return served == category_key(recorded)
    try:
        return math.isclose(float(served), float(recorded), rel_tol=1e-4, abs_tol=1e-6)
    except (TypeError, ValueError):
        return False


def check_model(model: ServedModel, rows: list[dict[str, Any]], path: Path) -> None:
    """Predict `rows`; raise ModelLoadError unless every answer is valid and they are not all the same."""
    description = model.description
    if not rows:
        raise ModelLoadError(path, "no row of the reference passes the description's validation: nothing to check")
    try:
        answers = model.predict(feature_frame(description, rows))
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the model raises, the start must fail with one line
        raise ModelLoadError(path, f"it cannot predict rows of the reference ({type(exc).__name__}: {exc})") from None
    predictions = answers.predictions
    declared = description.prediction.probabilities
    if declared and answers.probabilities is None:
        # Served without them, every row would reach the metrics service without its probability
        # columns: their drift, log loss, Brier and the quality estimate would never come.
        raise ModelLoadError(
            path,
            f"the description's prediction.probabilities names {sorted(declared.values())}, but the model gives "
            "no class probabilities (no predict_proba with classes_); remove prediction.probabilities from "
            "model.yaml, or serve a model that has them",
        )
    if len(predictions) != len(rows):
        raise ModelLoadError(path, f"it answered {len(predictions)} predictions for {len(rows)} rows")
    if answers.problems:
        index, problem = next(iter(answers.problems.items()))
        kind = "" if description.is_classification else "non-finite or missing answers: "
        raise ModelLoadError(
            path,
            f"{kind}it gives no usable answer for {len(answers.problems)} of {len(rows)} reference rows "
            f"(row {rows[index]}: {problem})",
        )
    probabilities = answers.probabilities or [{}] * len(predictions)
    distinct_answers = {(p, tuple(sorted(probs.items()))) for p, probs in zip(predictions, probabilities, strict=True)}
    if len(rows) > 1 and len(distinct_answers) == 1:
        raise ModelLoadError(
            path,
            f"it gives the same answer ({predictions[0]!r}) for {len(rows)} differing rows of the reference: "
            "it does not use the described features (fitted on other feature names?)",
        )


def load_served_model(folder: ModelFolder, model_path: Path | None = None) -> ServedModel:
    """Load the folder's model (or `model_path`), and check it on rows of the reference; ModelLoadError otherwise."""
    path = model_path or folder.model_path
    if path is None:
        raise ModelLoadError(
            folder.path, "no model file in the folder (model/, model.pkl or model.bin; or set MODEL_PATH)"
        )
    model = load_model(path, folder.description)
    if not folder.reference_path.is_file():
        raise ModelLoadError(path, f"no reference at {folder.reference_path}: the start check predicts rows of it")
    try:
        rows, expected = _reference_rows(folder)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(path, f"cannot read rows of the reference ({type(exc).__name__}: {exc})") from None
    check_model(model, rows, path)
    model.reference_check = reference_check(model, rows, expected)
    return model
