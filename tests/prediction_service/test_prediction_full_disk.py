"""A full disk during a MongoDB outage, on a real 400 KiB tmpfs: refuse loses nothing it answered, serve counts
every loss and warns before the first one; /health says degraded while a record cannot be logged.

The spool folder is a tmpfs mounted here (root only: CI runs as root; skipped otherwise), the service runs
under gunicorn against nx-27017 with its data on disk, stopped and restarted on its port.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prediction_support import RIDE, metric_value, service_env

from local_stack.components import prometheus_binary, start_mongo
from local_stack.processes import wait_until
from local_stack.prometheus_config import RULES_DIR
from local_stack.recorder import Recorder

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)"),
]
RIDES_PER_CALL = 10


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 400 KiB tmpfs for the spool, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def start_stack(service_factory, artifacts_dir: Path, tmp_path: Path, spool: Path, mode: str):
    mongo, uri = start_mongo(tmp_path / "mongo", data_dir=tmp_path / "mongo-data")
    recorder = Recorder().start()
    env = service_env(artifacts_dir, tmp_path, uri, recorder)
    env |= {
        "PREDICTION_SPOOL_DIR": str(spool / "spool"),
        "PREDICTION_MONGO_RETRY_SECONDS": "0.5",
        "PREDICTION_MONGO_TIMEOUT_SECONDS": "0.3",
        "PREDICTION_FORWARD_TO_METRICS": "false",
        "PREDICTION_HEALTH_CACHE_SECONDS": "0.2",
        "PREDICTION_UNLOGGED": mode,
    }
    proc, url = service_factory("prediction_service", env)
    return mongo, uri, recorder, proc, url


def predict(session: requests.Session, url: str, prefix: str, n: int) -> requests.Response:
    rides = [{**RIDE, "request_id": f"{prefix}-{n}-{i}"} for i in range(RIDES_PER_CALL)]
    return session.post(f"{url}/predict", json=rides, timeout=10)


def stored(uri: str, ids: list[str]) -> set[str]:
    from pymongo import MongoClient

    from monitoring_core.documents import predictions_collection

    collection = predictions_collection(MongoClient(uri, serverSelectionTimeoutMS=3000), "prediction_service")
    found: set[str] = set()
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        found |= {d["request_id"] for d in collection.find({"request_id": {"$in": chunk}}, {"request_id": 1})}
    return found


def restart_mongo(tmp_path: Path, uri: str):
    port = int(uri.rsplit(":", 1)[1])
    return start_mongo(tmp_path / "mongo", port=port, data_dir=tmp_path / "mongo-data")[0]


def test_refuse_answers_503_when_full_and_every_200_reaches_mongodb(
    service_factory, artifacts_dir: Path, tmp_path: Path, small_disk: Path
) -> None:
    mongo, uri, recorder, proc, url = start_stack(service_factory, artifacts_dir, tmp_path, small_disk, "refuse")
    session = requests.Session()
    answered: list[str] = []
    refused = 0
    try:
        mongo.stop()
        health_seen_degraded = None
        for n in range(400):
            response = predict(session, url, "refuse", n)
            if response.status_code == 200:
                answered += [a["request_id"] for a in response.json()]
                continue
            assert response.status_code == 503, response.text
            body = response.json()
            assert body["error"] == "unlogged" and body["details"][0]["reason"] == "unlogged"
            assert response.headers["Retry-After"] == "1"
            refused += 1
            if refused == 1:
                wait_until(
                    lambda: requests.get(f"{url}/health", timeout=5).json()["status"] == "degraded",
                    10,
                    "/health degraded",
                    0.1,
                )
                health_seen_degraded = requests.get(f"{url}/health", timeout=5).json()
            if refused >= 20:
                break
        assert refused >= 20, "the disk never filled"
        assert health_seen_degraded["degraded_reasons"], health_seen_degraded
        assert metric_value(session.get(f"{url}/metrics").text, "prediction_records_dropped_total") == 0
        assert metric_value(session.get(f"{url}/metrics").text, "prediction_unlogged_refused_total") >= 20 * 10
        mongo = restart_mongo(tmp_path, uri)
        # Space comes back (the spool drains into MongoDB): it resumes by itself.
        wait_until(lambda: len(stored(uri, answered)) == len(answered), 60, "every answered ride stored", 0.3)
        wait_until(lambda: predict(session, url, "after", 0).status_code == 200, 30, "serving again", 0.2)
        wait_until(
            lambda: requests.get(f"{url}/health", timeout=5).json()["status"] == "ok", 30, "/health ok again", 0.2
        )
        print(f"refuse: answered {len(answered)} rides before the disk filled, refused {refused} calls, lost 0")
    finally:
        proc.stop()
        mongo.stop()
        recorder.stop()


def _backlog_only_rules(tmp_path: Path) -> Path:
    # The committed MonitoringBacklog expression and `for:`, annotations left out (they are tested in
    # prometheus/tests/alerts_test.yml): promtool then compares labels only.
    groups = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == "MonitoringBacklog"]
    rule = {k: v for k, v in rule.items() if k != "annotations"}
    path = tmp_path / "backlog.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "backlog", "rules": [rule]}]}))
    return path


def test_serve_counts_every_loss_and_the_backlog_alert_fires_before_the_first(
    service_factory, artifacts_dir: Path, tmp_path: Path, small_disk: Path
) -> None:
    mongo, uri, recorder, proc, url = start_stack(service_factory, artifacts_dir, tmp_path, small_disk, "serve")
    session = requests.Session()
    answered: list[str] = []
    # (spool records, capacity, dropped, spool used bytes, free bytes) after each call
    samples: list[tuple[float, float, float, float, float]] = []
    try:
        mongo.stop()
        degraded = None
        for n in range(400):
            response = predict(session, url, "serve", n)
            assert response.status_code == 200, response.text  # serving never notices
            answered += [a["request_id"] for a in response.json()]
            text = session.get(f"{url}/metrics").text
            samples.append(
                (
                    metric_value(text, "prediction_spool_records"),
                    metric_value(text, "prediction_spool_capacity_records"),
                    metric_value(text, "prediction_records_dropped_total", queue="mongo"),
                    metric_value(text, "prediction_spool_used_bytes"),
                    metric_value(text, "prediction_spool_free_bytes"),
                )
            )
            if samples[-1][2] > 0 and degraded is None:
                health = session.get(f"{url}/health").json()
                degraded = health if health["status"] == "degraded" else None
            if samples[-1][2] >= 200:
                break
        dropped = samples[-1][2]
        assert dropped >= 200, "the disk never filled"
        first_loss = next(i for i, s in enumerate(samples) if s[2] > 0)
        reasons = set(degraded["degraded_reasons"]) if degraded is not None else set()
        assert reasons & {"disk_full", "spool_full"}, degraded
        # When the disk is the bound that was hit, it filled: under heavy load (CI) losses began with up to
        # ~140 KiB of the 400 KiB left, since a whole batch that does not fit is halved down to what fits and the
        # rest dropped. The least free space seen counts: once the spool takes over from the write-ahead logs,
        # the logs' space comes back (seen: 252 KiB free by the end of a loaded run).
        least_free = min(s[4] for s in samples)
        assert "spool_full" in reasons or least_free < 160 * 1024, (least_free, degraded)

        def gauge_agrees_with_health() -> bool:
            # Same listing, read at scrape time (the issue: the gauge said 0 while /health said 802).
            gauge = metric_value(session.get(f"{url}/metrics").text, "prediction_spool_records")
            return gauge == session.get(f"{url}/health").json()["spool"]["records"] > 0

        wait_until(gauge_agrees_with_health, 10, "spool gauge == /health", 0.1)
        mongo = restart_mongo(tmp_path, uri)
        wait_until(lambda: session.get(f"{url}/health").json()["queues"]["spool_records"] == 0, 60, "spool drained")
        final = metric_value(session.get(f"{url}/metrics").text, "prediction_records_dropped_total", queue="mongo")
        wait_until(lambda: len(answered) - len(stored(uri, answered)) == final, 30, "every loss counted", 0.3)
        lost = len(answered) - len(stored(uri, answered))
        assert lost == final > 0
        # The alert: the committed expression over the real values, one sample per minute. At the last
        # sample before the first loss MonitoringBacklog must already fire.
        rules = _backlog_only_rules(tmp_path)
        series = lambda column: " ".join(f"{s[column]:.0f}" for s in samples)  # noqa: E731
        labels = 'job="prediction_service", instance="p:9696"'
        case = {
            "rule_files": [str(RULES_DIR / "recording.yml"), str(rules)],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": [
                        {"series": f"prediction_spool_records{{{labels}}}", "values": series(0)},
                        {"series": f"prediction_spool_capacity_records{{{labels}}}", "values": series(1)},
                        {"series": f"prediction_spool_used_bytes{{{labels}}}", "values": series(3)},
                        {"series": f"prediction_spool_free_bytes{{{labels}}}", "values": series(4)},
                    ],
                    "alert_rule_test": [
                        {
                            "eval_time": f"{first_loss - 1}m",
                            "alertname": "MonitoringBacklog",
                            "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                        },
                        {"eval_time": "2m", "alertname": "MonitoringBacklog", "exp_alerts": []},
                    ],
                }
            ],
        }
        test_file = tmp_path / "measured_test.yml"
        test_file.write_text(yaml.safe_dump(case))
        result = subprocess.run(
            [prometheus_binary("promtool"), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr + "\n" + repr(samples)
        half = next((i for i, s in enumerate(samples) if s[3] + s[4] and s[3] / (s[3] + s[4]) > 0.5), None)
        print(
            f"serve: {len(answered)} answered, {lost} lost = {final:.0f} counted; disk half used at call {half}, "
            f"first loss at call {first_loss} (of {len(samples)})"
        )
    finally:
        proc.stop()
        mongo.stop()
        recorder.stop()


def test_a_restart_on_a_full_disk_serves_degraded_and_still_logs_to_mongodb(
    service_factory, artifacts_dir: Path, tmp_path: Path, small_disk: Path
) -> None:
    # A restart during a full-disk incident (a deploy, a crash loop, the storm of an orchestrator): the start
    # check refused a full spool disk like an unwritable one (exit 2, "fix its permissions"), so serving went
    # down for a monitoring disk. Now it starts, says so, serves, and logs to MongoDB, which is up.
    (small_disk / "spool" / "wal").mkdir(parents=True)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left"):
            while True:
                os.write(fd, b"\0" * 65536)
    finally:
        os.close(fd)
    mongo, uri, recorder, proc, url = start_stack(service_factory, artifacts_dir, tmp_path, small_disk, "serve")
    try:
        assert "is full" in proc.log_path.read_text()
        health = requests.get(f"{url}/health", timeout=5).json()
        assert (health["status"], health["degraded_reasons"]) == ("degraded", ["disk_full"])
        session = requests.Session()
        responses = [predict(session, url, "full-start", n) for n in range(3)]
        assert [r.status_code for r in responses] == [200] * 3
        ids = [answer["request_id"] for r in responses for answer in r.json()]
        wait_until(lambda: stored(uri, ids) == set(ids), 20, "predictions in MongoDB")
    finally:
        proc.stop()
        recorder.stop()
        mongo.stop()
