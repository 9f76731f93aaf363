"""Fixtures for the batch flow tests: Prefect's temporary server kept quiet, in a temporary home."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its settings once, when first imported: here that is when pytest collects the first test
# module importing prefect_flows, before any fixture runs. So the temporary home is put in the environment
# as this conftest loads (a fixture setting it later would leave Prefect on ~/.prefect). Analytics off and
# the raised start-up timeout come from prefect_flows/__init__.py, imported before Prefect.
PREFECT_ENV = {"PREFECT_HOME": tempfile.mkdtemp(prefix="prefect-home-"), "PREFECT_LOGGING_LEVEL": "WARNING"}
if "prefect" not in sys.modules:  # else (another test module imported Prefect first) in-process runs use its home
    os.environ.update(PREFECT_ENV)


@pytest.fixture(scope="session")
def prefect_env() -> Iterator[dict[str, str]]:
    """Return the variables that point Prefect at the session's temporary home (for subprocesses too)."""
    yield PREFECT_ENV
    shutil.rmtree(PREFECT_ENV["PREFECT_HOME"], ignore_errors=True)


@pytest.fixture(scope="session")
def reference(artifacts_dir: Path):
    """The session model's reference dataset."""
    import pandas as pd

    return pd.read_parquet(artifacts_dir / "reference.parquet")


@pytest.fixture(scope="session")
def taxi_models_dir(tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path) -> Path:
    """A MODELS_DIR holding the taxi example's folder: its committed model.yaml and the session's reference."""
    import shutil

    from monitoring_core.paths import DEFAULT_MODEL_DIR

    models = tmp_path_factory.mktemp("models")
    folder = models / "ride_duration"
    folder.mkdir()
    shutil.copy(DEFAULT_MODEL_DIR / "model.yaml", folder / "model.yaml")
    shutil.copy(artifacts_dir / "reference.parquet", folder / "reference.parquet")
    return models
