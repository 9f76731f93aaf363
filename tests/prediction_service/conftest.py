"""Fixtures for the prediction service: in-process apps for fast tests, real processes for integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests
from pymongo import MongoClient
from pymongo.collection import Collection

from local_stack.components import start_mongo, start_service
from local_stack.processes import ManagedProcess
from local_stack.recorder import Recorder
from prediction_service import create_app
from prediction_service.settings import Settings

RIDE = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 1.2,
    "passenger_count": 1,
    "lpep_pickup_datetime": "2021-01-05T08:30:00",
}


@pytest.fixture
def offline_settings(artifacts_dir: Path, tmp_path: Path) -> Settings:
    """Settings with logging and forwarding off: the API alone, no dependencies."""
    return Settings(
        model_path=artifacts_dir / "model.pkl",
        log_to_mongodb=False,
        forward_to_metrics=False,
        spool_dir=tmp_path / "spool",
    )


@pytest.fixture
def client(offline_settings: Settings):
    """A Flask test client of an app with logging and forwarding off."""
    return create_app(offline_settings).test_client()


@pytest.fixture
def settings_with(offline_settings: Settings) -> Callable[..., Settings]:
    """Return a factory of settings derived from the offline ones."""
    return lambda **changes: replace(offline_settings, **changes)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A stand-in metrics service recording /iterate and /feedback bodies."""
    rec = Recorder().start()
    yield rec
    rec.stop()


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
        return MongoClient(self.mongo_uri, serverSelectionTimeoutMS=3000, tz_aware=True)["prediction_service"][
            "predictions"
        ]

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


def service_env(model_path: Path, workdir: Path, mongo_uri: str, recorder: Recorder) -> dict[str, str]:
    """Return the environment of a service writing to `mongo_uri` and forwarding to `recorder`."""
    return {
        "MODEL_PATH": str(model_path),
        "MONGODB_URI": mongo_uri,
        "EVIDENTLY_SERVICE_URL": recorder.url,
        "PREDICTION_SPOOL_DIR": str(workdir / "spool"),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prom"),
        "PREDICTION_FLUSH_INTERVAL_SECONDS": "0.1",
        "PREDICTION_FEEDBACK_WAIT_SECONDS": "0.3",
        "WORKERS": "2",
    }


@pytest.fixture
def stack_env(artifacts_dir: Path, tmp_path: Path, mongo, recorder: Recorder) -> dict[str, str]:
    """The environment of a fresh service using the `mongo` fixture and the recorder."""
    return service_env(artifacts_dir / "model.pkl", tmp_path, mongo[1], recorder)


@pytest.fixture
def stack(service_factory, mongo, recorder: Recorder, stack_env: dict[str, str]) -> Stack:
    """A fresh service under gunicorn (2 workers) against its own nx-27017 and recorder (for fault tests)."""
    proc, url = service_factory("prediction_service", stack_env)
    return Stack(proc, url, mongo[0], mongo[1], recorder, stack_env)


@pytest.fixture(scope="module")
def shared_stack(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One service, MongoDB and recorder shared by a module's tests (each test uses its own request ids)."""
    workdir = tmp_path_factory.mktemp("shared_stack")
    mongo_proc, uri = start_mongo(workdir / "mongo")
    rec = Recorder().start()
    env = service_env(artifacts_dir / "model.pkl", workdir, uri, rec)
    proc, url = start_service("prediction_service", workdir / "services", env)
    yield Stack(proc, url, mongo_proc, uri, rec, env)
    proc.stop()
    rec.stop()
    mongo_proc.stop()
