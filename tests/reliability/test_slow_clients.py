"""Idle and slow-header connections cannot starve serving: 200 + 50 of them on each real service.

A correctness test with a generous per-request timeout, not a timed assertion (latency figures
come from `python -m bench reliability --cases slow_clients`). With gunicorn's gthread worker every
request here times out: each pool thread is held by a connection that has not sent a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from reliability_support import TOKEN

from local_stack.reliability import Stack
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
