"""Poison records on the real service (gunicorn, 2 workers) and nx-27017 over TCP: quarantined, never a stall.

The issue: a document the server refuses (NaN in an extra field: nx-27017 answers code 8) was taken for
"MongoDB down", spooled, and its segment retried for ever while everything newer waited; a `{}` line in
a write-ahead log did the same.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import requests
from bson import json_util
from prediction_support import RIDE, metric_value, service_env

from local_stack.components import start_mongo, start_service
from local_stack.processes import wait_until
from local_stack.recorder import Recorder
from prediction_service.spool import Spool

pytestmark = pytest.mark.integration


def count(uri: str, prefix: str) -> int:
    from pymongo import MongoClient

    from monitoring_core.documents import predictions_collection

    collection = predictions_collection(MongoClient(uri, serverSelectionTimeoutMS=3000), "prediction_service")
    return collection.count_documents({"request_id": {"$regex": f"^{prefix}"}})


def send(url: str, prefix: str, start: int, n: int) -> None:
    session = requests.Session()
    for first in range(start, start + n, 50):
        rides = [{**RIDE, "request_id": f"{prefix}{i}"} for i in range(first, min(first + 50, start + n))]
        response = session.post(f"{url}/predict", json=rides, timeout=10)
        assert response.status_code == 200, response.text


def test_a_poison_record_among_1000_is_quarantined_across_a_restart_and_nothing_stalls(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    mongo, uri = start_mongo(tmp_path / "mongo", data_dir=tmp_path / "mongo-data")
    recorder = Recorder().start()
    env = service_env(artifacts_dir, tmp_path, uri, recorder)
    env |= {"PREDICTION_MONGO_RETRY_SECONDS": "0.5", "PREDICTION_FORWARD_TO_METRICS": "false"}
    spool_dir = Path(env["PREDICTION_SPOOL_DIR"])
    proc, url = start_service("prediction_service", tmp_path / "services", env)
    port = int(uri.rsplit(":", 1)[1])
    try:
        mongo.stop()
        send(url, "good-", 0, 500)  # spooled: MongoDB is down
        # The poison as the OLDEST segment (replayed first), and a `{}` line in a dead worker's log.
        poison = {"op": "insert", "doc": {"request_id": "poison-1", "prediction": 9.5, "x": float("nan")}}
        Spool(spool_dir, 10).write([poison])
        (segment,) = [p for p in spool_dir.iterdir() if p.name.endswith("-1.jsonl") and p.name.startswith("seg-")]
        segment.rename(spool_dir / "seg-1-1-1.jsonl")
        host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:64]
        good = {"op": "insert", "doc": {"request_id": "good-wal", "prediction": 9.5}}
        (spool_dir / "wal" / f"wal-{host}-999999999-1.log").write_text(
            "{}\n" + json_util.dumps(good) + "\n", encoding="utf-8"
        )
        proc.stop()  # a graceful restart: the queue is spooled
        proc, url = start_service("prediction_service", tmp_path / "services", env)
        mongo, _ = start_mongo(tmp_path / "mongo", port=port, data_dir=tmp_path / "mongo-data")
        send(url, "good-", 500, 499)  # 999 sent + good-wal = 1,000 good records
        wait_until(lambda: count(uri, "good-") == 1000, 60, "1,000 good records stored", 0.3)
        metrics = requests.get(f"{url}/metrics", timeout=5).text
        assert metric_value(metrics, "prediction_records_quarantined_total", reason="refused") == 1
        assert metric_value(metrics, "prediction_records_quarantined_total", reason="malformed") == 1
        wait_until(lambda: requests.get(f"{url}/health", timeout=5).json()["queues"]["spool_records"] == 0, 30, "")
        assert count(uri, "poison") == 0
        lines = [json_util.loads(line) for p in (spool_dir / "dead-letter").glob("*.jsonl") for line in p.open()]
        # Each once: the `{}` is in a segment the first service released while MongoDB was down; it is
        # quarantined when its segment is done with, not at each attempt (it was, by both services).
        assert sorted(entry["reason"] for entry in lines) == ["malformed", "refused"], lines
        # Quarantined, not retried: new records flow at once, and no segment waits.
        send(url, "later-", 0, 10)
        wait_until(lambda: count(uri, "later-") == 10, 30, "records after the quarantine stored", 0.2)
        assert not [p for p in spool_dir.iterdir() if p.name.startswith("seg-")]
    finally:
        proc.stop()
        mongo.stop()
        recorder.stop()


def test_nan_and_infinity_in_an_extra_field_are_served_and_stored_as_their_json_text(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    mongo, uri = start_mongo(tmp_path / "mongo")
    recorder = Recorder().start()
    env = service_env(artifacts_dir, tmp_path, uri, recorder)
    env["PREDICTION_FORWARD_TO_METRICS"] = "false"
    proc, url = start_service("prediction_service", tmp_path / "services", env)
    try:
        body = json.dumps({**RIDE, "request_id": "nan-1", "a": float("nan"), "b": float("inf"), "c": [float("-inf")]})
        assert "NaN" in body
        response = requests.post(f"{url}/predict", data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 200, response.text
        send(url, "after-nan-", 0, 5)
        wait_until(lambda: count(uri, "after-nan-") == 5 and count(uri, "nan-1") == 1, 30, "stored", 0.2)
        from pymongo import MongoClient

        from monitoring_core.documents import predictions_collection

        doc = predictions_collection(MongoClient(uri), "prediction_service").find_one({"request_id": "nan-1"})
        assert doc["extra_fields"] == {"a": "NaN", "b": "Infinity", "c": "[-Infinity]"}
        assert metric_value(requests.get(f"{url}/metrics", timeout=5).text, "prediction_records_quarantined_total") == 0
        assert os.path.isdir(env["PREDICTION_SPOOL_DIR"])
    finally:
        proc.stop()
        mongo.stop()
        recorder.stop()
