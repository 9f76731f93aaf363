"""MongoDB access for predictions: a fail-fast client and idempotent inserts (labels: labels.py)."""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

from monitoring_core.documents import predictions_collection
from prediction_service.dead_letter import DUPLICATE_KEY, Refusal, refusal_reason
from prediction_service.settings import Settings


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


def insert_documents(collection: Collection, docs: list[dict]) -> tuple[int, list[Refusal]]:
    """Insert `docs`, skipping ones already stored (same request_id); return how many were new and the refused.

    A document MongoDB (or the driver) refuses for what it is comes back as a `Refusal`, and every
    other document is still inserted; an outage (or any error not about one document) is raised.
    """
    if not docs:
        return 0, []
    try:
        return len(collection.insert_many(docs, ordered=False).inserted_ids), []
    except BulkWriteError as exc:
        reason = refusal_reason(exc)
        errors = [e for e in exc.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if errors and reason is None:
            raise
        refused = [Refusal(docs[e["index"]], reason, f"code {e.get('code')}: {e.get('errmsg')}") for e in errors]
        return int(exc.details.get("nInserted", 0)), refused
    except Exception as exc:
        reason = refusal_reason(exc)
        if reason is None:
            raise
        if len(docs) == 1:
            return 0, [Refusal(docs[0], reason, f"{type(exc).__name__}: {exc}")]
    # The driver refused one document of several before sending (some may be in already): one at a time
    # finds it; the unique request_id index makes the ones already in a no-op.
    written, refused = 0, []
    for doc in docs:
        count, bad = insert_documents(collection, [doc])
        written, refused = written + count, refused + bad
    return written, refused
