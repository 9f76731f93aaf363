"""Helpers shared by the reliability tests: the token, the example budget, the contract's error shape."""

from __future__ import annotations

import os
import socket

import requests

from local_stack.reliability import Stack

TOKEN = "reliability-secret-token-4f1c"
ERROR_KEYS = {"error", "details"}


def examples(default: int) -> int:
    """Return how many generated examples a property test runs (scale with RELIABILITY_EXAMPLES for a long run)."""
    return int(os.environ.get("RELIABILITY_EXAMPLES", default))


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


def raw_exchange(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a new connection to `url` (http://host:port); return what the server sends until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)
