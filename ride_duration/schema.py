"""The one source of truth for the model's input fields, target and drift tests.

Every other part of the stack (request validation, the metrics service, the batch
flow, the simulator, the dashboards' feature lists) reads the field lists from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo


class Kind(StrEnum):
    """How a field is treated by validation and by drift tests."""

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"


@dataclass(frozen=True)
class DriftTest:
    """An Evidently stat test pinned for one column.

    Pinned because Evidently's default switches test (and the direction of the
    score) with the reference size; see README "Drift tests".
    """

    method: str
    threshold: float

    @property
    def is_p_value(self) -> bool:
        """Whether the score is a p-value (drift when below threshold)."""
        return self.method in P_VALUE_TESTS


# Evidently stat tests whose score is a p-value: drift when score < threshold.
# All others are distances: drift when score >= threshold.
P_VALUE_TESTS = frozenset(
    {
        "ks",
        "chisquare",
        "z",
        "anderson",
        "cramer_von_mises",
        "fisher_exact",
        "g_test",
        "mannw",
        "t_test",
        "epps_singleton",
        "empirical_mmd",
    }
)

# Effect-size tests: with thousands of rows a p-value flags shifts too small to
# matter, while a distance is a shift a person would call drift at any window size.
NUMERICAL_DRIFT = DriftTest(method="wasserstein", threshold=0.1)
# Jensen-Shannon over ~260 sparse zone ids reads ~0.2 between two samples of the SAME
# distribution at 1,000 rows (~0.15 at 2,000, ~0.32 at 300), so Evidently's usual 0.1
# would fire on every window. 0.3 sits above that noise at the services' minimum window
# (1,000 rows); moving 30% of pickups to unseen zones reads ~0.4. Smaller moves show
# first in the new-category share (data quality). Measurements: docs/evidently_service.md.
CATEGORICAL_DRIFT = DriftTest(method="jensenshannon", threshold=0.3)


@dataclass(frozen=True)
class FieldSpec:
    """One input field of a ride as the API accepts it."""

    name: str
    kind: Kind
    description: str
    dtype: type = float
    required: bool = True
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    drift: DriftTest | None = None

    @property
    def monitored(self) -> bool:
        """Whether the drift monitor watches this field."""
        return self.drift is not None


N_ZONES = 265

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec(
        name="lpep_pickup_datetime",
        kind=Kind.DATETIME,
        dtype=str,
        required=False,
        description="Pickup time (ISO-8601); without it the model leaves out the time-of-day features.",
    ),
    FieldSpec(
        name="PULocationID",
        kind=Kind.CATEGORICAL,
        dtype=int,
        minimum=1,
        maximum=N_ZONES,
        drift=CATEGORICAL_DRIFT,
        description="TLC taxi zone of the pickup (1-265).",
    ),
    FieldSpec(
        name="DOLocationID",
        kind=Kind.CATEGORICAL,
        dtype=int,
        minimum=1,
        maximum=N_ZONES,
        drift=CATEGORICAL_DRIFT,
        description="TLC taxi zone of the dropoff (1-265).",
    ),
    FieldSpec(
        name="trip_distance",
        kind=Kind.NUMERICAL,
        dtype=float,
        minimum=0.0,
        maximum=200.0,
        drift=NUMERICAL_DRIFT,
        description="Trip distance in miles as known at dispatch.",
    ),
    FieldSpec(
        name="passenger_count",
        kind=Kind.NUMERICAL,
        dtype=int,
        required=False,
        nullable=True,
        minimum=0,
        maximum=9,
        drift=NUMERICAL_DRIFT,
        description="Passengers reported by the driver; often missing in TLC data.",
    ),
)

FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
MONITORED_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.monitored)
NUMERICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in MONITORED_FIELDS if f.kind is Kind.NUMERICAL)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in MONITORED_FIELDS if f.kind is Kind.CATEGORICAL)
DATETIME_FIELD = "lpep_pickup_datetime"
# TLC pickup times are naive local times in New York: a time with an offset is converted to this
# zone before any feature (hour of day, weekend) is taken, so 13:30Z and 08:30 (EST) are the same ride.
LOCAL_TIMEZONE = ZoneInfo("America/New_York")


def local_time(value: datetime) -> datetime:
    """Return a pickup time as naive New York local time (naive input is taken to be New York time already)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value
    return value.astimezone(LOCAL_TIMEZONE).replace(tzinfo=None)


TARGET = "duration"
TARGET_UNIT = "minutes"
PREDICTION = "prediction"
PREDICTION_DRIFT = NUMERICAL_DRIFT
REQUEST_ID = "request_id"
TIMESTAMP = "timestamp"

# Trips outside this range are dropped from training data, as in the course.
MIN_DURATION_MINUTES = 1.0
MAX_DURATION_MINUTES = 60.0

# The segment dimension: pickup borough, derived from the pickup zone (7 values, bounded).
SEGMENT = "pickup_borough"
SEGMENT_SOURCE = "PULocationID"


def drift_tests() -> dict[str, DriftTest]:
    """Return the pinned drift test of every monitored column, prediction included."""
    tests = {f.name: f.drift for f in MONITORED_FIELDS if f.drift is not None}
    tests[PREDICTION] = PREDICTION_DRIFT
    return tests


def column_kind(column: str) -> Kind:
    """Return the kind of a monitored column (the prediction is numerical)."""
    if column == PREDICTION:
        return Kind.NUMERICAL
    return FIELDS_BY_NAME[column].kind
