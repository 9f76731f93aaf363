"""Ground truth, in one place: a /feedback body answered item by item, and labels applied off the request path.

The request thread only validates: each valid label becomes a record (`label_record`) handed to
the worker's MongoDB writer, and the answer says `queued`, `duplicate` (the id again in the same
call) or `invalid`. Each record carries the moment it was accepted (`order`, nanoseconds, taken
before the 202 is sent). The writer applies records with `apply_labels`: one read of the batch's
ids, then one conditional `update_one` per label whose document has no target yet or a target
accepted later than it, so the first label accepted for an id wins, whichever worker writes first;
the database decides atomically. Winners are counted `accepted` and forwarded to the metrics service
(whose window applies the same rule); a label displaced by an earlier-accepted one is counted
`superseded`. A label whose document does not exist yet (it overtook its
prediction, still queued or spooled) waits in the writer's bounded `PendingLabels` and is retried
with a growing delay until it has waited `PREDICTION_LABEL_RETRY_SECONDS` there, then counted `unknown`.
That wait is the sum of its retry delays (monotonic clock), carried in the record (`waited`) through the
spool and restarts: time in the spool or parked while MongoDB is down does not count (its prediction may be
spooled behind it), nor does a jump of the wall clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Request
from pydantic import ValidationError
from pymongo.collection import Collection

from monitoring_core.description import REQUEST_ID, ModelDescription
from monitoring_core.documents import TARGET, TARGET_ORDER, first_accepted, label_fields
from monitoring_core.records import DUPLICATE, INVALID, QUEUED, label_item, label_model, label_value
from monitoring_core.validation import error_details
from prediction_service import metrics
from prediction_service.inputs import InputError, as_items, read_json
from prediction_service.settings import Settings

log = logging.getLogger(__name__)

OP = "label"  # the `op` of a label record in the writer's queue and in the spool
_READ_CHUNK = 500  # ids per `$in` read
# A pending label is retried after flush_interval x 2^tries, at most this long apart: a label that overtook
# its prediction lands within a few flush intervals, one for an id that never comes costs little.
MAX_RETRY_DELAY_SECONDS = 30.0


def label_record(request_id: str, target: Any, arrived: datetime, order: int | None = None) -> dict[str, Any]:
    """Return the writer's record of one label: its id, observed target, arrival time (ms, UTC), order and retry state.

    The target is a number (regression) or a class's text (classification), as `label_model` typed it;
    it is stored under the document's `target` key whatever the target's name.
    """
    return {
        "op": OP,
        REQUEST_ID: request_id,
        "target": target,
        "target_timestamp": arrived,
        # Accepted at (epoch ns): of two labels for one id, the one accepted first wins.
        "order": time.time_ns() if order is None else order,
        "since": arrived.timestamp(),  # epoch seconds: which waiting labels are the oldest
        "waited": 0.0,  # seconds parked in a writer for its prediction (the retry horizon), kept through the spool
        "tries": 0,
    }


@dataclass
class FeedbackCall:
    """A /feedback body read item by item: the records to hand on and the answer's entries, in order."""

    records: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    details: list[dict[str, str]] = field(default_factory=list)

    def outcomes(self, outcome: str) -> int:
        """Return how many items have `outcome`."""
        return sum(item["outcome"] == outcome for item in self.items)

    def count(self) -> None:
        """Count the call's outcomes once its records were handed on."""
        for outcome in (QUEUED, DUPLICATE, INVALID):
            metrics.FEEDBACK.labels(outcome).inc(self.outcomes(outcome))
        # Invalid items count as a rejected body would (once per distinct reason), though the valid ones go on.
        for reason in {d.get("reason", "invalid_value") for d in self.details}:
            metrics.REJECTED_INPUTS.labels("/feedback", reason).inc()

    def answer(self) -> dict[str, Any]:
        """Return the 202 body: counts per outcome known now, and every item's outcome."""
        return {
            QUEUED: self.outcomes(QUEUED),
            DUPLICATE: self.outcomes(DUPLICATE),
            INVALID: self.outcomes(INVALID),
            "items": self.items,
        }


