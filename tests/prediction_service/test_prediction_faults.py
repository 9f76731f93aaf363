"""Fault tests: MongoDB or the metrics service goes away while traffic flows; serving never fails, nothing is lost."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import requests
from prediction_support import RIDE, Recorder, Stack, metric_value, service_env

from local_stack.components import start_mongo
from local_stack.processes import wait_until
from prediction_service.spool import Spool

pytestmark = pytest.mark.integration


class Traffic:
    """Sends /predict requests from a thread until stopped; keeps every answer's status and id."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.accepted: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)

    def sent_at_least(self, n: int) -> bool:
        return len(self.accepted) + len(self.failures) >= n

    def _run(self) -> None:
        session = requests.Session()
        n = 0
        while not self._stop.is_set():
            request_id = f"{self.prefix}-{n}"
            n += 1
            try:
                response = session.post(f"{self.url}/predict", json={**RIDE, "request_id": request_id}, timeout=10)
                if response.status_code == 200 and response.json()["request_id"] == request_id:
                    self.accepted.append(request_id)
                else:
                    self.failures.append(f"{request_id}: {response.status_code} {response.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(f"{request_id}: {exc}")


def test_mongodb_outage_loses_nothing_and_writes_nothing_twice(
    service_factory, artifacts_dir: Path, tmp_path: Path, recorder: Recorder
) -> None:
    data_dir = tmp_path / "mongo-data"
    mongo, uri = start_mongo(tmp_path / "mongo", data_dir=data_dir)
    port = int(uri.rsplit(":", 1)[1])
    env = service_env(artifacts_dir / "model.pkl", tmp_path, uri, recorder)
    env["PREDICTION_MONGO_RETRY_SECONDS"] = "0.5"
    proc, url = service_factory("prediction_service", env)
    stack = Stack(proc, url, mongo, uri, recorder, env)
    try:
        with Traffic(url, "outage") as traffic:
            wait_until(lambda: stack.predictions.count_documents({}) >= 20, timeout=20, what="first writes")
            mongo.stop()
            sent_at_stop = len(traffic.accepted)
            wait_until(lambda: stack.metric("prediction_spool_records") > 0, timeout=20, what="records spooled")
            wait_until(lambda: traffic.sent_at_least(sent_at_stop + 100), timeout=30, what="traffic during outage")
            assert requests.get(f"{url}/health", timeout=5).status_code == 200
            mongo, _ = start_mongo(tmp_path / "mongo", port=port, data_dir=data_dir)
            sent_at_restart = len(traffic.accepted)
            wait_until(lambda: traffic.sent_at_least(sent_at_restart + 50), timeout=30, what="traffic after restart")
        assert traffic.failures == []
        accepted = set(traffic.accepted)
        collection = stack.predictions
        wait_until(lambda: collection.count_documents({}) >= len(accepted), timeout=30, what="spool replayed")
        stored = [d["request_id"] for d in collection.find({}, {"_id": 0, "request_id": 1})]
        assert len(stored) == len(set(stored)), "a prediction was written twice"
        assert set(stored) == accepted
        wait_until(lambda: stack.metric("prediction_spool_records") == 0, timeout=10, what="spool drained")
        text = requests.get(f"{url}/metrics", timeout=5).text
        assert metric_value(text, "prediction_mongo_writes_total", result="error") > 0
        assert metric_value(text, "prediction_records_dropped_total") == 0
        assert metric_value(text, "prediction_http_requests_total", endpoint="/predict", status="200") == len(accepted)
    finally:
        mongo.stop()


def test_metrics_service_outage_fails_no_prediction_and_counts_the_loss(
    service_factory, stack_env, mongo, recorder: Recorder
) -> None:
    stack_env["PREDICTION_FORWARD_RETRIES"] = "1"
    proc, url = service_factory("prediction_service", stack_env)
    stack = Stack(proc, url, mongo[0], mongo[1], recorder, stack_env)
    recorder.stop()
    with Traffic(url, "nometrics") as traffic:
        wait_until(lambda: traffic.sent_at_least(200), timeout=30, what="traffic")
    assert traffic.failures == []
    lost = len(traffic.accepted)
    wait_until(
        lambda: stack.metric("prediction_records_dropped_total", queue="forward", reason="unreachable") == lost,
        timeout=30,
        what="loss counted",
    )
    assert stack.metric("prediction_forwarded_rows_total", result="error") == lost
    wait_until(lambda: stack.predictions.count_documents({}) == lost, timeout=15, what="MongoDB logging unaffected")
    health = wait_until(
        lambda: (h := requests.get(f"{url}/health", timeout=5).json())["metrics_service"]["reachable"] is False and h,
        timeout=20,
        what="health sees the metrics service down",
    )
    assert health["mongodb"]["reachable"] is True
    # Back up: forwarding resumes by itself.
    recorder.start()
    requests.post(f"{url}/predict", json={**RIDE, "request_id": "after"}, timeout=5).raise_for_status()
    wait_until(
        lambda: any(r["request_id"] == "after" for r in recorder.rows("/iterate/ride_duration")),
        timeout=20,
        what="forwarding resumed",
    )


def test_sigterm_with_mongodb_hanging_spools_the_queue_and_a_restart_replays_it(
    service_factory, stack_env, mongo, recorder: Recorder
) -> None:
    mongo_proc, uri = mongo
    # Writes wait (longer than the shutdown grace) instead of timing out: records pile up in the queue.
    hanging_env = {**stack_env, "PREDICTION_MONGO_TIMEOUT_SECONDS": "60"}
    proc, url = service_factory("prediction_service", hanging_env)
    stack = Stack(proc, url, mongo_proc, uri, recorder, stack_env)
    os.kill(mongo_proc.pid, signal.SIGSTOP)  # MongoDB hangs: writes time out instead of failing fast
    try:
        with Traffic(url, "hang") as traffic:
            wait_until(lambda: traffic.sent_at_least(150), timeout=30, what="traffic while MongoDB hangs")
        assert traffic.failures == []
        assert stack.metric("prediction_queue_size", queue="mongo") > 0
        proc.stop(timeout=30)
        spool = Spool(Path(stack_env["PREDICTION_SPOOL_DIR"]), 10**9)
        assert spool.size() > 0
    finally:
        os.kill(mongo_proc.pid, signal.SIGCONT)
    accepted = set(traffic.accepted)
    service_factory("prediction_service", stack_env)
    collection = stack.predictions
    wait_until(lambda: collection.count_documents({}) >= len(accepted), timeout=30, what="replay after restart")
    stored = [d["request_id"] for d in collection.find({}, {"_id": 0, "request_id": 1})]
    assert len(stored) == len(set(stored)) and set(stored) == accepted
    wait_until(lambda: spool.size() == 0, timeout=10, what="spool emptied")
