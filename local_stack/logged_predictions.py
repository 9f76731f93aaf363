"""Prediction documents as the prediction service logs them, for seeding MongoDB in tests, benchmarks and demos.

The format is the contract's (CONTRACT.md "MongoDB"): one flat document per prediction with
`request_id`, `timestamp` (BSON datetime, UTC), `model_name`, `model_version`, every schema
field under its name, `prediction`, and `target`/`target_timestamp` once ground truth arrived.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from pymongo import MongoClient

from monitoring_core.documents import ensure_indexes, label_fields, prediction_document, predictions_collection
from ride_duration.model import RideDurationModel
from ride_duration.schema import FIELDS, TARGET, FieldSpec, Kind


def _value(spec: FieldSpec, value: object) -> object:
    """Return a ride value as the service stores it: by the field's type, None when missing."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    if spec.kind is Kind.DATETIME:
        return pd.Timestamp(value).isoformat()  # clients send ISO strings; the service keeps them as sent
    return int(value) if spec.dtype is int else float(value)


def prediction_documents(
    rides: pd.DataFrame,
    model: RideDurationModel,
    start: datetime,
    end: datetime,
    model_name: str = "ride_duration",
    label_share: float = 1.0,
    seed: int = 0,
    id_prefix: str = "r",
) -> list[dict]:
    """Return one logged document per ride, timestamps spread over [start, end), a `label_share` of them labelled."""
    rng = np.random.default_rng(seed)
    predictions = model.predict_frame(rides)
    offsets = np.sort(rng.uniform(0, (end - start).total_seconds(), size=len(rides)))
    labelled = rng.random(len(rides)) < label_share
    docs = []
    for i, ride in enumerate(rides.to_dict(orient="records")):
        stamp = start + timedelta(seconds=float(offsets[i]))
        values = {f.name: _value(f, ride.get(f.name)) for f in FIELDS}
        doc = prediction_document(f"{id_prefix}{i}", stamp, model_name, model.version, values, float(predictions[i]))
        if labelled[i] and TARGET in ride:
            doc.update(label_fields(float(ride[TARGET]), stamp + timedelta(minutes=float(ride[TARGET]))))
        docs.append(doc)
    return docs


def insert_documents(uri: str, database: str, docs: list[dict], batch: int = 10_000) -> int:
    """Insert logged documents into `predictions` (with the service's indexes); return how many."""
    with MongoClient(uri) as client:
        collection = predictions_collection(client, database)
        ensure_indexes(collection)
        for i in range(0, len(docs), batch):
            collection.insert_many(docs[i : i + batch], ordered=False)
    return len(docs)
