"""Fixtures of the simulator's tests: an HTTP recorder standing in for the prediction service, and row sources.

The recorder validates bodies against the description of the model the test simulates (the taxi example by
default); `taxi_source` draws from the session's small trained taxi reference, `insurance_dir` is a model folder
with the health_insurance example trained into it (its model.yaml and scenarios copied from models/).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from health_insurance.train import train as train_insurance
from monitoring_core.description import ModelDescription
from monitoring_core.paths import MODELS_DIR, REFERENCE_FILE
from monitoring_core.validation import validate_request
from ride_duration.schema import DESCRIPTION as TAXI
from usage_simulation.rows import RowSource, read_rows

TAXI_DIR = MODELS_DIR / "ride_duration"


@dataclass
class Recorder:
    """What the fake service received, with arrival times, and how it should answer."""

    url: str = ""
    description: ModelDescription = TAXI
    predictions: list[tuple[float, dict]] = field(default_factory=list)
    feedback: list[tuple[float, dict]] = field(default_factory=list)
    delay_seconds: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def predict_times(self) -> list[float]:
        with self.lock:
            return [t for t, _ in self.predictions]


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
            now = time.time()
            counted = self.path == "/predict"
            with recorder.lock:
                recorder.in_flight += counted
                recorder.max_in_flight = max(recorder.max_in_flight, recorder.in_flight)
            try:
                if recorder.delay_seconds:
                    time.sleep(recorder.delay_seconds)  # a slow service, to exercise bounded concurrency
                if self.path == "/predict":
                    with recorder.lock:
                        recorder.predictions.append((now, body))
                    try:
                        validate_request(recorder.description, body)
                    except ValidationError:
                        return self._reply(400, {"error": "invalid input", "details": []})
                    answer = recorder.description.class_keys[0] if recorder.description.is_classification else 12.5
                    return self._reply(
                        200, {"request_id": body.get("request_id"), "prediction": answer, "model_version": "test"}
                    )
                if self.path == "/feedback":
                    with recorder.lock:
                        recorder.feedback.extend((now, item) for item in body)
                    auth = self.headers.get("Authorization")
                    return self._reply(200, {"accepted": len(body), "auth": auth})
                return self._reply(404, {"error": "not found"})
            finally:
                with recorder.lock:
                    recorder.in_flight -= counted

    return Handler


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A threaded HTTP server on a free loopback port recording /predict and /feedback calls."""
    rec = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def taxi_reference(artifacts_dir: Path) -> Path:
    """The reference of the session's small taxi model (the one the live stack serves)."""
    return artifacts_dir / REFERENCE_FILE


@pytest.fixture
def taxi_source(taxi_reference: Path) -> RowSource:
    """Rows drawn from the session's taxi reference."""
    return RowSource(TAXI, read_rows(TAXI, taxi_reference), seed=1)


@pytest.fixture(scope="session")
def insurance_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A health_insurance model folder trained once per session (model.yaml and scenarios from models/)."""
    folder = tmp_path_factory.mktemp("models") / "health_insurance"
    shutil.copytree(MODELS_DIR / "health_insurance", folder, ignore=shutil.ignore_patterns("*.pkl", "*.parquet"))
    train_insurance(seed=3, out_dir=folder, reference_rows=3_000)
    return folder


@pytest.fixture
def live_traffic_turn() -> Iterator[None]:
    """Hold the machine-wide turn for a live scenario: the taxi and classifier live modules, on two test
    processes, never send their traffic and wait for their alerts at the same time.

    Each starts a whole stack and sends 150 requests a second; the two at once on two cores delayed
    evaluations past a scenario's settle (a segment signal unseen in 90 s) or let an alert flap. Each test
    waits for the other's scenario to end instead: a few minutes of one idle worker, against a random red CI.
    """
    import fcntl
    import tempfile

    with open(Path(tempfile.gettempdir()) / "monitoring-live-scenarios.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
