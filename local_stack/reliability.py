"""The whole serving path as local processes, steady traffic through it, and process facts (RSS, workers).

Shared by `tests/reliability/` and the `soak` / `reliability` benchmarks, so the README's figures
come from the same code the tests run.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from pymongo import MongoClient

from local_stack.components import start_mongo, start_service
from local_stack.processes import ManagedProcess, wait_until
from monitoring_core.documents import predictions_collection

DEMO_EVIDENTLY_CONFIG = Path(__file__).with_name("demo_evidently.yaml")


def rss_kib(pid: int) -> int:
    """Return a process's resident set size in KiB (Linux /proc; 0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """Return the direct children of a process (a gunicorn master's workers)."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return sorted({int(c) for t in tasks for c in (t / "children").read_text().split()})
    except OSError:
        return []


def tree_rss_kib(pid: int) -> int:
    """Return the RSS of a process plus its direct children, in KiB."""
    return rss_kib(pid) + sum(rss_kib(c) for c in children(pid))


@dataclass
class Stack:
    """MongoDB (persisted, restartable on its port), the metrics service and the prediction service."""

    workdir: Path
    artifacts: Path
    token: str
    workers: int = 2
    evidently_config: Path = DEMO_EVIDENTLY_CONFIG
    database: str = "prediction_service"
    extra_env: dict[str, str] = field(default_factory=dict)
    mongo: ManagedProcess | None = None
    mongo_uri: str = ""
    metrics: ManagedProcess | None = None
    metrics_url: str = ""
    prediction: ManagedProcess | None = None
    prediction_url: str = ""

    @property
    def data_dir(self) -> Path:
        return self.workdir / "mongo-data"

    @property
    def mongo_port(self) -> int:
        return int(self.mongo_uri.rsplit(":", 1)[1])

    def start(self) -> Stack:
        """Start MongoDB, then the metrics service (re-warming on), then the prediction service."""
        self.start_mongo()
        self.start_metrics()
        self.start_prediction()
        return self

    def start_prediction(self) -> None:
        """Start the prediction service (on its previous port after a stop), with the same spool folder."""
        port = int(self.prediction_url.rsplit(":", 1)[1]) if self.prediction_url else None
        env = {
            "MODEL_DIR": str(self.artifacts),
            "MONGODB_URI": self.mongo_uri,
            "MONGODB_DATABASE": self.database,
            "EVIDENTLY_SERVICE_URL": self.metrics_url,
            "MONITORING_TOKEN": self.token,
            "WORKERS": str(self.workers),
            "PREDICTION_SPOOL_DIR": str(self.workdir / "spool"),
            "PREDICTION_MONGO_RETRY_SECONDS": "0.5",
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "multiproc"),
            **self.extra_env,
        }
        self.prediction, self.prediction_url = start_service(
            "prediction_service", self.workdir / "logs", env, port=port
        )

    def kill_prediction_group(self) -> None:
        """SIGKILL the prediction service's whole process group at once (an OOM kill, a node loss)."""
        os.killpg(self.prediction.pid, signal.SIGKILL)
        self.prediction.popen.wait(10)

    def wipe_mongo(self) -> None:
        """Stop MongoDB, delete its data and start it empty on the same port (no collections, no indexes)."""
        self.mongo.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.start_mongo()

    def start_mongo(self) -> None:
        """Start nx-27017 persisted in `data_dir` (on the same port as before after a stop)."""
        port = self.mongo_port if self.mongo_uri else None
        self.mongo, self.mongo_uri = start_mongo(self.workdir / "mongo", port=port, data_dir=self.data_dir)

    def start_metrics(self) -> None:
        """Start the metrics service on its previous port, re-warming its window from MongoDB."""
        port = int(self.metrics_url.rsplit(":", 1)[1]) if self.metrics_url else None
        env = {
            "REFERENCE_PATH": str(self.artifacts / "reference.parquet"),
            "EVIDENTLY_CONFIG": str(self.evidently_config),
            "MONITORING_TOKEN": self.token,
            "REWARM_FROM_MONGODB": "true",
            "MONGODB_URI": self.mongo_uri,
            "MONGODB_DATABASE": self.database,
        }
        self.metrics, self.metrics_url = start_service("evidently_service", self.workdir / "logs", env, port=port)

    def predictions(self) -> MongoClient:
        """Return the `predictions` collection (a fresh client: MongoDB may have restarted)."""
        return predictions_collection(MongoClient(self.mongo_uri, serverSelectionTimeoutMS=3000), self.database)

    def metric_lines(self, url: str, prefix: str) -> list[str]:
        """Return the /metrics sample lines of `url` whose name starts with `prefix`."""
        text = requests.get(f"{url}/metrics", timeout=5).text
        return [line for line in text.splitlines() if line.startswith(prefix)]

    def prediction_backlog(self) -> float:
        """Return the records still in the prediction service's queues and spool."""
        lines = self.metric_lines(self.prediction_url, "prediction_queue_size") + self.metric_lines(
            self.prediction_url, "prediction_spool_records"
        )
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)

    def wait_drained(self, timeout: float = 60) -> None:
        """Wait until every queued and spooled record has left the prediction service."""
        wait_until(lambda: self.prediction_backlog() == 0, timeout, "prediction service backlog drained", 0.2)

    def stop(self) -> None:
        """Stop every process we started, by PID."""
        for proc in (self.prediction, self.metrics, self.mongo):
            if proc is not None:
                proc.stop(timeout=30)


