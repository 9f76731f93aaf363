"""Every limit in docs/reliability.md, on the real processes: each answers with its documented status or metric.

The spool test runs a real Prometheus with the committed rules (`for:` shortened): MonitoringBacklog
fires while nothing has been dropped yet, and MonitoringRecordsDropped only once the spool is full.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from reliability_support import TOKEN, assert_contract_error

from local_stack.components import prometheus_query
from local_stack.processes import wait_until
from local_stack.prometheus_config import local_prometheus_config, rule_files, with_short_for
from local_stack.reliability import Stack, SteadyTraffic

pytestmark = pytest.mark.integration

RIDE = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2, "lpep_pickup_datetime": "2021-01-05T08:30:00"}
ROW = {**RIDE, "request_id": "lim-0", "timestamp": "2021-01-05T08:31:00Z", "model_version": "v", "prediction": 9.5}
LABEL = {"request_id": "lim-0", "duration": 12.0}

# (limit, service, path, body, expected status, expected reason)
LIMITS = [
    (
        "PREDICTION_MAX_BODY_BYTES 256 KiB",
        "prediction",
        "/predict",
        b'{"a": "' + b"x" * 270_000 + b'"}',
        413,
        "too_large",
    ),
    (
        "PREDICTION_MAX_BATCH_ROWS 100 rides",
        "prediction",
        "/predict",
        json.dumps([RIDE] * 101).encode(),
        400,
        "too_many_rows",
    ),
    (
        "10 x PREDICTION_MAX_BATCH_ROWS labels",
        "prediction",
        "/feedback",
        json.dumps([LABEL] * 1001).encode(),
        400,
        "too_many_rows",
    ),
    (
        "MAX_ROWS_PER_REQUEST 10,000 rows",
        "metrics",
        "/iterate/ride_duration",
        json.dumps([ROW] * 10_001).encode(),
        413,
        "too_many_rows",
    ),
    (
        "MAX_ROWS_PER_REQUEST 10,000 labels",
        "metrics",
        "/feedback/ride_duration",
        json.dumps([LABEL] * 10_001).encode(),
        413,
        "too_many_rows",
    ),
    ("metrics body 32 MiB", "metrics", "/iterate/ride_duration", b"[" + b" " * (32 * 2**20 + 1) + b"]", 413, None),
    # gunicorn answers these before the app sees the request: the contract's JSON body all the same.
    ("request line 4094 bytes (model name)", "metrics", "/iterate/" + "m" * 10_000, b"[]", 414, "uri_too_long"),
    ("request line 4094 bytes (path)", "prediction", "/predict?" + "q" * 10_000, b"{}", 414, "uri_too_long"),
]


@pytest.mark.parametrize(("limit", "service", "path", "body", "status", "reason"), LIMITS, ids=[x[0] for x in LIMITS])
def test_each_request_limit_answers_its_documented_status(stack, limit, service, path, body, status, reason) -> None:
    base = stack.prediction_url if service == "prediction" else stack.metrics_url
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    response = requests.post(base + path, data=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")
    assert_contract_error(response, status)
    if reason:
        assert response.json()["details"][0]["reason"] == reason


@pytest.mark.parametrize("service", ["prediction", "metrics"])
def test_gunicorn_own_errors_have_the_contract_body(stack, service) -> None:
    # A header over gunicorn's limits (431) and a request line it cannot parse (400): JSON, not HTML.
    base = stack.prediction_url if service == "prediction" else stack.metrics_url
    response = requests.get(f"{base}/health", headers={"X-Big": "h" * 9000}, timeout=10)
    assert response.status_code == 431 and response.headers["Content-Type"].startswith("application/json")
    assert_contract_error(response, 431)
    assert response.json()["details"][0]["field"] == "headers"
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, raw[:300]
    error = json.loads(body)
    assert error["error"] == "bad request" and error["details"][0]["message"], error


def test_at_the_batch_limit_every_ride_is_served(stack) -> None:
    response = requests.post(f"{stack.prediction_url}/predict", json=[RIDE] * 100, timeout=30)
    assert response.status_code == 200 and len(response.json()) == 100


def _alerts(url: str, name: str) -> list[dict]:
    return prometheus_query(url, f'ALERTS{{alertname="{name}",alertstate="firing"}}')


def test_a_filling_spool_raises_monitoring_backlog_before_any_record_is_dropped(
    artifacts_dir: Path, tmp_path: Path, prometheus_factory: Callable
) -> None:
    stack = Stack(
        tmp_path / "stack",
        artifacts_dir,
        token=TOKEN,
        workers=2,
        extra_env={"PREDICTION_SPOOL_CAPACITY_RECORDS": "600"},
    )
    try:
        stack.start()
        rules = {n: with_short_for(t, "1s") if n == "alerts.yml" else t for n, t in rule_files().items()}
        target = stack.prediction_url.removeprefix("http://")
        _, prom = prometheus_factory(
            local_prometheus_config({"prediction_service": target}, sorted(rules), "1s"), rule_files=rules
        )
        wait_until(lambda: prometheus_query(prom, 'up{job="prediction_service"} == 1'), 30, "first scrape", 0.2)
        with SteadyTraffic(stack.prediction_url, 40, "spool", token=TOKEN, label_every=0) as traffic:
            traffic.wait_sent(40)
            stack.mongo.stop()
            wait_until(lambda: _alerts(prom, "MonitoringBacklog"), 60, "MonitoringBacklog firing", 0.2)
            # The moment the warning fires, nothing has been lost: the spool still has room.
            dropped = prometheus_query(prom, "sum(prediction_records_dropped_total)")
            assert not dropped or float(dropped[0]["value"][1]) == 0, dropped
            assert "spool_full" not in requests.get(f"{stack.prediction_url}/metrics", timeout=5).text
            assert not _alerts(prom, "MonitoringRecordsDropped")
            # Keep going until the spool is full: now the drops are counted and alerted on.
            wait_until(lambda: _alerts(prom, "MonitoringRecordsDropped"), 60, "MonitoringRecordsDropped firing", 0.2)
        assert traffic.failures == []  # serving never noticed
        assert any(a["metric"].get("reason") == "spool_full" for a in _alerts(prom, "MonitoringRecordsDropped"))
    finally:
        stack.stop()
