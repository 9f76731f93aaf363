"""The background MongoDB writer in-process: spooling when MongoDB is away, counted drops, late and racing labels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pymongo import MongoClient

from local_stack.processes import free_port, wait_until
from monitoring_core.documents import label_time, predictions_collection
from prediction_service.labels import label_record
from prediction_service.mongo_sink import MongoSink
from prediction_service.settings import Settings
from prediction_service.spool import Spool


def dropped(reason: str, queue: str = "mongo") -> float:
    return REGISTRY.get_sample_value("prediction_records_dropped_total", {"queue": queue, "reason": reason}) or 0.0


def fed(result: str) -> float:
    return REGISTRY.get_sample_value("prediction_feedback_total", {"result": result}) or 0.0


def doc(request_id: str) -> dict:
    return {"op": "insert", "doc": {"request_id": request_id, "timestamp": datetime.now(UTC), "prediction": 9.5}}


def unreachable(**overrides: object) -> Settings:
    """Settings of a writer whose MongoDB never answers (a free port): every write fails fast."""
    base = {
        "mongodb_uri": f"mongodb://127.0.0.1:{free_port()}",
        "mongo_timeout_seconds": 0.2,
        "mongo_retry_seconds": 60,
        "flush_interval_seconds": 0.05,
    }
    return Settings(**(base | overrides))


def test_unreachable_mongodb_spools_batches_and_counts_what_a_full_spool_refuses(tmp_path: Path) -> None:
    settings = unreachable(
        mongo_timeout_seconds=0.2, mongo_retry_seconds=60, flush_interval_seconds=0.05, spool_capacity_records=3
    )
    spool = Spool(tmp_path, settings.spool_capacity_records)
    sink = MongoSink(settings, spool)
    before = dropped("spool_full")
    sink.submit([doc("a"), doc("b")])
    wait_until(lambda: spool.size() == 2 and sink.idle(), timeout=10, what="first batch spooled")
    sink.submit([doc("c"), doc("d")])
    # What still fits (c) is spooled; only what does not (d) is dropped and counted.
    wait_until(lambda: dropped("spool_full") == before + 1 and sink.idle(), timeout=10, what="drop counted")
    assert spool.size() == 3 and not sink.healthy
    sink.close()


@pytest.mark.integration
def test_a_label_queued_before_its_prediction_is_applied_once_the_prediction_lands(mongo, tmp_path: Path) -> None:
    _, uri = mongo
    settings = Settings(mongodb_uri=uri, flush_interval_seconds=0.05, mongo_retry_seconds=0.1)
    won: list[dict] = []
    sink = MongoSink(settings, Spool(tmp_path, 100), on_label_accepted=won.extend)
    now = datetime.now(UTC)
    stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)  # BSON keeps milliseconds
    sink.submit_labels([label_record("late", 12.5, stamp)])  # it overtook its prediction
    collection = predictions_collection(MongoClient(uri, tz_aware=True), "prediction_service")
    wait_until(lambda: sink.idle() and len(sink.pending_labels) == 1, timeout=10, what="label waiting for its document")
    assert collection.count_documents({"request_id": "late"}) == 0
    sink.submit([doc("late")])
    labelled = wait_until(
        lambda: collection.find_one({"request_id": "late", "target": {"$exists": True}}),
        timeout=15,
        what="label applied",
    )
    assert labelled["target"] == 12.5 and label_time(labelled["target_timestamp"]) == stamp
    # The writer forwards a winner once MongoDB acknowledged its update, which a reader may see a moment earlier.
    wait_until(lambda: won, timeout=10, what="winner forwarded")
    assert [r["request_id"] for r in won] == ["late"] and len(sink.pending_labels) == 0
    duplicates = fed("duplicate")
    sink.submit_labels([label_record("late", 99.0, datetime.now(UTC))])  # a second label loses
    wait_until(lambda: fed("duplicate") == duplicates + 1, timeout=10, what="second label decided")
    assert collection.find_one({"request_id": "late"})["target"] == 12.5
    assert len(won) == 1
    sink.close()


@pytest.mark.integration
def test_labels_racing_for_one_id_in_two_writers_have_one_winner(mongo, tmp_path: Path) -> None:
    # Two workers' writers, as under gunicorn: each id gets one label from each, at the same moment.
    _, uri = mongo
    settings = Settings(mongodb_uri=uri, flush_interval_seconds=0.05)
    won: list[dict] = []
    sinks = [MongoSink(settings, Spool(tmp_path / str(i), 10_000), on_label_accepted=won.extend) for i in range(2)]
    ids = [f"race-{i}" for i in range(50)]
    sinks[0].submit([doc(i) for i in ids])
    collection = predictions_collection(MongoClient(uri, tz_aware=True), "prediction_service")
    wait_until(lambda: collection.count_documents({"request_id": {"$regex": "^race-"}}) == 50, 15, "documents")
    accepted, superseded = fed("accepted"), fed("superseded")
    now = datetime.now(UTC)
    for k, sink in enumerate(sinks):  # writer 0's labels are accepted first: they win, whichever is written first
        sink.submit_labels([label_record(i, 10.0 + k, now) for i in ids])

    # A label of writer 1 written first is displaced by writer 0's: both count `accepted`, the loser `superseded`.
    def decided() -> bool:
        winners = fed("accepted") - accepted - (fed("superseded") - superseded)
        return all(s.idle() for s in sinks) and winners == 50

    wait_until(decided, 20, "labels decided")
    stored = {d["request_id"]: d["target"] for d in collection.find({"request_id": {"$in": ids}})}
    assert stored == dict.fromkeys(ids, 10.0)
    # Every id's winner is forwarded; a displaced label was forwarded too (the metrics service keeps the
    # earlier-accepted of the two by its order), never a label that lost outright.
    assert {r["request_id"] for r in won if r["target"] == 10.0} == set(ids)
    displaced = [r for r in won if r["target"] == 11.0]
    assert len(won) == 50 + len(displaced) and len(displaced) == fed("superseded") - superseded
    for sink in sinks:
        sink.close()


@pytest.mark.integration
def test_pending_labels_are_bounded_and_given_up_after_the_horizon(mongo, tmp_path: Path) -> None:
    _, uri = mongo
    settings = Settings(mongodb_uri=uri, flush_interval_seconds=0.05, max_pending_labels=5, label_retry_seconds=0.5)
    sink = MongoSink(settings, Spool(tmp_path, 100))
    full, unknown = dropped("pending_full", "feedback"), fed("unknown")
    sink.submit_labels([label_record(f"nobody-{i}", 3.0, datetime.now(UTC)) for i in range(8)])
    wait_until(lambda: dropped("pending_full", "feedback") - full == 3, timeout=10, what="oldest dropped")
    wait_until(lambda: fed("unknown") - unknown == 5 and len(sink.pending_labels) == 0, timeout=15, what="given up")
    sink.close()


@pytest.mark.integration
def test_labels_spooled_at_shutdown_keep_their_retry_horizon(mongo, tmp_path: Path) -> None:
    _, uri = mongo
    settings = Settings(mongodb_uri=uri, flush_interval_seconds=0.05)
    spool = Spool(tmp_path, 100)
    sink = MongoSink(settings, spool)
    arrived = datetime.now(UTC).replace(microsecond=0)
    sink.submit_labels([label_record("waiting", 3.0, arrived)])
    wait_until(lambda: len(sink.pending_labels) == 1, timeout=10, what="label pending")
    sink.close()
    (record,), _ = spool.read(spool.claim())
    assert record["request_id"] == "waiting" and record["since"] == arrived.timestamp()
    assert 0 < record["waited"] < 1  # its time parked so far: the horizon goes on from there after a restart
    assert record["target_timestamp"] == arrived


def quarantined(reason: str) -> float:
    return REGISTRY.get_sample_value("prediction_records_quarantined_total", {"reason": reason}) or 0.0


@pytest.mark.integration
def test_a_document_mongodb_refuses_is_quarantined_and_the_rest_written_without_a_stall(mongo, tmp_path: Path) -> None:
    settings = Settings(mongodb_uri=mongo[1], flush_interval_seconds=0.05, spool_dir=tmp_path)
    spool = Spool(tmp_path, 1000)
    sink = MongoSink(settings, spool)
    before = quarantined("refused")
    good = [doc(f"good-{i}") for i in range(1000)]
    poison = {"op": "insert", "doc": {"request_id": "poison", "prediction": 9.5, "extra_fields": {"x": float("nan")}}}
    sink.submit(good[:500] + [poison] + good[500:])
    sink.submit([doc("after")])
    collection = predictions_collection(MongoClient(mongo[1]), settings.mongodb_database)
    wait_until(lambda: sink.idle() and collection.count_documents({}) == 1001, timeout=30, what="good ones written")
    assert quarantined("refused") == before + 1 and spool.size() == 0 and sink.healthy
    assert collection.count_documents({"request_id": "poison"}) == 0
    (line,) = (tmp_path / "dead-letter").glob("dead-*.jsonl")
    from bson import json_util

    entry = json_util.loads(line.read_text())
    assert entry["reason"] == "refused" and entry["record"]["doc"]["request_id"] == "poison"
    assert "code 8" in entry["error"]
    sink.close()


@pytest.mark.integration
def test_a_spooled_segment_with_a_poison_and_a_malformed_record_is_replayed_and_never_retried(
    mongo, tmp_path: Path
) -> None:
    settings = Settings(mongodb_uri=mongo[1], flush_interval_seconds=0.05, spool_dir=tmp_path)
    spool = Spool(tmp_path, 1000)
    poison = {"op": "insert", "doc": {"request_id": "poison", "extra_fields": {"x": float("inf")}}}
    assert spool.write([doc("s1"), {}, poison, doc("s2")])
    before = quarantined("malformed"), quarantined("refused")
    sink = MongoSink(settings, spool)
    sink.start()
    collection = predictions_collection(MongoClient(mongo[1]), settings.mongodb_database)
    wait_until(lambda: spool.size() == 0, timeout=30, what="segment replayed")
    assert sorted(d["request_id"] for d in collection.find()) == ["s1", "s2"]
    assert (quarantined("malformed"), quarantined("refused")) == (before[0] + 1, before[1] + 1)
    sink.close()


def test_a_malformed_record_in_a_segment_retried_while_mongodb_is_away_is_quarantined_once(tmp_path: Path) -> None:
    # The segment is released for a retry at every failed attempt; its `{}` must not be written to the
    # dead letter at each one (it was: once per attempt, and again by the next service after a restart).
    settings = unreachable(
        mongo_timeout_seconds=0.1, mongo_retry_seconds=0.05, flush_interval_seconds=0.02, spool_dir=tmp_path
    )
    spool = Spool(tmp_path, 100)
    assert spool.write([{}, doc("kept")])
    attempts = REGISTRY.get_sample_value("prediction_mongo_writes_total", {"result": "error"}) or 0.0
    before = quarantined("malformed")
    sink = MongoSink(settings, spool)
    sink.start()
    wait_until(
        lambda: (REGISTRY.get_sample_value("prediction_mongo_writes_total", {"result": "error"}) or 0) >= attempts + 3,
        timeout=20,
        what="three failed replays",
    )
    sink.close()
    assert quarantined("malformed") == before and spool.size() == 2
    assert not (tmp_path / "dead-letter").exists()


def test_refuse_keeps_a_batch_it_can_neither_write_nor_spool_and_refuses_new_records(tmp_path: Path) -> None:
    settings = unreachable(
        mongo_timeout_seconds=0.2,
        mongo_retry_seconds=60,
        flush_interval_seconds=0.05,
        spool_capacity_records=0,
        spool_dir=tmp_path,
        unlogged="refuse",
    )
    spool = Spool(tmp_path, 0)
    sink = MongoSink(settings, spool)
    lost = dropped("spool_full")
    assert sink.submit([doc("kept")])
    wait_until(lambda: sink.logging_problem() == "spool_full", timeout=10, what="batch held")
    assert not sink.submit([doc("refused")])
    assert dropped("spool_full") == lost  # held, not dropped
    assert REGISTRY.get_sample_value("prediction_unlogged_refused_total") >= 1
    sink.close()  # the held batch is offered to the spool once more; it stays in no log here


def test_serve_drops_and_counts_what_it_can_neither_write_nor_spool(tmp_path: Path) -> None:
    settings = unreachable(
        mongo_timeout_seconds=0.2,
        mongo_retry_seconds=60,
        flush_interval_seconds=0.05,
        spool_capacity_records=0,
        spool_dir=tmp_path,
    )
    sink = MongoSink(settings, Spool(tmp_path, 0))
    lost = dropped("spool_full")
    assert sink.submit([doc("a"), doc("b")])
    wait_until(lambda: dropped("spool_full") == lost + 2, timeout=10, what="drop counted")
    assert sink.logging_problem() == "spool_full"
    sink.close()
