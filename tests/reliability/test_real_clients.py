"""What real HTTP clients send, against the real processes: compressed bodies, kept-alive connections after an error.

Our other tests post plain JSON on fresh connections. `requests` and `httpx` keep connections alive
and reuse them after any answer that says `Connection: keep-alive`; clients compress large batches
with `Content-Encoding: gzip`. Shares the session's stack (tests/reliability/conftest.py).
"""

from __future__ import annotations

import gzip
import json
import socket
import time

import httpx
import pytest
import requests
from reliability_support import TOKEN, assert_contract_error, raw_exchange

from local_stack.processes import wait_until

pytestmark = pytest.mark.integration

RIDE = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2, "passenger_count": 1}
JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Over the prediction service's 256 KiB limit, under the buffered worker's 1 MiB: the common "too big" batch.
OVERSIZED = json.dumps([{**RIDE, "note": "x" * 3000}] * 99).encode()


def test_after_an_answer_that_left_the_body_unread_the_next_request_on_the_connection_is_served(stack) -> None:
    # gunicorn drains at most 64 KiB of an unread body before reusing a connection and closes it past that:
    # the answer must say so, or a client reusing the connection loses its next request to a reset.
    cases = [
        (stack.prediction_url + "/predict", JSON, 413),
        (stack.prediction_url + "/feedback", JSON, 401),  # no token: refused before the body is read
        (stack.metrics_url + "/iterate/ride_duration", JSON, 401),
        (stack.prediction_url + "/predict", {"Content-Type": "text/plain"}, 415),
    ]
    for url, headers, status in cases:
        with requests.Session() as session:
            for _ in range(3):
                refused = session.post(url, data=OVERSIZED, headers=headers, timeout=10)
                assert refused.status_code == status, (url, refused.text[:300])
                assert refused.headers["Connection"] == "close", (url, refused.headers)
                assert_contract_error(refused, status)
                served = session.post(stack.prediction_url + "/predict", json=RIDE, timeout=10)
                assert served.status_code == 200, served.text
    # A small unread body is drained by gunicorn: that connection stays open, as announced.
    with httpx.Client(http1=True, timeout=10) as client:
        refused = client.post(stack.prediction_url + "/predict", content=b"{}", headers={"Content-Type": "text/plain"})
        assert (refused.status_code, refused.headers["Connection"]) == (415, "keep-alive")
        assert client.post(stack.prediction_url + "/predict", json=RIDE).status_code == 200


def _chunks(data: bytes, size: int = 100):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_gzip_bodies_are_served_by_both_services_whole_or_chunked(stack) -> None:
    rides = [{**RIDE, "request_id": f"gz-{i}"} for i in range(30)]
    packed = gzip.compress(json.dumps(rides).encode())
    headers = {**JSON, "Content-Encoding": "gzip"}
    with httpx.Client(http1=True, timeout=10) as client:
        whole = client.post(stack.prediction_url + "/predict", content=packed, headers=headers)
        chunked = client.post(stack.prediction_url + "/predict", content=_chunks(packed), headers=headers)
    assert whole.status_code == chunked.status_code == 200, (whole.text, chunked.text)
    assert [a["request_id"] for a in whole.json()] == [r["request_id"] for r in rides]
    assert len(chunked.json()) == len(rides)
    row = {**RIDE, "lpep_pickup_datetime": "2021-01-05T08:30:00", "timestamp": "2021-01-05T08:31:00Z"}
    rows = [{**row, "request_id": f"gz-row-{i}", "prediction": 9.5} for i in range(5)]
    iterated = requests.post(
        stack.metrics_url + "/iterate/ride_duration",
        data=gzip.compress(json.dumps(rows).encode()),
        headers={**headers, **AUTH},
        timeout=10,
    )
    assert iterated.status_code == 200, iterated.text
    assert iterated.json()["accepted"] + iterated.json()["duplicates"] == 5


