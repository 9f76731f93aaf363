"""Fault tests: MongoDB or the metrics service goes away while traffic flows; serving never fails, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from prediction_support import RIDE, Recorder, Stack, metric_value, stack_on_persistent_mongo

from local_stack.components import start_mongo
from local_stack.processes import python_module, wait_until
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
    stack, port = stack_on_persistent_mongo(service_factory, artifacts_dir, tmp_path, recorder)
    data_dir, url, mongo = tmp_path / "mongo-data", stack.url, stack.mongo
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


def _spooled(spool_dir: Path) -> int:
    return Spool(spool_dir, 10**9).size()


def test_a_non_driver_error_in_the_write_path_spools_every_prediction_and_counts_it(
    service_factory, stack_env, mongo, recorder: Recorder
) -> None:
    # pymongo's login against nx-27017 with credentials raises KeyError('payload'), not a PyMongoError:
    # before, 40 of 40 answered predictions vanished, /health said null and /feedback answered 500.
    mongo_proc, uri = mongo
    env = {**stack_env, "MONGODB_URI": uri.replace("mongodb://", "mongodb://user:password@")}
    proc, url = service_factory("prediction_service", env)
    stack = Stack(proc, url, mongo_proc, uri, recorder, env)
    session = requests.Session()
    for i in range(40):
        session.post(f"{url}/predict", json={**RIDE, "request_id": f"auth-{i}"}, timeout=5).raise_for_status()
    spool_dir = Path(env["PREDICTION_SPOOL_DIR"])
    wait_until(lambda: _spooled(spool_dir) >= 40, timeout=30, what="all 40 spooled")
    feedback = session.post(f"{url}/feedback", json={"request_id": "auth-1", "duration": 7.0}, timeout=5)
    assert feedback.status_code == 202, feedback.text
    assert stack.metric("prediction_mongo_writes_total", result="error") > 0
    assert stack.metric("prediction_records_dropped_total") == 0
    # The probe thread survives the same error and says "unreachable", again and again.
    for _ in range(2):
        health = wait_until(
            lambda: (h := session.get(f"{url}/health", timeout=5).json())["mongodb"]["reachable"] is False and h,
            timeout=20,
            what="health says unreachable",
        )
    assert health["queues"]["spool_records"] >= 40
    assert stack.predictions.count_documents({}) == 0
    # With the right URI the same spool reaches MongoDB: nothing was lost.
    proc.stop()
    service_factory("prediction_service", stack_env)
    wait_until(lambda: stack.predictions.count_documents({}) >= 40, timeout=30, what="spool replayed")
    stored = [d["request_id"] for d in stack.predictions.find({}, {"_id": 0, "request_id": 1})]
    assert sorted(stored) == sorted(f"auth-{i}" for i in range(40))


def test_a_mongodb_back_empty_gets_its_indexes_back_and_a_retried_id_is_stored_once(
    service_factory, stack_env, tmp_path: Path, recorder: Recorder
) -> None:
    mongo_proc, uri = start_mongo(tmp_path / "mongo-empty")
    port = int(uri.rsplit(":", 1)[1])
    env = {
        **stack_env,
        "MONGODB_URI": uri,
        "PREDICTION_HEALTH_CACHE_SECONDS": "0",
        "PREDICTION_INDEX_CHECK_SECONDS": "3600",
    }
    proc, url = service_factory("prediction_service", env)
    stack = Stack(proc, url, mongo_proc, uri, recorder, env)
    session = requests.Session()
    try:
        session.post(f"{url}/predict", json={**RIDE, "request_id": "before"}, timeout=5).raise_for_status()
        wait_until(lambda: stack.predictions.count_documents({}) == 1, timeout=20, what="first write")
        health = wait_until(
            lambda: (h := session.get(f"{url}/health", timeout=5).json())["mongodb"]["indexes_missing"] == [] and h,
            timeout=20,
            what="indexes reported present",
        )
        # Someone drops the indexes: /health names them (the hourly check has not run yet).
        stack.predictions.drop_indexes()
        wait_until(
            lambda: "request_id_unique" in session.get(f"{url}/health", timeout=5).json()["mongodb"]["indexes_missing"],
            timeout=20,
            what="health names the missing unique index",
        )
        # MongoDB restarts empty (in memory): no data, no indexes. A client retries one id five times.
        mongo_proc.stop()
        mongo_proc, _ = start_mongo(tmp_path / "mongo-empty", port=port)
        for _ in range(5):
            session.post(f"{url}/predict", json={**RIDE, "request_id": "retried"}, timeout=5).raise_for_status()
            wait_until(
                lambda: stack.predictions.count_documents({"request_id": "retried"}) >= 1, timeout=30, what="written"
            )
        wait_until(
            lambda: stack.metric("prediction_queue_size") + stack.metric("prediction_spool_records") == 0,
            timeout=30,
            what="drained",
        )
        assert stack.predictions.count_documents({"request_id": "retried"}) == 1
        health = wait_until(
            lambda: (h := session.get(f"{url}/health", timeout=5).json())["mongodb"]["indexes_missing"] == [] and h,
            timeout=20,
            what="indexes recreated",
        )
        assert health["mongodb"]["reachable"] is True
    finally:
        mongo_proc.stop()


def test_sigkill_of_the_whole_group_loses_no_answered_prediction_and_replays_without_recounting(
    service_factory, stack_env, mongo, recorder: Recorder
) -> None:
    mongo_proc, uri = mongo
    # MongoDB hangs, so every answered prediction sits in a worker's memory when the kill comes: without
    # the write-ahead log all of them would be gone.
    env = {**stack_env, "PREDICTION_MONGO_TIMEOUT_SECONDS": "60"}
    proc, url = service_factory("prediction_service", env)
    stack = Stack(proc, url, mongo_proc, uri, recorder, env)
    os.kill(mongo_proc.pid, signal.SIGSTOP)
    try:
        with Traffic(url, "groupkill") as traffic:
            wait_until(lambda: traffic.sent_at_least(150), timeout=30, what="traffic while MongoDB hangs")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait(10)
        answered = set(traffic.accepted)
        assert len(answered) >= 150
        wal_dir = Path(env["PREDICTION_SPOOL_DIR"]) / "wal"
        assert any(wal_dir.iterdir()), "no write-ahead log left behind"
    finally:
        os.kill(mongo_proc.pid, signal.SIGCONT)
    forwarded_before = {r["request_id"] for r in recorder.rows("/iterate/ride_duration")}
    proc, url = service_factory("prediction_service", stack_env)
    collection = stack.predictions
    wait_until(lambda: collection.count_documents({}) >= len(answered), timeout=60, what="log replayed")
    stored = [d["request_id"] for d in collection.find({}, {"_id": 0, "request_id": 1})]
    assert len(stored) == len(set(stored))
    assert answered <= set(stored), f"answered but lost: {sorted(answered - set(stored))[:10]}"
    # Requests in flight at the kill may be stored without an answer; nothing else.
    assert len(set(stored) - answered) <= 8
    text = requests.get(f"{url}/metrics", timeout=5).text
    assert metric_value(text, "prediction_wal_recovered_records_total") >= len(answered)
    # The replay is a MongoDB write only: no prediction counted again, no row forwarded again.
    assert metric_value(text, "prediction_predictions_total") == 0
    forwarded_after = {r["request_id"] for r in recorder.rows("/iterate/ride_duration")}
    assert not (forwarded_after - forwarded_before) & answered
    wait_until(
        lambda: not any(p.name.startswith("wal-") and ".claimed-" in p.name for p in wal_dir.iterdir()),
        timeout=20,
        what="claimed logs removed",
    )


def test_an_unwritable_spool_folder_refuses_to_start_with_one_line(stack_env, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be")
    env = {**os.environ, **stack_env, "PREDICTION_SPOOL_DIR": str(blocker / "spool"), "PORT": "0"}
    done = subprocess.run(python_module("prediction_service"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("prediction_service: PREDICTION_SPOOL_DIR ") and "not writable" in lines[0]
