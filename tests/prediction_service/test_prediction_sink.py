"""The background MongoDB writer in-process: spooling when MongoDB is away, counted drops, late labels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pymongo import MongoClient

from local_stack.processes import free_port, wait_until
from monitoring_core.documents import predictions_collection
from prediction_service.mongo_sink import MongoSink, label_record
from prediction_service.settings import Settings
from prediction_service.spool import Spool


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("prediction_records_dropped_total", {"queue": "mongo", "reason": reason}) or 0.0


def doc(request_id: str) -> dict:
    return {"op": "insert", "doc": {"request_id": request_id, "timestamp": datetime.now(UTC), "prediction": 9.5}}


def test_unreachable_mongodb_spools_batches_and_counts_what_a_full_spool_refuses(tmp_path: Path) -> None:
    settings = Settings(
        mongodb_uri=f"mongodb://127.0.0.1:{free_port()}",
        mongo_timeout_seconds=0.2,
        mongo_retry_seconds=60,
        flush_interval_seconds=0.05,
        spool_capacity_records=3,
    )
    spool = Spool(tmp_path, settings.spool_capacity_records)
    sink = MongoSink(settings, spool)
    before = dropped("spool_full")
    sink.submit([doc("a"), doc("b")])
    wait_until(lambda: spool.size() == 2 and sink.idle(), timeout=10, what="first batch spooled")
    sink.submit([doc("c"), doc("d")])
    wait_until(lambda: dropped("spool_full") == before + 2 and sink.idle(), timeout=10, what="drop counted")
    assert spool.size() == 2 and not sink.healthy
    sink.close()


@pytest.mark.integration
def test_a_label_queued_before_its_prediction_is_applied_once_the_prediction_lands(mongo, tmp_path: Path) -> None:
    _, uri = mongo
    settings = Settings(mongodb_uri=uri, flush_interval_seconds=0.05, mongo_retry_seconds=0.1)
    sink = MongoSink(settings, Spool(tmp_path, 100))
    stamp = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    sink.submit([label_record("late", 12.5, stamp)])  # e.g. /feedback while MongoDB was down
    collection = predictions_collection(MongoClient(uri, tz_aware=True), "prediction_service")
    wait_until(sink.idle, timeout=10, what="label tried against a missing document")
    assert collection.count_documents({"request_id": "late"}) == 0
    sink.submit([doc("late")])
    labelled = wait_until(
        lambda: collection.find_one({"request_id": "late", "target": {"$exists": True}}),
        timeout=15,
        what="label applied",
    )
    assert labelled["target"] == 12.5 and labelled["target_timestamp"] == stamp
    sink.submit([label_record("late", 99.0, datetime.now(UTC))])  # a second label loses
    wait_until(sink.idle, timeout=10, what="second label handled")
    assert collection.find_one({"request_id": "late"})["target"] == 12.5
    sink.close()
