"""Fixtures for the reliability tests: one real stack for the fuzzers and the log checks, shared by their requests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from local_stack.reliability import Stack

TOKEN = "reliability-secret-token-4f1c"
ERROR_KEYS = {"error", "details"}


def examples(default: int) -> int:
    """Return how many generated examples a property test runs (scale with RELIABILITY_EXAMPLES for a long run)."""
    return int(os.environ.get("RELIABILITY_EXAMPLES", default))


@pytest.fixture(scope="session")
def stack(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """MongoDB, the metrics service and the prediction service as real processes, token on, DEBUG logs."""
    started = Stack(
        tmp_path_factory.mktemp("stack"),
        artifacts_dir,
        token=TOKEN,
        workers=2,
        # Unknown label ids are the fuzzers' common case: do not wait a second for each.
        extra_env={"LOG_LEVEL": "debug", "PREDICTION_FEEDBACK_WAIT_SECONDS": "0.02"},
    )
    try:
        yield started.start()
    finally:
        started.stop()


def assert_contract_error(response: requests.Response | object, status: int) -> None:
    """Fail unless a 4xx body is the contract's `{"error": str, "details": [{"field", "message", ...}]}`."""
    body = response.json()
    assert isinstance(body, dict) and set(body) >= ERROR_KEYS, (status, body)
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["details"], list), body
    for detail in body["details"]:
        assert isinstance(detail.get("field"), str) and isinstance(detail.get("message"), str), body


def assert_healthy(stack: Stack) -> None:
    """Fail unless both services still answer /health with 200 and their processes are alive."""
    assert stack.prediction.alive() and stack.metrics.alive()
    assert requests.get(f"{stack.prediction_url}/health", timeout=5).status_code == 200
    assert requests.get(f"{stack.metrics_url}/health", timeout=5).status_code == 200