def ride_payloads(n: int, seed: int) -> list[tuple[dict, float]]:
    """Return `n` reference-like (ride body with only the API fields, true minutes) pairs, as the simulator sends."""
    from ride_duration.schema import DESCRIPTION
    from ride_duration.synthetic import generate_trips
    from usage_simulation.rows import to_payloads

    return to_payloads(DESCRIPTION, generate_trips(n, seed=seed))


class SteadyTraffic:
    """Posts /predict at a steady rate from a few threads, and labels for a share of them; counts every outcome."""

    def __init__(self, url: str, rps: float, prefix: str, token: str = "", threads: int = 4, label_every: int = 5):
        self.url = url
        self.rps = rps
        self.prefix = prefix
        self.token = token
        self.threads = threads
        self.label_every = label_every
        self.accepted: list[str] = []
        self.failures: list[str] = []
        self.labels_sent = 0
        self.label_failures: list[str] = []
        self.phase = "steady"  # part of every request id, so outcomes can be told apart per fault
        self._rides = ride_payloads(2000, seed=3)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    @property
    def sent(self) -> int:
        return len(self.accepted) + len(self.failures)

    def __enter__(self) -> SteadyTraffic:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def wait_sent(self, more: int, timeout: float = 60) -> None:
        """Wait until `more` further requests have been answered (or failed)."""
        target = self.sent + more
        wait_until(lambda: self.sent >= target, timeout, f"{more} more requests", 0.05)

    def _run(self, index: int) -> None:
        session = requests.Session()
        period = self.threads / self.rps
        next_at = time.monotonic() + index * period / self.threads
        n = 0
        labels: list[dict] = []
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            # A slow service lowers the rate instead of piling up requests.
            next_at = max(next_at + period, time.monotonic() - period)
            request_id = f"{self.prefix}-{self.phase}-{index}-{n}"
            ride, duration = self._rides[(n * self.threads + index) % len(self._rides)]
            body = {**ride, "request_id": request_id}
            n += 1
            try:
                response = session.post(f"{self.url}/predict", json=body, timeout=10)
                ok = response.status_code == 200 and response.json().get("request_id") == request_id
                outcome = None if ok else f"{request_id}: {response.status_code} {response.text[:120]}"
            except requests.RequestException as exc:
                outcome = f"{request_id}: {type(exc).__name__}: {str(exc)[:120]}"
            with self._lock:
                (self.failures.append(outcome) if outcome else self.accepted.append(request_id))
            if outcome is None and self.label_every and n % self.label_every == 0:
                labels.append({"request_id": request_id, "duration": duration})
                if len(labels) >= 10:
                    self._send_labels(session, labels)
                    labels = []

    def _send_labels(self, session: requests.Session, labels: list[dict]) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = session.post(f"{self.url}/feedback", json=labels, headers=headers, timeout=10)
            problem = None if response.status_code in (200, 202) else f"{response.status_code} {response.text[:120]}"
        except requests.RequestException as exc:
            problem = f"{type(exc).__name__}: {str(exc)[:120]}"
        with self._lock:
            self.labels_sent += len(labels)
            if problem:
                self.label_failures.append(problem)
