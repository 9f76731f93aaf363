"""Refill a window from the latest prediction documents in MongoDB, so a restart does not blind the dashboards."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from evidently_service.evaluator import ModelMonitor
from evidently_service.rows import epoch, to_window_row
from monitoring_core.description import REQUEST_ID, TIMESTAMP, ModelDescription
from monitoring_core.documents import (
    MODEL_NAME,
    MODEL_VERSION,
    TARGET,
    TARGET_TIMESTAMP,
    label_time,
    predictions_collection,
)
from monitoring_core.records import forwarded_label_model, label_value, row_model

log = logging.getLogger(__name__)
REWARM_BATCH = 500  # documents per reply while re-warming


def _row_keys(description: ModelDescription) -> tuple[str, ...]:
    return (*description.feature_names, REQUEST_ID, TIMESTAMP, MODEL_VERSION, *description.output_columns)


def _as_row(document: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    # A document is the row the prediction service forwarded, plus Mongo's own keys and the label.
    row = {key: document.get(key) for key in keys if document.get(key) is not None}
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
        # socketTimeoutMS too: a server that completes the handshake and then hangs on the query (stopped,
        # overloaded) left the worker booting forever, and gunicorn killing and rebooting it into the same wait.
        with MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms, socketTimeoutMS=timeout_ms
        ) as client:
            cursor = (
                predictions_collection(client, database)
                .find({MODEL_NAME: name}, {"_id": 0})
                .sort(TIMESTAMP, DESCENDING)
                .limit(monitor.config.window_size)
                .batch_size(REWARM_BATCH)  # each round trip well within the socket timeout, even on a busy server
            )
            documents = list(cursor)
    except Exception as exc:  # noqa: BLE001 - not only driver errors: pymongo's login raised KeyError once
        log.warning(
            "window not re-warmed: MongoDB unreachable",
            extra={"model": name, "error": f"{type(exc).__name__}: {exc}"},
        )
        return 0
    documents.reverse()  # oldest first, so the window evicts in time order
    description = monitor.description
    model, label_model, keys = row_model(description), forwarded_label_model(description), _row_keys(description)
    rows, labels, skipped = [], [], 0
    for document in documents:
        try:
            rows.append(to_window_row(description, model.model_validate(_as_row(document, keys))))
        except ValidationError:
            skipped += 1
            continue
        # label_time: a BSON datetime from MongoDB, a string from nx-27017's `$set` (docs/prediction_service.md).
        target, at = document.get(TARGET), label_time(document.get(TARGET_TIMESTAMP))
        if target is None or at is None:
            continue
        try:
            label = label_model.model_validate({REQUEST_ID: document[REQUEST_ID], description.target_column: target})
        except ValidationError:
            continue
        labels.append((label.request_id, label_value(description, label), epoch(at)))
    monitor.window.append(rows)
    monitor.window.add_labels(labels)
    log.info("window re-warmed", extra={"model": name, "rows": len(rows), "labels": len(labels), "skipped": skipped})
    return len(rows)
