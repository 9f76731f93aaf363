"""The ride-duration example's columns, read from its model folder's description (models/ride_duration/model.yaml).

The example's own code (training, the synthetic generator, the TLC loader, the feature builder)
uses these names; the stack itself never imports this module: it reads any model's description.
"""

from __future__ import annotations

from datetime import datetime

from monitoring_core.description import REQUEST_ID, TIMESTAMP, DriftTest, FeatureSpec, Kind  # noqa: F401 (re-exported)
from monitoring_core.model_folder import read_description
from monitoring_core.paths import DEFAULT_MODEL_DIR

DESCRIPTION = read_description(DEFAULT_MODEL_DIR / "model.yaml")

FIELDS: tuple[FeatureSpec, ...] = DESCRIPTION.features
FIELDS_BY_NAME: dict[str, FeatureSpec] = DESCRIPTION.fields_by_name
FIELD_NAMES: tuple[str, ...] = DESCRIPTION.feature_names
MONITORED_FIELDS: tuple[FeatureSpec, ...] = DESCRIPTION.monitored_features
NUMERICAL_FEATURES: tuple[str, ...] = DESCRIPTION.numerical_features
CATEGORICAL_FEATURES: tuple[str, ...] = DESCRIPTION.categorical_features
DATETIME_FIELD = "lpep_pickup_datetime"
N_ZONES = int(FIELDS_BY_NAME["PULocationID"].maximum or 265)

TARGET = DESCRIPTION.target.name
TARGET_UNIT = DESCRIPTION.target.unit
PREDICTION = DESCRIPTION.prediction_column

# Trips outside this range are dropped from training data, as in the course.
MIN_DURATION_MINUTES = 1.0
MAX_DURATION_MINUTES = 60.0

SEGMENT = DESCRIPTION.segment.name if DESCRIPTION.segment else "segment"
SEGMENT_SOURCE = DESCRIPTION.segment.column if DESCRIPTION.segment else "PULocationID"


def local_time(value: datetime) -> datetime:
    """Return a pickup time as naive New York local time (naive input is taken to be New York time already)."""
    return FIELDS_BY_NAME[DATETIME_FIELD].local_time(value)


def drift_tests() -> dict[str, DriftTest]:
    """Return the pinned drift test of every monitored column, prediction included."""
    return DESCRIPTION.drift_tests()


def column_kind(column: str) -> Kind:
    """Return the kind of a monitored column (the prediction is numerical)."""
    return DESCRIPTION.column_kind(column)
