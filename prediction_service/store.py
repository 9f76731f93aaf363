"""MongoDB access for predictions: idempotent inserts and first-label-wins ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pymongo import MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from monitoring_core.documents import predictions_collection
from prediction_service.settings import Settings

DUPLICATE_KEY = 11000


def connect(settings: Settings, listeners: list | None = None) -> MongoClient:
    """Return a client that fails fast (the service must never wait long on MongoDB)."""
    timeout_ms = max(1, int(settings.mongo_timeout_seconds * 1000))
    return MongoClient(
        settings.mongodb_uri,
        event_listeners=listeners or [],
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms, 2000),
        connect=False,  # no threads until first use: clients are made per worker, after fork
        tz_aware=True,
    )


def predictions(client: MongoClient, settings: Settings) -> Collection:
    """Return the `predictions` collection."""
    return predictions_collection(client, settings.mongodb_database)


def distinct_by_request_id(docs: list[dict]) -> list[dict]:
    """Return `docs` keeping the first of each request_id: a batch must not rely on the index alone."""
    seen: set[str] = set()
    kept = []
    for doc in docs:
        if doc.get("request_id") not in seen:
            seen.add(doc.get("request_id"))
            kept.append(doc)
    return kept


def insert_documents(collection: Collection, docs: list[dict]) -> int:
    """Insert `docs`, skipping ones already stored (same request_id); return how many were new."""
    if not docs:
        return 0
    try:
        return len(collection.insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as exc:
        if any(err.get("code") != DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
            raise
        return int(exc.details.get("nInserted", 0))


@dataclass
class LabelOutcome:
    """Which labels landed on a document, which were duplicates, which had no document."""

    accepted: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def apply_labels(collection: Collection, labels: list[dict]) -> LabelOutcome:
    """Set `target` and `target_timestamp` on each label's document unless it has a target already.

    `labels` are `{"request_id", "target", "target_timestamp"}` with distinct ids. The
    documents are replaced whole (read, add the label, replace where no target is set yet)
    rather than updated with `$set`: nx-27017, the wire server the tests run, stores a
    datetime given to `$set` as a string, while a replacement keeps it a BSON datetime on
    both it and MongoDB. The `target` guard in the filter keeps the first label on a race.
    """
    outcome = LabelOutcome()
    if not labels:
        return outcome
    ids = [lab["request_id"] for lab in labels]
    stored = {doc["request_id"]: doc for doc in collection.find({"request_id": {"$in": ids}})}
    ops, fresh = [], []
    for lab in labels:
        doc = stored.get(lab["request_id"])
        if doc is None:
            outcome.unknown.append(lab["request_id"])
        elif "target" in doc:
            outcome.duplicate.append(lab["request_id"])
        else:
            replacement = {k: v for k, v in doc.items() if k != "_id"}
            replacement.update(target=lab["target"], target_timestamp=lab["target_timestamp"])
            ops.append(ReplaceOne({"_id": doc["_id"], "target": {"$exists": False}}, replacement))
            fresh.append(lab["request_id"])
    if ops:
        result = collection.bulk_write(ops, ordered=False)
        if result.modified_count < len(ops):
            # Another writer labelled some of them in between: those are duplicates now.
            lost = _labelled_by_others(collection, labels, fresh)
            outcome.duplicate.extend(lost)
            fresh = [i for i in fresh if i not in set(lost)]
    outcome.accepted.extend(fresh)
    return outcome


def _labelled_by_others(collection: Collection, labels: list[dict], ids: list[str]) -> list[str]:
    ours = {lab["request_id"]: lab for lab in labels}
    lost = []
    for doc in collection.find({"request_id": {"$in": ids}}, {"_id": 0, "request_id": 1, "target_timestamp": 1}):
        stamp = doc.get("target_timestamp")
        given = ours[doc["request_id"]]["target_timestamp"]
        if not isinstance(stamp, datetime) or stamp.replace(tzinfo=None) != given.replace(tzinfo=None):
            lost.append(doc["request_id"])
    return lost
