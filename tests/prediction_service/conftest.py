"""Fixtures for the prediction service: in-process apps for fast tests, real processes for integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prediction_support import Stack, service_env

from local_stack.components import start_mongo, start_prediction_service
from local_stack.recorder import Recorder
from prediction_service import create_app
from prediction_service.settings import Settings


@pytest.fixture
def offline_settings(artifacts_dir: Path, tmp_path: Path) -> Settings:
    """Settings with logging and forwarding off: the API alone, no dependencies."""
    return Settings(
        model_dir=artifacts_dir,
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
    return lambda **changes: offline_settings.replace(**changes)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A stand-in metrics service recording /iterate and /feedback bodies."""
    rec = Recorder().start()
    yield rec
    rec.stop()


@pytest.fixture
def stack_env(artifacts_dir: Path, tmp_path: Path, mongo, recorder: Recorder) -> dict[str, str]:
    """The environment of a fresh service using the `mongo` fixture and the recorder."""
    return service_env(artifacts_dir, tmp_path, mongo[1], recorder)


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
    env = service_env(artifacts_dir, workdir, uri, rec)
    proc, url = start_prediction_service(workdir / "services", env, model_dir=artifacts_dir)
    yield Stack(proc, url, mongo_proc, uri, rec, env)
    proc.stop()
    rec.stop()
    mongo_proc.stop()
