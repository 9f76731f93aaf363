"""Prediction documents as the prediction service logs them, for seeding MongoDB in tests, benchmarks and demos.

The format is the contract's (docs/contract.md "MongoDB"): one flat document per prediction with
`request_id`, `timestamp` (BSON datetime, UTC), `model_name`, `model_version`, every described
feature under its name, the outputs (the prediction and any class probabilities), and
`target`/`target_timestamp` once ground truth arrived. Any model: the rows and the description say
what to log (`logged_documents`); `prediction_documents` first asks a model for the predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pymongo import MongoClient

from monitoring_core.description import FeatureSpec, Kind, ModelDescription, category_key
from monitoring_core.documents import ensure_indexes, label_fields, prediction_document, predictions_collection


class Predictor(Protocol):
    """A model the seeding can ask for predictions (the taxi example's RideDurationModel is one)."""

    version: str

    def predict_frame(self, frame: pd.DataFrame) -> np.ndarray: ...


def _missing(value: object) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


def _value(spec: FeatureSpec, value: object) -> object:
    """Return a feature value as the service stores it: by the field's type, None when missing."""
    if _missing(value):
        return None
    if spec.kind is Kind.DATETIME:
        return pd.Timestamp(value).isoformat()  # clients send ISO strings; the service keeps them as sent
    if spec.python_type is str:
        return category_key(value)
    if spec.python_type is bool:
        return bool(value)
    return int(value) if spec.python_type is int else float(value)


def _output(description: ModelDescription, column: str, value: object) -> object:
    """Return an output as logged: a class as text, a number as a float."""
    if _missing(value):
        return None
    if description.is_classification and column == description.prediction_column:
        return category_key(value)
    return float(value)


def _label(description: ModelDescription, value: object) -> Any:
    return category_key(value) if description.is_classification else float(value)


def logged_documents(
    description: ModelDescription,
    rows: pd.DataFrame,
    start: datetime,
    end: datetime,
    model_version: str = "reference",
    label_share: float = 1.0,
    seed: int = 0,
    id_prefix: str = "r",
    label_delay: Mapping[str, float] | None = None,
    model_name: str | None = None,
) -> list[dict]:
    """Return one logged document per row, timestamps spread over [start, end), a `label_share` of them labelled.

    `rows` hold the described features, the outputs (prediction and probability columns, as in a
    reference.parquet) and, for the labelled ones, the target. A label arrives a minute after its
    prediction (`label_delay`: seconds by request id, e.g. how long the outcome took). `model_name` overrides
    the description's name (several copies of one model).
    """
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.uniform(0, (end - start).total_seconds(), size=len(rows)))
    labelled = rng.random(len(rows)) < label_share
    target = description.target_column
    docs = []
    for i, row in enumerate(rows.to_dict(orient="records")):
        stamp = start + timedelta(seconds=float(offsets[i]))
        values = {f.name: _value(f, row.get(f.name)) for f in description.features}
        outputs = {c: _output(description, c, row.get(c)) for c in description.output_columns}
        request_id = f"{id_prefix}{i}"
        doc = prediction_document(request_id, stamp, model_name or description.name, model_version, values, outputs)
        if labelled[i] and not _missing(row.get(target)):
            delay = (label_delay or {}).get(request_id, 60.0)
            doc.update(label_fields(_label(description, row[target]), stamp + timedelta(seconds=delay)))
        docs.append(doc)
    return docs


def prediction_documents(
    rides: pd.DataFrame,
    model: Predictor,
    start: datetime,
    end: datetime,
    model_name: str | None = None,
    label_share: float = 1.0,
    seed: int = 0,
    id_prefix: str = "r",
    *,
    description: ModelDescription,
) -> list[dict]:
    """Return the documents of a regressor's predictions on `rides` (see `logged_documents`).

    When the target's unit is minutes, a label arrives that many minutes after its prediction (an
    outcome known once it is over), else a minute after.
    """
    rows = rides.assign(**{description.prediction_column: model.predict_frame(rides)})
    delays = None
    target = description.target_column
    if description.target.unit == "minutes" and target in rows.columns:
        delays = {f"{id_prefix}{i}": 60.0 * float(v) for i, v in enumerate(rows[target]) if not _missing(v)}
    return logged_documents(
        description, rows, start, end, model.version, label_share, seed, id_prefix, delays, model_name
    )


def insert_documents(uri: str, database: str, docs: list[dict], batch: int = 10_000) -> int:
    """Insert logged documents into `predictions` (with the service's indexes); return how many."""
    with MongoClient(uri) as client:
        collection = predictions_collection(client, database)
        ensure_indexes(collection)
        for i in range(0, len(docs), batch):
            collection.insert_many(docs[i : i + batch], ordered=False)
    return len(docs)