def read_feedback(request: Request, description: ModelDescription, max_rows: int, arrived: datetime) -> FeedbackCall:
    """Validate a /feedback body item by item; raise InputError when nothing in it can be recorded.

    A single label that is invalid, a list without one valid label, an empty or oversized list
    and an unreadable body are 4xx as a whole; otherwise every item gets its own outcome.
    """
    items, is_batch = as_items(read_json(request), max_rows, "labels")
    model = label_model(description)
    call = FeedbackCall()
    order = time.time_ns()  # before the answer: a label sent after this one's 202 has a larger order
    seen: set[str] = set()
    for index, item in enumerate(items):
        prefix = f"{index}." if is_batch else ""
        if not isinstance(item, dict):
            problems = [{"field": str(index), "message": "must be a JSON object", "reason": "not_an_object"}]
            call.items.append(label_item(index, None, INVALID, problems))
            call.details.extend(problems)
            continue
        try:
            label = model.model_validate(item)
        except ValidationError as exc:
            problems = error_details(exc, prefix)
            call.items.append(label_item(index, item.get(REQUEST_ID), INVALID, problems))
            call.details.extend(problems)
            continue
        if label.request_id in seen:  # the first label of an id in a call wins, as across calls
            call.items.append(label_item(index, label.request_id, DUPLICATE))
            continue
        seen.add(label.request_id)
        call.records.append(label_record(label.request_id, label_value(description, label), arrived, order))
        call.items.append(label_item(index, label.request_id, QUEUED))
    if not call.records:
        metrics.FEEDBACK.labels(INVALID).inc(len(items))
        noun = "label" if not is_batch else f"label among {len(items)}"
        raise InputError(400, f"no valid {noun}", call.details)
    return call


@dataclass
class Applied:
    """What the database decided for a batch of label records."""

    accepted: list[dict[str, Any]] = field(default_factory=list)  # won their document
    superseded: int = 0  # labels displaced by an earlier-accepted one that reached MongoDB later
    duplicate: list[dict[str, Any]] = field(default_factory=list)  # their document had a target already
    unknown: list[dict[str, Any]] = field(default_factory=list)  # no document with their id (yet)


def apply_labels(collection: Collection, records: list[dict[str, Any]], into: Applied | None = None) -> Applied:
    """Set each record's label on its document unless the document has one; return (fill `into`) who won.

    One read of the batch's ids sorts out unknown ids and labelled documents without a write (on
    nx-27017 an update that matches nothing scans the collection). Each remaining label is one
    `update_one` on `unlabelled(id)`: MongoDB applies it atomically, so of two labels racing for an id
    in different workers exactly one matches. A winner is marked `done`, so if a later failure spools
    its batch, the replay neither applies nor forwards it again.
    """
    applied = into if into is not None else Applied()
    todo = [r for r in records if not r.get("done")]
    ids = list(dict.fromkeys(r[REQUEST_ID] for r in todo))
    # Per id: None (no document), 0 (no target yet), the stored label's order, or -1 (a label without one).
    labelled: dict[str, int | None] = {}
    projection = {"_id": 0, REQUEST_ID: 1, TARGET: 1, TARGET_ORDER: 1}
    for start in range(0, len(ids), _READ_CHUNK):
        chunk = ids[start : start + _READ_CHUNK]
        for doc in collection.find({REQUEST_ID: {"$in": chunk}}, projection):
            labelled[doc[REQUEST_ID]] = 0 if TARGET not in doc else int(doc.get(TARGET_ORDER, -1))
    for record in todo:
        request_id = record[REQUEST_ID]
        state = labelled.get(request_id)
        if request_id not in labelled:
            applied.unknown.append(record)
            continue
        order = int(record.get("order") or 2**62)  # a record from before orders: after every ordered one
        if state == 0 or (state is not None and state > order):
            fields = label_fields(record["target"], record["target_timestamp"], order)
            labelled[request_id] = order
            # The first filter sets a missing target; the second displaces a label accepted after this one.
            for displaces, where in enumerate(first_accepted(request_id, order)):
                if collection.update_one(where, {"$set": fields}).modified_count == 1:
                    record["done"] = True
                    applied.accepted.append(record)
                    applied.superseded += displaces
                    break
            if record.get("done"):
                continue
        applied.duplicate.append(record)
    return applied


