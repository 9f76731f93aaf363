"""Drift fixtures shared by the calibration, drift and power tests: one taxi reference, one calibration cache.

The cache lives for the session, so the null simulations (the costly part) run once for all modules.
"""

from __future__ import annotations

import pandas as pd
import pytest

from monitoring_core.calibration import CalibrationCache
from ride_duration.schema import PREDICTION
from ride_duration.synthetic import generate_trips


def with_prediction(frame: pd.DataFrame) -> pd.DataFrame:
    """Add a stand-in model's prediction: a function of the features only, like the real one."""
    frame = frame.copy()
    frame[PREDICTION] = 2.0 + 4.0 * frame["trip_distance"]
    return frame


@pytest.fixture(scope="session")
def taxi_reference() -> pd.DataFrame:
    return with_prediction(generate_trips(5_000, seed=11))


@pytest.fixture(scope="session")
def taxi_unseen() -> pd.DataFrame:
    """A pool of clean rows the reference never saw (another seed)."""
    return with_prediction(generate_trips(40_000, seed=4242))


@pytest.fixture(scope="session")
def calibration_cache(tmp_path_factory: pytest.TempPathFactory) -> CalibrationCache:
    return CalibrationCache(tmp_path_factory.mktemp("calibration") / "reference.parquet.calibration.json")
