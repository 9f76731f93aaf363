"""Refill a window from the latest prediction documents in MongoDB, so a restart does not blind the dashboards."""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from evidently_service.evaluator import ModelMonitor
from evidently_service.rows import epoch, to_window_row
from monitoring_core.documents import (
    MODEL_NAME,
    MODEL_VERSION,
    TARGET,
    TARGET_TIMESTAMP,
    label_time,
    predictions_collection,
)
from monitoring_core.records import row_model
from ride_duration.schema import FIELD_NAMES, PREDICTION, REQUEST_ID, TIMESTAMP

log = logging.getLogger(__name__)
_ROW_KEYS = (*FIELD_NAMES, REQUEST_ID, TIMESTAMP, MODEL_VERSION, PREDICTION)


def _as_row(document: dict[str, Any]) -> dict[str, Any]:
    # A document is the row the prediction service forwarded, plus Mongo's own keys and the label.
    row = {key: document.get(key) for key in _ROW_KEYS if document.get(key) is not None}
    for key, value in row.items():
        if isinstance(value, datetime):
            row[key] = value.isoformat()
    return row


def rewarm(monitor: ModelMonitor, uri: str, database: str, timeout_ms: int = 3000) -> int:
    """Load the model's latest `window_size` predictions (with their labels) into its window; return the count.

    A database that cannot be reached, or fails in any other way, only costs the warm start:
    the service starts with an empty window and says so in the log.
    """
    from pymongo import DESCENDING, MongoClient

    name = monitor.config.name
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms) as client:
            cursor = (
                predictions_collection(client, database)
                .find({MODEL_NAME: name}, {"_id": 0})
                .sort(TIMESTAMP, DESCENDING)
                .limit(monitor.config.window_size)
            )
            documents = list(cursor)
    except Exception as exc:  # noqa: BLE001 - not only driver errors: pymongo's login raised KeyError once
        log.warning(
            "window not re-warmed: MongoDB unreachable",
            extra={"model": name, "error": f"{type(exc).__name__}: {exc}"},
        )
        return 0
    documents.reverse()  # oldest first, so the window evicts in time order
    model = row_model()
    rows, labels, skipped = [], [], 0
    for document in documents:
        try:
            rows.append(to_window_row(model.model_validate(_as_row(document))))
        except ValidationError:
            skipped += 1
            continue
        # label_time: a BSON datetime from MongoDB, a string from nx-27017's `$set` (docs/prediction_service.md).
        target, at = document.get(TARGET), label_time(document.get(TARGET_TIMESTAMP))
        if isinstance(target, int | float) and math.isfinite(target) and at is not None:
            labels.append((document[REQUEST_ID], float(target), epoch(at)))
    monitor.window.append(rows)
    monitor.window.add_labels(labels)
    log.info("window re-warmed", extra={"model": name, "rows": len(rows), "labels": len(labels), "skipped": skipped})
    return len(rows)
