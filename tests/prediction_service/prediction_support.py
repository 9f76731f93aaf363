"""Helpers shared by the prediction-service tests: a sample ride, the process stack, /metrics parsing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests
from pymongo import MongoClient
from pymongo.collection import Collection

from local_stack.processes import ManagedProcess
from local_stack.recorder import Recorder
from monitoring_core.documents import predictions_collection

RIDE = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 1.2,
    "passenger_count": 1,
    "lpep_pickup_datetime": "2021-01-05T08:30:00",
}


@dataclass
class Stack:
    """A prediction service process with its MongoDB and its recorder."""

    proc: ManagedProcess
    url: str
    mongo: ManagedProcess
    mongo_uri: str
    recorder: Recorder
    env: dict[str, str]

    @property
    def predictions(self) -> Collection:
        client = MongoClient(self.mongo_uri, serverSelectionTimeoutMS=3000, tz_aware=True)
        return predictions_collection(client, "prediction_service")

    def metric(self, name: str, **labels: str) -> float:
        """Return one sample of the service's /metrics (0 when absent)."""
        return metric_value(requests.get(f"{self.url}/metrics", timeout=5).text, name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Return the sum of the samples of `name` whose labels include `labels` in Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def service_env(model_dir: Path, workdir: Path, mongo_uri: str, recorder: Recorder) -> dict[str, str]:
    """Return the environment of a service serving the model folder `model_dir`, writing to `mongo_uri`
    and forwarding to `recorder`."""
    return {
        "MODEL_DIR": str(model_dir),
        "MONGODB_URI": mongo_uri,
        "EVIDENTLY_SERVICE_URL": recorder.url,
        "PREDICTION_SPOOL_DIR": str(workdir / "spool"),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "PREDICTION_FLUSH_INTERVAL_SECONDS": "0.1",
        "WORKERS": "2",
    }


def stack_on_persistent_mongo(
    service_factory, artifacts_dir: Path, tmp_path: Path, recorder: Recorder, env_overrides: dict | None = None
) -> tuple[Stack, int]:
    """Start nx-27017 with its data on disk (so it can be restarted on its port) and the service on it.

    Returns the stack and MongoDB's port; the service retries MongoDB every 0.5 s, so fault tests stay short.
    """
    from local_stack.components import start_mongo

    mongo, uri = start_mongo(tmp_path / "mongo", data_dir=tmp_path / "mongo-data")
    env = service_env(artifacts_dir, tmp_path, uri, recorder)
    env["PREDICTION_MONGO_RETRY_SECONDS"] = "0.5"
    env.update(env_overrides or {})
    proc, url = service_factory("prediction_service", env)
    return Stack(proc, url, mongo, uri, recorder, env), int(uri.rsplit(":", 1)[1])
