"""The logged prediction document in MongoDB: collection names, keys, indexes and the one builder.

The prediction service writes these documents, the batch flow and the metrics service's
re-warm read them, and the local stack and benchmarks seed them: all through this module
(docs/contract.md "MongoDB").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection

from monitoring_core.description import REQUEST_ID, TIMESTAMP
from monitoring_core.unknown_fields import EXTRA_FIELDS

PREDICTIONS = "predictions"  # one document per served prediction
REPORTS = "reports"  # one summary per batch-flow run

MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
# Ground truth, set on the prediction's document by the first label for it (prediction_service/labels.py):
# `target` in minutes, `target_timestamp` the label's arrival time (UTC).
TARGET = "target"
TARGET_TIMESTAMP = "target_timestamp"
# When MongoDB may delete the document: its timestamp + the model's retention (the description's
# `retention_days`). A TTL index is per collection, so the per-model retention is a per-document expiry
# time with `expireAfterSeconds=0`. The archive flow (prefect_flows/archive.py) keeps the history past it.
EXPIRE_AT = "expire_at"

# (keys, options) of every index on `predictions`. The unique request id makes every write idempotent:
# a replayed spool or a retried batch never stores a prediction twice.
INDEXES: tuple[tuple[list[tuple[str, int]], dict[str, Any]], ...] = (
    ([(REQUEST_ID, ASCENDING)], {"unique": True, "name": "request_id_unique"}),
    ([(TIMESTAMP, ASCENDING)], {"name": "timestamp"}),
    ([(EXPIRE_AT, ASCENDING)], {"expireAfterSeconds": 0, "name": "expire_at_ttl"}),
)


def predictions_collection(client: MongoClient, database: str) -> Collection:
    """Return the `predictions` collection of `database`."""
    return client[database][PREDICTIONS]


def ensure_indexes(collection: Collection) -> None:
    """Create the indexes of `predictions` (a no-op where they exist)."""
    for keys, options in INDEXES:
        collection.create_index(keys, **options)


def missing_indexes(collection: Collection) -> list[str]:
    """Return the names of the indexes of `predictions` that do not exist (all of them when the collection is gone)."""
    # Matched by keys, uniqueness and TTL, not by name: nx-27017 names the indexes it creates its own way.
    present = {_index_key(info["key"], info) for info in collection.index_information().values()}
    return [options["name"] for keys, options in INDEXES if _index_key(keys, options) not in present]


def _index_key(keys: Any, options: Mapping[str, Any]) -> tuple[Any, ...]:
    ttl = options.get("expireAfterSeconds")
    return tuple((k, int(d)) for k, d in keys), bool(options.get("unique")), None if ttl is None else int(ttl)


def prediction_document(
    request_id: str,
    timestamp: datetime,
    model_name: str,
    model_version: str,
    values: Mapping[str, Any],
    outputs: Mapping[str, Any],
    extra_fields: Mapping[str, Any] | None = None,
    retention: timedelta | None = None,
) -> dict[str, Any]:
    """Return the document logged for one served prediction: ids, time (UTC), model, features, prediction.

    `outputs` holds the prediction (and class probabilities) under the description's column names.
    `extra_fields` (the request's fields outside the model's, bounded by `monitoring_core.unknown_fields`)
    go under the one key `extra_fields`, present only when there are some. With a `retention` (the model's),
    `expire_at` says when MongoDB's TTL index may delete the document; without one it is kept until deleted.
    """
    document = {
        REQUEST_ID: request_id,
        TIMESTAMP: timestamp,
        MODEL_NAME: model_name,
        MODEL_VERSION: model_version,
        **values,
        **outputs,
    }
    if extra_fields:
        document[EXTRA_FIELDS] = dict(extra_fields)
    if retention is not None:
        document[EXPIRE_AT] = timestamp + retention
    return document


# When the service accepted the label (epoch nanoseconds, its host's clock): of competing labels for one id
# the first accepted wins, whichever reaches MongoDB first.
TARGET_ORDER = "target_order"


def label_fields(target: Any, target_timestamp: datetime, order: int | None = None) -> dict[str, Any]:
    """Return the keys a label sets on its prediction's document."""
    fields = {TARGET: target, TARGET_TIMESTAMP: target_timestamp}
    if order is not None:
        fields[TARGET_ORDER] = order
    return fields


def first_accepted(request_id: str, order: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the filters under which a label accepted at `order` may set the document's target, tried in turn.

    The document has no target yet, or has one accepted after `order` (a label without an order, written
    before orders existed, is never displaced). Two filters, not one `$or`: nx-27017 ignores the other
    keys beside a top-level `$or` (it updated another document), and each update stays atomic.
    """
    return unlabelled(request_id), {REQUEST_ID: request_id, TARGET_ORDER: {"$gt": order}}


def unlabelled(request_id: str) -> dict[str, Any]:
    """Return the filter matching the prediction's document only while it has no target (first label wins)."""
    return {REQUEST_ID: request_id, TARGET: {"$exists": False}}


def label_time(value: Any) -> datetime | None:
    """Return a stored `target_timestamp` as an aware UTC datetime (None when absent or unreadable).

    MongoDB stores the label's `$set` datetime as a BSON datetime; nx-27017, the stand-in the
    tests run, stores it as a string ("2026-01-02 03:04:05.678000", UTC). Readers accept both.
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