class PendingLabels:
    """One writer's labels decided so far: winners counted and forwarded, early ones kept for a retry.

    Bounded by `PREDICTION_MAX_PENDING_LABELS` per worker; when full, the labels waiting longest
    are dropped and counted (`prediction_records_dropped_total{queue="feedback",reason="pending_full"}`).
    """

    def __init__(self, settings: Settings, on_accepted: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.settings = settings
        self.capacity = settings.max_pending_labels
        self._on_accepted = on_accepted
        # (monotonic time due, monotonic time parked, record); writer thread only
        self._waiting: list[tuple[float, float, dict[str, Any]]] = []
        self._gauge = metrics.PENDING_LABELS
        self._gauge.set(0)
        metrics.PENDING_LABELS_CAPACITY.set(self.capacity)

    def __len__(self) -> int:
        return len(self._waiting)

    def settle(self, collection: Collection, records: list[dict[str, Any]]) -> None:
        """Apply a batch's labels; count and forward the winners, keep the unknown ones for a retry.

        On a database error the winners so far are still counted and forwarded (they are in
        MongoDB); the error propagates so the writer spools the batch, whose other labels are
        decided on replay.
        """
        applied = Applied()
        try:
            apply_labels(collection, records, applied)
        finally:
            self._accept(applied.accepted)
        metrics.FEEDBACK.labels(DUPLICATE).inc(len(applied.duplicate))
        metrics.FEEDBACK.labels("superseded").inc(applied.superseded)
        for record in applied.unknown:
            # Time parked while MongoDB answered: not since arrival (a label replayed from the spool after a long
            # outage, before its spooled prediction, would be given up at once), not by the wall clock (it jumps).
            if record.get("waited", 0.0) >= self.settings.label_retry_seconds:
                metrics.FEEDBACK.labels("unknown").inc()
            else:
                self._park(record)
        self._trim()

    def _accept(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        metrics.FEEDBACK.labels("accepted").inc(len(records))
        if self._on_accepted is not None:
            self._on_accepted(records)

    def _park(self, record: dict[str, Any]) -> None:
        tries = int(record.get("tries", 0))
        delay = min(MAX_RETRY_DELAY_SECONDS, max(self.settings.flush_interval_seconds, 0.05) * 2**tries)
        record["tries"] = tries + 1
        now = time.monotonic()
        self._waiting.append((now + delay, now, record))

    @staticmethod
    def _taken(entry: tuple[float, float, dict[str, Any]], now: float) -> dict[str, Any]:
        # Counted up to its retry time only: a writer kept from retrying (MongoDB down) adds nothing.
        due, parked_at, record = entry
        record["waited"] = record.get("waited", 0.0) + max(0.0, min(now, due) - parked_at)
        return record

    def _trim(self) -> None:
        excess = len(self._waiting) - self.capacity
        if excess > 0:
            self._waiting.sort(key=lambda entry: entry[2].get("since", 0.0))
            del self._waiting[:excess]
            metrics.DROPPED.labels("feedback", "pending_full").inc(excess)
            log.warning("pending labels full: dropped the oldest", extra={"dropped": excess})
        self._gauge.set(len(self._waiting))

    def due(self, limit: int) -> list[dict[str, Any]]:
        """Take at most `limit` waiting labels whose retry time has come, the earliest due first.

        The limit bounds the writer's retry work per cycle, so a flood of labels for ids that never
        come costs one read per cycle, not one per waiting label.
        """
        if not self._waiting:
            return []
        now = time.monotonic()
        ready = [entry for entry in self._waiting if entry[0] <= now]
        if not ready:
            return []
        if len(ready) > limit:
            ready.sort(key=lambda entry: entry[0])
            ready = ready[:limit]
        taken = {id(entry[2]) for entry in ready}
        self._waiting = [entry for entry in self._waiting if id(entry[2]) not in taken]
        self._gauge.set(len(self._waiting))
        return [self._taken(entry, now) for entry in ready]

    def drain(self) -> list[dict[str, Any]]:
        """Take every waiting label (at shutdown, to be spooled)."""
        now = time.monotonic()
        records = [self._taken(entry, now) for entry in self._waiting]
        self._waiting = []
        self._gauge.set(0)
        return records
