"""Idle and slow-header connections cannot starve serving: 200 + 50 of them on each real service.

A correctness test with a generous per-request timeout, not a timed assertion (latency figures
come from `python -m bench reliability --cases slow_clients`). With gunicorn's stock gthread worker
(`WORKER_CLASS=gthread`) every request here times out: each pool thread is held by a connection that
has not sent a request. The default worker reads requests in its event loop, so every way of framing
a body (length, chunked, `Expect: 100-continue`, pipelined) is served here too.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from reliability_support import TOKEN, raw_exchange

from local_stack.reliability import Stack
from local_stack.sample_rows import sample_row
from local_stack.slow_clients import SlowClients, iterate_once, predict_once

pytestmark = pytest.mark.integration

IDLE, SLOW_HEADER = 200, 50
# Far above a served request (milliseconds) and far below what a starved server takes (the whole attack).
TIMEOUT = 5.0
REQUESTS = 20


@pytest.fixture(scope="module")
def attacked_stack(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A fresh stack (default server setup) whose two services are each under the slow-client attack."""
    stack = Stack(tmp_path_factory.mktemp("slow_clients"), artifacts_dir, token=TOKEN, workers=2)
    try:
        stack.start()
        with (
            SlowClients("127.0.0.1", int(stack.prediction_url.rsplit(":", 1)[1]), IDLE, SLOW_HEADER) as on_prediction,
            SlowClients("127.0.0.1", int(stack.metrics_url.rsplit(":", 1)[1]), IDLE, SLOW_HEADER) as on_metrics,
        ):
            # The attack is in place before any probe: every connection open at once.
            assert on_prediction.open_connections == on_metrics.open_connections == IDLE + SLOW_HEADER
            yield stack
    finally:
        stack.stop()


def test_predict_answers_every_request_during_the_attack(attacked_stack: Stack) -> None:
    for _ in range(REQUESTS):
        predict_once(attacked_stack.prediction_url, TIMEOUT)


def test_metrics_service_accepts_rows_during_the_attack(attacked_stack: Stack) -> None:
    for n in range(REQUESTS):
        iterate_once(attacked_stack.metrics_url, TOKEN, f"slow-test-{n}", TIMEOUT)
    assert requests.get(f"{attacked_stack.metrics_url}/health", timeout=TIMEOUT).status_code == 200


def test_forwarder_drops_nothing_during_the_attack(attacked_stack: Stack) -> None:
    # The predictions of the probes above (and these) reach the attacked metrics service.
    for _ in range(REQUESTS):
        predict_once(attacked_stack.prediction_url, TIMEOUT)
    attacked_stack.wait_drained(timeout=60)
    dropped = [
        line
        for line in attacked_stack.metric_lines(attacked_stack.prediction_url, "prediction_records_dropped_total")
        if float(line.rsplit(" ", 1)[1]) > 0
    ]
    assert dropped == []


def _request(body: bytes, headers: str = "", close: bool = True) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    head = f"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{headers}{connection}\r\n"
    return head.encode() + body


RIDE_BODY = json.dumps(sample_row()).encode()
CHUNKED = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (RIDE_BODY[:10], RIDE_BODY[10:])) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("case", "data", "answers"),
    [
        ("content-length", _request(RIDE_BODY, f"Content-Length: {len(RIDE_BODY)}\r\n"), 1),
        ("chunked", _request(CHUNKED, "Transfer-Encoding: chunked\r\n"), 1),
        (
            "expect 100-continue",
            _request(RIDE_BODY, f"Content-Length: {len(RIDE_BODY)}\r\nExpect: 100-continue\r\n"),
            1,
        ),
        (
            "two pipelined on one kept-alive connection",
            _request(RIDE_BODY, f"Content-Length: {len(RIDE_BODY)}\r\n", close=False)
            + _request(RIDE_BODY, f"Content-Length: {len(RIDE_BODY)}\r\n"),
            2,
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_every_way_of_sending_a_body_is_served_during_the_attack(attacked_stack: Stack, case, data, answers) -> None:
    # The server's event loop reads these before a thread serves them: each framing must arrive whole.
    reply = raw_exchange(attacked_stack.prediction_url, data)
    assert reply.count(b"HTTP/1.1 200 OK") == answers, (case, reply[:400])
    assert reply.count(b'"duration"') == answers, (case, reply[:400])
    if "100-continue" in case:
        assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\n") and reply.count(b"100 Continue") == 1


def test_a_head_that_never_ends_is_closed_without_a_thread(attacked_stack: Stack) -> None:
    # Idle for longer than the head deadline (5 s): the server closes the connection, answering nothing.
    host, port = attacked_stack.prediction_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: t\r\n")
        assert sock.recv(65536) == b""
