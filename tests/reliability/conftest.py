"""Fixtures for the reliability tests: one real stack for the fuzzers and the log checks, shared by their requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_support import TOKEN

from local_stack.reliability import Stack


@pytest.fixture(scope="session")
def stack(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """MongoDB, the metrics service and the prediction service as real processes, token on, DEBUG logs."""
    started = Stack(
        tmp_path_factory.mktemp("stack"),
        artifacts_dir,
        token=TOKEN,
        workers=2,
        extra_env={"LOG_LEVEL": "debug"},
    )
    try:
        yield started.start()
    finally:
        started.stop()
