"""Write errors told apart by cause: an outage is spooled and retried, a refused document is quarantined."""

from __future__ import annotations

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteError,
)

from prediction_service.dead_letter import MALFORMED, REFUSED, TOO_LARGE, UNENCODABLE, malformed, refusal_reason


def bulk(*codes: int, concern: bool = False) -> BulkWriteError:
    errors = [{"index": i, "code": code, "errmsg": "x"} for i, code in enumerate(codes)]
    return BulkWriteError({"writeErrors": errors, "writeConcernErrors": [{"code": 64}] if concern else []})


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        # The server is away or not taking writes now: None (spool and retry).
        (ConnectionFailure("refused"), None),
        (AutoReconnect("reset"), None),
        (NetworkTimeout("timed out"), None),
        (ServerSelectionTimeoutError("no server"), None),
        (NotPrimaryError("stepped down"), None),
        (ExecutionTimeout("maxTimeMS", 50), None),
        (OperationFailure("auth failed", 18), None),
        (KeyError("payload"), None),  # pymongo's login against nx-27017
        (bulk(91), None),  # ShutdownInProgress reported for one document
        (bulk(11000, 91), None),
        (bulk(8, concern=True), None),  # a write concern error: not about the document
        (WriteError("primary stepped down", 189), None),
        # Refused for what the document is: quarantine.
        (bulk(8), REFUSED),  # nx-27017: "Invalid JSON document" (NaN)
        (bulk(11000, 121), REFUSED),  # DocumentValidationFailure beside a duplicate
        (bulk(10334), REFUSED),  # BSONObjectTooLarge, server side
        (WriteError("Document failed validation", 121), REFUSED),
        (InvalidDocument("key '$x' must not start with '$'"), UNENCODABLE),
        (OverflowError("MongoDB can only handle up to 8-byte ints"), UNENCODABLE),
        (DocumentTooLarge("BSON document too large (17000000 bytes)"), TOO_LARGE),
    ],
)
def test_each_error_class_is_an_outage_or_a_refused_document(exc: BaseException, reason: str | None) -> None:
    assert refusal_reason(exc) == reason


@pytest.mark.parametrize(
    "record",
    [
        {},
        [],
        "x",
        {"op": "insert"},
        {"op": "insert", "doc": {"no_id": 1}},
        {"op": "label", "request_id": "a"},
        {"op": "label", "request_id": "a", "target": float("nan")},
        {"op": "drop"},
    ],
)
def test_a_record_that_is_no_record_is_malformed(record: object) -> None:
    assert malformed(record)


def test_valid_records_are_not_malformed() -> None:
    from datetime import UTC, datetime

    from prediction_service.labels import label_record

    assert malformed({"op": "insert", "doc": {"request_id": "a"}}) is None
    assert malformed(label_record("a", 3.0, datetime.now(UTC))) is None
    assert malformed(label_record("a", "yes", datetime.now(UTC))) is None  # a classifier's label: a class as text
    assert malformed(label_record("a", "", datetime.now(UTC)))
    assert MALFORMED == "malformed"
