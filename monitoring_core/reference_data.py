"""A model's reference as the monitors use it: checked against the description, typed, de-duplicated.

One definition for the metrics service and the `prepare` command, so the drift evaluators the
command calibrates are the ones the service builds (the calibration cache is keyed by the
reference values each column sees: a different typing would miss every prepared entry).

Typing: categories and class labels become their text (`category_key`: 3, 3.0 and "3" are one
category), as the metrics service's window stores them; numbers become floats; datetimes epoch
seconds. De-duplication: see `deduplicate`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.calibration import MIN_BUCKET, CalibrationCache, CalibrationSettings
from monitoring_core.description import Kind, ModelDescription, category_key
from monitoring_core.drift import DriftEvaluator
from monitoring_core.reference_check import described_columns

log = logging.getLogger(__name__)


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Return datetimes (naive: as they are) as Unix seconds, NaN when missing."""
    times = pd.to_datetime(values, errors="coerce")
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    seconds = (times - pd.Timestamp(0)) / pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=float)


def as_text(values: pd.Series) -> pd.Series:
    """Return categories as their text (`category_key`), None where missing."""
    return pd.Series([None if pd.isna(v) else category_key(v) for v in values], index=values.index, dtype=object)


def typed_reference(description: ModelDescription, frame: pd.DataFrame) -> pd.DataFrame:
    """Return the described columns typed as the window stores them (text categories, float numbers, epochs)."""
    typed = {}
    for column in described_columns(description):
        values = frame[column]
        if column in description.fields_by_name:
            kind = description.feature(column).kind
        elif column in (description.target_column, description.prediction_column):
            kind = Kind.CATEGORICAL if description.is_classification else Kind.NUMERICAL
        else:
            kind = Kind.NUMERICAL
        if kind is Kind.CATEGORICAL:
            typed[column] = as_text(values)
        elif kind is Kind.DATETIME:
            typed[column] = epoch_seconds(values)
        else:
            typed[column] = pd.to_numeric(values, errors="coerce").astype(float)
    return pd.DataFrame(typed, index=frame.index).reset_index(drop=True)


def _fractional(values: pd.Series) -> bool:
    numbers = values.to_numpy(dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    return bool((numbers % 1 != 0).any())


def deduplicate(description: ModelDescription, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Return the frame without exact copies of a row, and how many were dropped.

    Only when some numerical feature holds fractional values (a measurement, not a count or a code):
    there, a whole row repeated exactly, measurement included, is a copy (a join or an append run
    twice), and copies make the drift calibration's holdout null too narrow: a held-out row's twin
    stays in the rest, so held-out samples look closer to the reference than new data ever does, and
    the thresholds come out too low (docs/evidently_service.md "Honest edges"). A reference of
    discrete columns only repeats rows by nature, and is kept as it is.
    """
    if not any(_fractional(frame[name]) for name in description.numerical_features):
        return frame, 0
    kept = frame.drop_duplicates(ignore_index=True)
    return kept, len(frame) - len(kept)


@dataclass(frozen=True)
class Evaluators:
    """A model's drift evaluators: over the whole reference, and per segment on its slice."""

    reference: pd.DataFrame  # typed, de-duplicated
    duplicates_dropped: int
    drift: DriftEvaluator
    segments: dict[str, DriftEvaluator]


def build_evaluators(
    description: ModelDescription,
    raw_reference: pd.DataFrame,
    tests: dict | None,
    dataset_drift_share: float,
    multiple_testing: str,
    calibration: CalibrationSettings | None,
    cache: CalibrationCache | None,
    on_segment_error: Callable[[str, str], None] | None = None,
) -> Evaluators:
    """Type and de-duplicate the reference, then build the whole-reference and per-segment drift evaluators."""
    reference, dropped = deduplicate(description, typed_reference(description, raw_reference))
    args = (tests, dataset_drift_share, multiple_testing, calibration, cache)
    drift = DriftEvaluator(description, reference, *args)
    segments: dict[str, DriftEvaluator] = {}
    if description.segment is not None:
        # Segment drift compares a segment's rows with the reference's rows of the same segment,
        # with thresholds and a minimum size calibrated on those rows.
        for segment, rows in reference.groupby(description.segment_of(reference)):
            if len(rows) < MIN_BUCKET:
                continue
            try:
                # Per-feature verdicts per segment; the joint detector judges the whole window only.
                segments[str(segment)] = DriftEvaluator(description, rows, *args, multivariate=False)
            except ValueError as exc:  # e.g. a column with no value in this segment's reference rows
                if on_segment_error is not None:
                    on_segment_error(str(segment), str(exc))
    return Evaluators(reference, dropped, drift, segments)


def evaluators_for(
    config: Any,
    raw_reference: pd.DataFrame,
    cache: CalibrationCache | None,
    on_segment_error: Callable[[str, str], None] | None = None,
) -> Evaluators:
    """Return `build_evaluators` for one model's `ModelConfig`: what the metrics service and `prepare` both build."""
    return build_evaluators(
        config.description,
        raw_reference,
        config.tests,
        config.dataset_drift_share,
        config.multiple_testing,
        config.calibration,
        cache,
        on_segment_error=on_segment_error,
    )
