"""Ground truth: validate labels, set them on the logged prediction (first label wins), pass them on."""

from __future__ import annotations

import time

from flask import Request
from pymongo.collection import Collection

from monitoring_core.records import Label
from prediction_service import metrics, store
from prediction_service.inputs import InputError, as_items, read_json, validate_items
from prediction_service.monitoring import Monitoring, utc_now_ms


def parse_labels(request: Request, max_rows: int) -> list[dict]:
    """Return the labels of a /feedback body, in order, stamped with their arrival time."""
    items, is_batch = as_items(read_json(request), max_rows, "labels")
    try:
        models = validate_items(items, is_batch, Label.model_validate, "feedback")
    except InputError as exc:
        metrics.FEEDBACK.labels("invalid").inc(len(items))
        raise exc
    arrived = utc_now_ms()
    return [{"request_id": m.request_id, "target": float(m.duration), "target_timestamp": arrived} for m in models]


def record_feedback(
    labels: list[dict], collection: Collection | None, monitoring: Monitoring, wait_seconds: float
) -> tuple[int, dict]:
    """Apply labels to MongoDB (or queue them when it is away); return the HTTP status and the summary."""
    distinct: dict[str, dict] = {}
    repeated: list[str] = []
    for lab in labels:
        if lab["request_id"] in distinct:
            repeated.append(lab["request_id"])
        else:
            distinct[lab["request_id"]] = lab
    outcome = store.LabelOutcome(duplicate=list(repeated))
    queued: list[dict] = []
    if collection is None:  # logging switched off: nothing to join with here, pass them on
        outcome.accepted = list(distinct)
    else:
        try:
            found = _apply_with_wait(collection, list(distinct.values()), wait_seconds)
            outcome.accepted, outcome.unknown = found.accepted, found.unknown
            outcome.duplicate += found.duplicate
        except Exception:  # noqa: BLE001 - not only driver errors (pymongo's login raised KeyError): never a 500
            # MongoDB is away: the background writer applies (or spools) them later; nothing is lost.
            queued = list(distinct.values())
    metrics.FEEDBACK.labels("accepted").inc(len(outcome.accepted) + len(queued))
    metrics.FEEDBACK.labels("unknown").inc(len(outcome.unknown))
    metrics.FEEDBACK.labels("duplicate").inc(len(outcome.duplicate))
    if queued:
        monitoring.queue_labels(queued)
    monitoring.forward_labels([distinct[i] for i in outcome.accepted] + queued)
    summary = {
        "accepted": len(outcome.accepted),
        "queued": len(queued),
        "unknown": outcome.unknown,
        "duplicate": outcome.duplicate,
    }
    return (202 if queued else 200), summary


def _apply_with_wait(collection: Collection, labels: list[dict], wait_seconds: float) -> store.LabelOutcome:
    # A label can overtake its prediction, which may still be queued in a worker: retry unknown ids briefly.
    outcome = store.apply_labels(collection, labels)
    deadline = time.monotonic() + wait_seconds
    while outcome.unknown and time.monotonic() < deadline:
        time.sleep(0.1)
        retry = [lab for lab in labels if lab["request_id"] in set(outcome.unknown)]
        again = store.apply_labels(collection, retry)
        outcome = store.LabelOutcome(
            accepted=outcome.accepted + again.accepted,
            duplicate=outcome.duplicate + again.duplicate,
            unknown=again.unknown,
        )
    return outcome
