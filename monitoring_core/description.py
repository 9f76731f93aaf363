"""The model description: what a user writes in `models/<name>/model.yaml` to have a model monitored.

Everything the stack derives per model (request validation, forwarded rows, the metrics
service's window, data quality, drift tests and their calibration, segments, labels typed by
the task, the batch flow's Evidently DataDefinition, dashboard panels and alert thresholds)
reads one `ModelDescription`. No module of the core knows a particular model: the shipped
examples are folders under `models/` like any user's. Key reference: docs/model_description.md
(and the JSON Schema `python -m monitoring_core.model_folder schema` prints).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Names the stack itself uses for a served prediction: they cannot also be a feature's name.
REQUEST_ID = "request_id"
TIMESTAMP = "timestamp"
# The logged document's own keys (monitoring_core/documents.py) are reserved too.
RESERVED_NAMES = frozenset(
    {REQUEST_ID, TIMESTAMP, "id", "model_name", "model_version", "unknown_fields", "extra_fields"}
    | {"target", "target_timestamp", "expire_at"}
)
# Keys of every /predict answer: prediction.answer_keys cannot repeat the prediction under one of them.
ANSWER_KEYS = frozenset({REQUEST_ID, "prediction", "model_version", "probabilities"})
# A column name as data sets spell them: letters (any script), digits, spaces and `_ . - ( ) / % #` (scikit-learn's
# "mean radius", "sepal length (cm)", "od280/od315_of_diluted_wines"); no leading digit, space or `$` (MongoDB
# operators), no trailing space, no control characters or quotes (JSON keys, PromQL label values stay plain).
NAME_PATTERN = r"^[^\W\d](?:[\w .()/%#\-]{0,62}[\w.()%#\-])?$"
NAME_RULE = (
    "is not a usable column name: up to 64 letters (any script), digits, spaces and _ . - ( ) / % #, "
    "starting with a letter or _ and not ending with a space"
)
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
UNKNOWN_SEGMENT = "Unknown"
OTHER_SEGMENT = "Other"  # a value a segment map does not name
MAX_CATEGORY_LENGTH = 256  # characters of one text category a request may carry (the reference check holds to it)
DEFAULT_RETENTION_DAYS = 7.0  # days a logged prediction stays in MongoDB (the description's `retention_days`)


class Kind(StrEnum):
    """How a column is treated by validation and by drift tests."""

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"


class Task(StrEnum):
    """What the model predicts."""

    REGRESSION = "regression"
    CLASSIFICATION = "classification"


@dataclass(frozen=True)
class DriftTest:
    """An Evidently stat test pinned for one column.

    Pinned because Evidently's default switches test (and the direction of the score) with the
    reference size; see docs/evidently_service.md "Drift tests".
    """

    method: str
    threshold: float
    # A categorical feature's unseen-values test: the share of rows on values the reference never saw,
    # beyond the reference's own expected unseen mass, that counts as a shift (None: DEFAULT_UNSEEN_FLOOR).
    unseen_floor: float | None = None

    @property
    def is_p_value(self) -> bool:
        """Whether the score is a p-value (drift when below threshold)."""
        return self.method in P_VALUE_TESTS


# Evidently stat tests whose score is a p-value: drift when score < threshold. All others are distances.
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

# Effect-size floors per kind, used where a description names no test for a column. A distance is a
# shift a person would call drift at any window size; a p-value flags shifts too small to matter once
# windows hold thousands of rows. The calibration (monitoring_core/calibration.py) never goes below them (for a
# number: below what a shift of the floor's size scores in 95% of windows, FLOOR_POWER there).
# Numbers: normed Wasserstein (Wasserstein distance / reference std) 0.1. Categories: total variation
# distance ("tv", monitoring_core/drift.py), the share of rows whose category moved, 0.1: it means the
# same for 2 or 260 categories (Jensen-Shannon's noise and reach depend on the count), and 10% of rows
# moving between known categories is a shift a person calls drift (docs/evidently_service.md).
DEFAULT_DRIFT: dict[Kind, DriftTest] = {
    Kind.NUMERICAL: DriftTest(method="wasserstein", threshold=0.1),
    Kind.CATEGORICAL: DriftTest(method="tv", threshold=0.1),
}
# 5% of rows on values the model never saw, beyond what clean data brings, is actionable; less in a
# huge window is not drift (docs/evidently_service.md "Unseen values").
DEFAULT_UNSEEN_FLOOR = 0.05

# Model-quality metrics per task: the keys of `alerts` and of the exported quality metrics.
REGRESSION_METRICS = ("rmse", "mae", "mean_error")
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "log_loss", "brier")
# Which way is worse for each metric: an alert bound is `max` for these, `min` for the others.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss", "brier"})

PYTHON_TYPES: dict[str, type] = {"float": float, "int": int, "str": str, "bool": bool}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftOverride(_Strict):
    """A column's stat test and threshold (the effect-size floor for a distance), and its unseen floor.

    Each key left out keeps the kind's default; a stat test other than the default needs its threshold.
    """

    stattest: str | None = None
    threshold: float | None = Field(default=None, gt=0)
    unseen_floor: float | None = Field(default=None, gt=0, le=1)


class FeatureSpec(_Strict):
    """One input field of a request, as the API accepts it and the monitors watch it."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    kind: Kind
    type: Literal["float", "int", "str", "bool"] | None = None  # default: float, str for categories, str for datetimes
    description: str = ""
    required: bool = True
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str | int | bool, ...] | None = None  # the known categories (optional: the reference has them too)
    timezone: str | None = None  # datetimes: naive inputs are in this zone; offsets are converted to it
    monitor: bool = True  # drift and data quality watch it (datetimes: data quality only)
    drift: DriftOverride | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum ({self.minimum}) exceeds maximum ({self.maximum})")
        if self.kind is Kind.DATETIME and self.type not in (None, "str"):
            raise ValueError("a datetime feature is sent as an ISO-8601 string: leave `type` out")
        if self.kind is Kind.NUMERICAL and self.type in ("str", "bool"):
            raise ValueError("a numerical feature has type float or int")
        if (self.minimum is not None or self.maximum is not None) and self.python_type not in (int, float):
            raise ValueError("minimum/maximum apply to numbers only")
        if self.timezone is not None:
            if self.kind is not Kind.DATETIME:
                raise ValueError("timezone applies to datetime features only")
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        if self.values is not None and self.kind is not Kind.CATEGORICAL:
            raise ValueError("values apply to categorical features only")
        if self.drift is not None and self.kind in DEFAULT_DRIFT:
            default = DEFAULT_DRIFT[self.kind]
            if self.drift.stattest not in (None, default.method) and self.drift.threshold is None:
                raise ValueError(f"drift.threshold: stattest {self.drift.stattest!r} needs its threshold")
            if self.drift.unseen_floor is not None and self.kind is not Kind.CATEGORICAL:
                raise ValueError("drift.unseen_floor applies to categorical features only")
        return self

    @property
    def python_type(self) -> type:
        """Return the Python type of the field's values."""
        if self.type is not None:
            return PYTHON_TYPES[self.type]
        return float if self.kind is Kind.NUMERICAL else str

    # The name the validation code has always used for the value type.
    dtype = python_type

    @property
    def monitored(self) -> bool:
        """Whether drift is tested on this field."""
        return self.monitor and self.kind is not Kind.DATETIME

    @property
    def drift_test(self) -> DriftTest | None:
        """Return the pinned test of a monitored field (its override, else the kind's default)."""
        if not self.monitored:
            return None
        default = DEFAULT_DRIFT[self.kind]
        if self.drift is None:
            return default
        return DriftTest(
            self.drift.stattest or default.method,
            self.drift.threshold if self.drift.threshold is not None else default.threshold,
            self.drift.unseen_floor,
        )

    @cached_property
    def zone(self) -> ZoneInfo | None:
        """Return the datetime's time zone, if the description names one."""
        return ZoneInfo(self.timezone) if self.timezone else None

    def local_time(self, value: datetime) -> datetime:
        """Return a datetime as naive local time of the feature's zone (naive input is taken as local already)."""
        if self.zone is None:
            if value.tzinfo is None or value.utcoffset() is None:
                return value
            return value.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
        if value.tzinfo is None or value.utcoffset() is None:
            return value
        return value.astimezone(self.zone).replace(tzinfo=None)