@pytest.mark.parametrize(
    ("coding", "data", "status"),
    [
        ("br", json.dumps(RIDE).encode(), 415),
        ("gzip", json.dumps(RIDE).encode(), 400),  # says gzip, is not
        ("gzip", gzip.compress(json.dumps(RIDE).encode())[:-8], 400),  # cut short
    ],
    ids=["brotli", "not gzip", "cut short"],
)
def test_a_body_whose_coding_cannot_be_undone_gets_a_json_error_naming_content_encoding(
    stack, coding, data, status
) -> None:
    for url, auth in ((stack.prediction_url + "/predict", {}), (stack.metrics_url + "/iterate/ride_duration", AUTH)):
        response = requests.post(url, data=data, headers={**JSON, **auth, "Content-Encoding": coding}, timeout=10)
        assert response.status_code == status, (url, response.text)
        assert_contract_error(response, status)
        assert response.json()["details"][0]["field"] == "Content-Encoding"
        assert response.json()["details"][0]["reason"] == "wrong_content_encoding"


def test_a_head_with_bare_lf_line_ends_gets_a_json_400_at_once(stack) -> None:
    # netcat and hand-written clients end lines with LF alone; gunicorn refuses that (RFC 9112 2.2 allows it
    # either way). The buffering worker waited for CR LF CR LF that never comes and closed silently after 5 s.
    body = json.dumps(RIDE).encode()
    for url, path in ((stack.prediction_url, "/predict"), (stack.metrics_url, "/iterate/ride_duration")):
        head = f"POST {path} HTTP/1.1\nHost: t\nContent-Type: application/json\nContent-Length: {len(body)}\n\n"
        started = time.monotonic()
        reply = raw_exchange(url, head.encode() + body)
        assert reply.startswith(b"HTTP/1.1 400 "), reply[:300]
        assert time.monotonic() - started < 3
        error = json.loads(reply.partition(b"\r\n\r\n")[2])
        assert "bare LF" in error["details"][0]["message"], error


def test_health_says_when_the_reachable_metrics_service_refuses_every_forward(stack, artifacts_dir, tmp_path) -> None:
    # Another MONITORING_TOKEN than the metrics service's: its /health answers (reachable), every forward is a
    # 401 and every row is dropped. /health said `reachable: true` and nothing else; now it names the refusal.
    from prediction_service import create_app
    from prediction_service.settings import Settings

    settings = Settings(
        model_dir=artifacts_dir,
        evidently_service_url=stack.metrics_url,
        monitoring_token="not-the-metrics-services-token",
        log_to_mongodb=False,
        flush_interval_seconds=0.05,
        forward_retries=0,
        health_cache_seconds=0.0,
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        assert client.post("/predict", json=RIDE).status_code == 200
        health = wait_until(
            lambda: (
                (h := client.get("/health").get_json())["metrics_service"]["forwarding"]["rows"]["ok"] is False and h
            ),
            timeout=10,
            what="the refused forward on /health",
        )
        assert health["metrics_service"]["reachable"] is not False  # it answers its /health: not enough
        assert health["metrics_service"]["forwarding"]["rows"]["error"].startswith("HTTP 401")
    finally:
        app.extensions["prediction_service"].close()


def test_a_body_without_framing_is_a_400_that_says_the_body_is_empty(stack) -> None:
    # HTTP/1.0 clients (and hand-written ones) send a body without Content-Length: HTTP reads no body then.
    # The answer said "Expecting value: line 1 column 1 (char 0)"; it now says what happened.
    head = b"POST /predict HTTP/1.0\r\nContent-Type: application/json\r\n\r\n"
    host, port = stack.prediction_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=4) as sock:
        sock.sendall(head + json.dumps(RIDE).encode())
        sock.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.0 400 "), reply[:300]
    detail = json.loads(reply.partition(b"\r\n\r\n")[2])["details"][0]
    assert (detail["field"], detail["reason"]) == ("body", "invalid_json")
    assert "empty" in detail["message"] and "Content-Length" in detail["message"]
