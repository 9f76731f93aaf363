"""The columns a model's batch run reads and reports, and their types: all from the model's description.

Logged documents and the reference are typed the same way, so a category compares equal on both sides:
categories the description types `str` (or `bool`) and a classifier's classes are text (`category_key`:
3, 3.0 and "3" are one class), numbers are floats (integer categories stay integers when none is missing),
and datetimes are naive local times of the feature's zone (as `FeatureSpec.local_time` gives them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from monitoring_core.description import REQUEST_ID, TIMESTAMP, Kind, ModelDescription, category_key
from monitoring_core.documents import MODEL_VERSION, TARGET

__all__ = ["MODEL_VERSION", "REQUEST_ID", "TARGET", "TIMESTAMP"]


def report_features(description: ModelDescription) -> tuple[str, ...]:
    """Return the features the reports show: every feature the description monitors (datetimes included)."""
    return tuple(f.name for f in description.features if f.monitor)


def logged_fields(description: ModelDescription) -> tuple[str, ...]:
    """Return the document keys a run reads: the reported features, the outputs, the label, version, id and time."""
    return (*report_features(description), *description.output_columns, TARGET, MODEL_VERSION, REQUEST_ID, TIMESTAMP)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and value != value)


def _text(values: pd.Series) -> pd.Series:
    """Return category values as text (None where missing)."""
    return values.map(lambda v: None if _missing(v) else category_key(v)).astype(object)


def _numbers(values: pd.Series, integers: bool = False) -> pd.Series:
    """Return values as float64 (NaN where missing), or int64 for integer categories without a missing value."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    if integers and len(numbers) and numbers.notna().all() and (numbers % 1 == 0).all():
        return numbers.astype("int64")
    return numbers


def _local_time(spec: Any, value: Any) -> Any:
    if _missing(value):
        return pd.NaT
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return pd.NaT
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        return pd.NaT
    return spec.local_time(value)


def _datetimes(spec: Any, values: pd.Series) -> pd.Series:
    """Return datetimes as naive local times of the feature's zone (ISO strings as logged, or datetimes)."""
    if pd.api.types.is_datetime64_dtype(values.dtype) and getattr(values.dt, "tz", None) is None:
        return values  # already naive local times (how the reference stores them)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(spec.zone or "UTC").dt.tz_localize(None)
    return pd.to_datetime(values.map(lambda v: _local_time(spec, v)), errors="coerce")


def typed(description: ModelDescription, frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` with the described columns it holds typed as the description says (others untouched)."""
    columns: dict[str, pd.Series] = {}
    for name in report_features(description):
        if name not in frame.columns:
            continue
        spec = description.feature(name)
        if spec.kind is Kind.DATETIME:
            columns[name] = _datetimes(spec, frame[name])
        elif spec.kind is Kind.CATEGORICAL and spec.python_type in (str, bool):
            columns[name] = _text(frame[name])
        else:
            columns[name] = _numbers(frame[name], integers=spec.kind is Kind.CATEGORICAL and spec.python_type is int)
    for name in (description.prediction_column, description.target_column):
        if name in frame.columns:
            columns[name] = _text(frame[name]) if description.is_classification else _numbers(frame[name])
    for name in description.probability_columns.values():
        if name in frame.columns:
            columns[name] = _numbers(frame[name])
    return frame.assign(**columns)
