"""Fixtures shared by every test: real local processes on free loopback ports.

Each fixture starts its process with its own pid/log files, waits for readiness by
polling, and stops it by PID at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local_stack.components import start_mongo, start_prometheus, start_service
from local_stack.processes import ManagedProcess
from ride_duration.train import train


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train a small model once per session; return the folder with model.pkl and reference.parquet."""
    out = tmp_path_factory.mktemp("artifacts")
    train(source="synthetic", rows=8_000, seed=7, out_dir=out, month="2021-01", data_dir=out)
    return out


@pytest.fixture
def mongo(tmp_path: Path) -> Iterator[tuple[ManagedProcess, str]]:
    """A MongoDB wire server (nx-27017, in memory) on a free port: (process, uri)."""
    proc, uri = start_mongo(tmp_path / "mongo")
    yield proc, uri
    proc.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[str], tuple[ManagedProcess, str]]]:
    """Start a real Prometheus from a config text: factory(config_yaml) -> (process, url)."""
    started: list[ManagedProcess] = []

    def factory(
        config: str, rule_files: dict[str, str] | None = None, port: int | None = None
    ) -> tuple[ManagedProcess, str]:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        for name, text in (rule_files or {}).items():
            (workdir / name).write_text(text)
        config_file = workdir / "prometheus.yml"
        config_file.write_text(config)
        proc, url = start_prometheus(config_file, workdir, port=port)
        started.append(proc)
        return proc, url

    yield factory
    for proc in started:
        proc.stop()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., tuple[ManagedProcess, str]]]:
    """Start one of our services as a real process: factory(module, env) -> (process, url)."""
    started: list[ManagedProcess] = []

    def factory(module: str, env: dict[str, str], **kwargs) -> tuple[ManagedProcess, str]:
        proc, url = start_service(module, tmp_path / "services", env, **kwargs)
        started.append(proc)
        return proc, url

    yield factory
    for proc in started:
        proc.stop()