class TargetSpec(_Strict):
    """The ground truth: the label `/feedback` takes (named like the column), with its unit and bounds."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    unit: str = ""
    description: str = ""
    minimum: float | None = None  # regression: a label below is refused (a unit or clock error upstream)
    maximum: float | None = None
    exclusive_minimum: bool = False  # e.g. a duration of 0 is no observation


class PredictionSpec(_Strict):
    """Where the model's answer is: the column in the reference, extra answer keys, class probabilities."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "prediction"
    # Keys the /predict answer repeats the prediction under besides `prediction` (existing clients' names).
    answer_keys: tuple[str, ...] = ()
    unit: str = ""
    # Classification: the reference column holding each class's probability, by class.
    probabilities: dict[str, str] | None = None


class SegmentSpec(_Strict):
    """One segment dimension: a column's values, mapped or binned to a bounded set of segment names."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    column: str
    map: dict[str, str] | None = None  # value (as text) -> segment; values not in it are "Other"
    bins: tuple[float, ...] | None = None  # ascending edges for a numerical column
    labels: tuple[str, ...] | None = None  # one per bin (len(bins) - 1); default "[a, b)"
    max_segments: int = Field(default=20, ge=1, le=200)  # a column used as it is must stay a bounded label

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: Any) -> Any:
        # YAML reads `1: Manhattan` with an integer key; rows are matched on the value's text.
        if isinstance(value, dict):
            return {_as_key(k): str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> SegmentSpec:
        if self.map is not None and self.bins is not None:
            raise ValueError("give either map or bins, not both")
        if self.bins is not None:
            if len(self.bins) < 2 or list(self.bins) != sorted(set(self.bins)):
                raise ValueError("bins must be at least two ascending edges")
            if self.labels is not None and len(self.labels) != len(self.bins) - 1:
                raise ValueError(f"labels needs {len(self.bins) - 1} names (one per bin)")
        elif self.labels is not None:
            raise ValueError("labels apply to bins only")
        return self

    def bin_labels(self) -> list[str]:
        """Return the bins' segment names: `labels`, else "[a, b)" per bin (bins only)."""
        edges = self.bins or ()
        return list(self.labels or [f"[{a:g}, {b:g})" for a, b in zip(edges, edges[1:], strict=False)])

    def outside_labels(self) -> tuple[str, str]:
        """Return the segment names of a value below the first edge and of one at or above the last (bins only)."""
        edges = self.bins or (0.0, 0.0)
        return f"< {edges[0]:g}", f">= {edges[-1]:g}"

    def names(self) -> set[str] | None:
        """Return every segment name this rule can give (None when the column's values are used as they are)."""
        if self.map is not None:
            return set(self.map.values()) | {OTHER_SEGMENT, UNKNOWN_SEGMENT}
        if self.bins is not None:
            return {*self.bin_labels(), *self.outside_labels(), UNKNOWN_SEGMENT}
        return None

    def segment_of(self, values: pd.Series) -> pd.Series:
        """Return each row's segment name; UNKNOWN_SEGMENT where the value is missing.

        A number outside the bins is in "< first edge" or ">= last edge", never in Unknown with the
        missing ones (a segment of present values named Unknown would hide where they are).
        """
        if self.bins is not None:
            numbers = pd.to_numeric(values, errors="coerce")
            binned = pd.cut(numbers, bins=list(self.bins), labels=self.bin_labels(), right=False)
            named = binned.astype(object).where(binned.notna(), UNKNOWN_SEGMENT)
            below, above = self.outside_labels()
            named[numbers < self.bins[0]] = below
            named[numbers >= self.bins[-1]] = above
            return named
        present = values.dropna()
        lookup = {v: self._segment(v) for v in pd.unique(present)}
        return values.map(lookup).fillna(UNKNOWN_SEGMENT).astype(object)

    def _segment(self, value: Any) -> str:
        key = _as_key(value)
        if self.map is not None:
            return self.map.get(key, OTHER_SEGMENT)
        return key


