"""Records the database refuses for what they are: told apart from an outage, and quarantined, never retried.

A write can fail because MongoDB is away (connection refused, timeout, a primary stepping down): the
batch is spooled and retried. Or because MongoDB refuses one document for what it is (a value it cannot
store, too large, a validation rule, a bad key), or a record is not a record at all (a `{}` line in a
write-ahead log): retrying that one for ever would stall everything queued behind it. Such a record is
appended to a dead-letter file (`$PREDICTION_SPOOL_DIR/dead-letter/`, JSON lines with the reason, the
error and the record) and counted in `prediction_records_quarantined_total{reason}`; the rest of its
batch goes on. The file is not replayed: fix the record and insert it by hand (docs/runbook.md).
"""

from __future__ import annotations

import logging
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import json_util
from bson.errors import InvalidDocument
from pymongo.errors import BulkWriteError, WriteError

from prediction_service import metrics

log = logging.getLogger(__name__)
_JSON = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)
FOLDER = "dead-letter"
LABEL_OP = "label"  # labels.OP, repeated here: labels imports the writer's helpers, not the other way round

# Reasons of prediction_records_quarantined_total (bounded).
REFUSED = "refused"  # the server refused the document (its error code is in the dead-letter line)
UNENCODABLE = "unencodable"  # the driver cannot encode it as BSON (a bad key, an integer over 64 bits)
TOO_LARGE = "too_large"  # over MongoDB's 16 MiB document limit
MALFORMED = "malformed"  # not a record the writer knows (no op, no document, no request id)
REASONS = (REFUSED, UNENCODABLE, TOO_LARGE, MALFORMED)

DUPLICATE_KEY = 11000
# Server error codes that mean "not now" even when reported for one document: retried like an outage.
# (Interrupted, HostUnreachable, HostNotFound, NetworkTimeout, ShutdownInProgress, PrimarySteppedDown,
# ExceededTimeLimit, SocketException, NotWritablePrimary, InterruptedAtShutdown, WriteConflict,
# MaxTimeMSExpired, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary, InterruptedDueToReplStateChange,
# LockTimeout, TransientTransactionError-style conflicts.)
TRANSIENT_CODES = frozenset({11602, 6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 112, 50, 13435, 13436, 24, 251, 46})


class Refusal(Exception):
    """A document refused for what it is; `reason` is one of REASONS."""

    def __init__(self, doc: Any, reason: str, error: str) -> None:
        super().__init__(error)
        self.doc, self.reason, self.error = doc, reason, error


def refusal_reason(exc: BaseException) -> str | None:
    """Return the quarantine reason when `exc` is about one document, or None when it is an outage.

    Per document: a write error with a non-transient server code (WriteError, or every non-duplicate
    entry of a BulkWriteError), and the driver's own refusals (InvalidDocument, DocumentTooLarge, an
    integer BSON cannot hold). Everything else (ConnectionFailure, AutoReconnect, NetworkTimeout,
    ServerSelectionTimeoutError, ExecutionTimeout, a write concern error, a failed login, any
    unexpected exception) means "MongoDB is not taking writes now": spool and retry.
    """
    if isinstance(exc, InvalidDocument):  # DocumentTooLarge is one
        return TOO_LARGE if "too large" in str(exc).lower() or type(exc).__name__ == "DocumentTooLarge" else UNENCODABLE
    if isinstance(exc, OverflowError):  # "MongoDB can only handle up to 8-byte ints"
        return UNENCODABLE
    if isinstance(exc, BulkWriteError):
        details = exc.details or {}
        errors = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if details.get("writeConcernErrors") or not errors:
            return None
        return None if any(e.get("code") in TRANSIENT_CODES for e in errors) else REFUSED
    if isinstance(exc, WriteError):
        return None if exc.code in TRANSIENT_CODES else REFUSED
    return None


def malformed(record: Any) -> str | None:
    """Return why `record` is not a record the writer can apply, or None when it is one."""
    if not isinstance(record, dict):
        return f"not an object but {type(record).__name__}"
    op = record.get("op")
    if op == "insert":
        doc = record.get("doc")
        if not isinstance(doc, dict) or not isinstance(doc.get("request_id"), str):
            return "an insert without a document carrying a string request_id"
        return None
    if op == LABEL_OP:
        target = record.get("target")
        if not isinstance(record.get("request_id"), str):
            return "a label without a string request_id"
        # A regressor's label is a finite number, a classifier's a class as text (label_model types both).
        is_class = isinstance(target, str) and target != ""
        is_number = isinstance(target, int | float) and not isinstance(target, bool) and math.isfinite(target)
        if not (is_class or is_number):
            return "a label without a finite number or a class as its target"
        if not isinstance(record.get("target_timestamp"), datetime):
            return "a label without a target_timestamp"
        return None
    return f"unknown op {op!r}"


class DeadLetter:
    """This worker's dead-letter file: one JSON line per quarantined record, appended in one write."""

    def __init__(self, spool_dir: Path) -> None:
        self.directory = Path(spool_dir) / FOLDER

    def quarantine(self, record: Any, reason: str, error: str) -> None:
        """Append `record` with its reason; count it; never raise (a full disk is logged and counted)."""
        metrics.QUARANTINED.labels(reason).inc()
        line = {"quarantined_at": datetime.now(UTC), "reason": reason, "error": error[:2000], "record": record}
        try:
            data = (json_util.dumps(line, json_options=_JSON) + "\n").encode()
        except Exception:  # noqa: BLE001 - not even JSON: keep its repr, the reason still stands
            data = (json_util.dumps({**line, "record": repr(record)[:100_000]}, json_options=_JSON) + "\n").encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / f"dead-{os.getpid()}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            metrics.DROPPED.labels("mongo", "dead_letter_error").inc()
            log.error("cannot write the dead-letter file", extra={"error": str(exc), "reason": reason})
        log.error(
            "record quarantined: the database refuses it",
            extra={"reason": reason, "error": error[:500], "at": time.time()},
        )