def _as_key(value: Any) -> str:
    """Return a category value's text: 3, 3.0 and "3" are one category."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


category_key = _as_key


class AlertBound(_Strict):
    """A model-quality alert threshold: fire when the metric goes above `max` or below `min`."""

    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _one(self) -> AlertBound:
        if (self.max is None) == (self.min is None):
            raise ValueError("give exactly one of max or min")
        return self


class ModelDescription(_Strict):
    """A model's description (`model.yaml`): its task, columns, segments, drift tests and alert thresholds."""

    name: Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]
    task: Task
    description: str = ""
    classes: tuple[str | int | bool, ...] | None = None
    target: TargetSpec
    prediction: PredictionSpec = PredictionSpec()
    features: tuple[FeatureSpec, ...] = Field(min_length=1)
    id: str | None = None  # a reference/input column that is the row's own id (sent as request_id)
    timestamp: str | None = None  # a reference column with the row's time (for the simulator's order)
    segments: tuple[SegmentSpec, ...] = ()
    alerts: dict[str, AlertBound] = Field(default_factory=dict)
    model: str | None = None  # the model's file or MLflow folder in the model folder (default: found by name)
    reference: str = "reference.parquet"
    # How long MongoDB keeps a logged prediction (its TTL `expire_at`): longer than the latest label you expect
    # (a label must still find its document) and than the archive flow's lag (docs/archive.md).
    retention_days: float = Field(default=DEFAULT_RETENTION_DAYS, gt=0)

    def __hash__(self) -> int:
        # Descriptions key the caches of generated request models; fields hold dicts, so hash the content.
        return hash(self._content_key)

    @cached_property
    def _content_key(self) -> str:
        return self.model_dump_json()

    @model_validator(mode="after")
    def _consistent(self) -> ModelDescription:
        names = [f.name for f in self.features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"features: duplicated name(s) {duplicated}")
        clash = sorted(set(names) & (RESERVED_NAMES | {self.target.name, self.prediction.name}))
        if clash:
            raise ValueError(f"features: name(s) {clash} are reserved for the stack, the target or the prediction")
        # The label's key beside request_id, the logged document's and the answer's keys: none may be another's.
        # (`target` itself is a fine target name: the label is stored under it anyway.)
        if self.target.name in RESERVED_NAMES - {"target"}:
            raise ValueError(f"target.name: {self.target.name!r} is reserved for the stack")
        if self.prediction.name in RESERVED_NAMES | {self.target.name}:
            raise ValueError(f"prediction.name: {self.prediction.name!r} is reserved for the stack or is the target")
        answer_clash = sorted(set(self.prediction.answer_keys) & ANSWER_KEYS)
        if answer_clash:
            raise ValueError(f"prediction.answer_keys: {answer_clash} are keys the answer already has")
        taken = set(names) | RESERVED_NAMES | {self.target.name, self.prediction.name}
        columns = list((self.prediction.probabilities or {}).values())
        taken_columns = sorted({c for c in columns if c in taken or columns.count(c) > 1})
        if taken_columns:
            raise ValueError(
                f"prediction.probabilities: column(s) {taken_columns} are features, the target, the prediction, "
                "reserved, or given twice"
            )
        if self.task is Task.CLASSIFICATION:
            if not self.classes or len(self.classes) < 2:
                raise ValueError("classes: a classifier needs at least two classes")
            if len({_as_key(c) for c in self.classes}) != len(self.classes):
                raise ValueError("classes: duplicated class")
            if self.prediction.probabilities is not None:
                unknown = sorted(set(self.prediction.probabilities) - {_as_key(c) for c in self.classes})
                if unknown:
                    raise ValueError(f"prediction.probabilities: unknown class(es) {unknown}")
        elif self.classes is not None:
            raise ValueError("classes: only for task classification")
        elif self.prediction.probabilities is not None:
            raise ValueError("prediction.probabilities: only for task classification")
        known = self.metric_names
        for metric in self.alerts:
            if metric not in known:
                raise ValueError(
                    f"alerts: unknown metric {metric!r} for a {self.task.value} model; known: {list(known)}"
                )
        for segment in self.segments:
            if segment.column not in names:
                raise ValueError(f"segments: column {segment.column!r} is not a feature")
        for override in (self.id, self.timestamp):
            if override is not None and override in names:
                raise ValueError(f"id/timestamp column {override!r} is also a feature")
        return self

    @property
    def retention(self) -> timedelta:
        """Return how long MongoDB keeps a logged prediction of this model (its TTL)."""
        return timedelta(days=self.retention_days)

    # -- columns -------------------------------------------------------------------------------------------
    @property
    def is_classification(self) -> bool:
        """Whether the model is a classifier."""
        return self.task is Task.CLASSIFICATION

    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        """Return every input field's name, in the description's order."""
        return tuple(f.name for f in self.features)

    @cached_property
    def fields_by_name(self) -> dict[str, FeatureSpec]:
        """Return each input field by name."""
        return {f.name: f for f in self.features}

    def feature(self, name: str) -> FeatureSpec:
        """Return one input field."""
        return self.fields_by_name[name]

    @cached_property
    def monitored_features(self) -> tuple[FeatureSpec, ...]:
        """Return the fields drift is tested on."""
        return tuple(f for f in self.features if f.monitored)

    @cached_property
    def numerical_features(self) -> tuple[str, ...]:
        """Return the monitored numerical fields."""
        return tuple(f.name for f in self.monitored_features if f.kind is Kind.NUMERICAL)

    @cached_property
    def categorical_features(self) -> tuple[str, ...]:
        """Return the monitored categorical fields."""
        return tuple(f.name for f in self.monitored_features if f.kind is Kind.CATEGORICAL)

    @cached_property
    def datetime_features(self) -> tuple[str, ...]:
        """Return the datetime fields."""
        return tuple(f.name for f in self.features if f.kind is Kind.DATETIME)

    @property
    def prediction_column(self) -> str:
        """Return the prediction's column name (in the reference, the window and the logged document)."""
        return self.prediction.name

    @property
    def target_column(self) -> str:
        """Return the target's column name (in the reference; the label's key in /feedback)."""
        return self.target.name

    @cached_property
    def class_keys(self) -> tuple[str, ...]:
        """Return the classes as text (how they are stored in the window and compared)."""
        return tuple(_as_key(c) for c in self.classes or ())

    @cached_property
    def probability_columns(self) -> dict[str, str]:
        """Return the reference column of each class's probability (classification with probabilities)."""
        return dict(self.prediction.probabilities or {})

    def column_kind(self, column: str) -> Kind:
        """Return the kind of a monitored column: a feature, the prediction or a class probability."""
        if column == self.prediction_column:
            return Kind.CATEGORICAL if self.is_classification else Kind.NUMERICAL
        if column in self.probability_columns.values():
            return Kind.NUMERICAL
        return self.fields_by_name[column].kind

    def drift_tests(self) -> dict[str, DriftTest]:
        """Return the pinned test of every monitored column: features, then the prediction (and probabilities)."""
        tests = {f.name: f.drift_test for f in self.monitored_features if f.drift_test is not None}
        tests[self.prediction_column] = DEFAULT_DRIFT[self.column_kind(self.prediction_column)]
        for column in self.probability_columns.values():
            tests[column] = DEFAULT_DRIFT[Kind.NUMERICAL]
        return tests

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Return the columns a served prediction adds to its row: the prediction and class probabilities."""
        return (self.prediction_column, *self.probability_columns.values())

    # -- quality ---------------------------------------------------------------------------------------------
    @property
    def metric_names(self) -> tuple[str, ...]:
        """Return the model-quality metrics of the task."""
        return CLASSIFICATION_METRICS if self.is_classification else REGRESSION_METRICS

    def alert_bounds(self) -> dict[str, tuple[str, float]]:
        """Return {metric: ("max" | "min", value)} of the model-quality alerts."""
        return {m: ("max", b.max) if b.max is not None else ("min", b.min) for m, b in self.alerts.items()}

    # -- segments -------------------------------------------------------------------------------------------
    @property
    def segment(self) -> SegmentSpec | None:
        """Return the segment dimension the monitors split by (the first one described), if any."""
        return self.segments[0] if self.segments else None

    def segment_of(self, frame: pd.DataFrame) -> pd.Series:
        """Return each row's segment (UNKNOWN_SEGMENT where its column is missing)."""
        spec = self.segment
        if spec is None:
            return pd.Series(UNKNOWN_SEGMENT, index=frame.index, dtype=object)
        return spec.segment_of(frame[spec.column])

    def with_segment(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return `frame` with the segment column added (named as the description says)."""
        if self.segment is None:
            return frame
        return frame.assign(**{self.segment.name: self.segment_of(frame)})


class DescriptionError(ValueError):
    """A model description is missing or invalid; the message is one line naming the file and the key."""


def parse_description(raw: Any, source: str = "model.yaml") -> ModelDescription:
    """Validate a description read from YAML; raise DescriptionError with one line naming the key."""
    try:
        return ModelDescription.model_validate(raw)
    except ValidationError as exc:
        # A misspelt key is an unknown key and, often, a required one missing: name the misspelling first.
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(first["loc"][-1]), _KNOWN_KEYS, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif first["type"] == "string_pattern_mismatch" and first["ctx"]["pattern"] == NAME_PATTERN:
            message = f"{first['input']!r} {NAME_RULE}"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DescriptionError(f"{source}: {key}: {message}{more}") from exc


# Every key a description's mappings may hold, for "did you mean" on an unknown one.
_KNOWN_KEYS = sorted(
    {
        name
        for spec in (ModelDescription, FeatureSpec, TargetSpec, PredictionSpec, SegmentSpec, AlertBound, DriftOverride)
        for name in spec.model_fields
    }
)
