"""Data quality of a window against the reference, and model quality over its labelled rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from evidently_service.window import LABEL_TIMESTAMP
from ride_duration.schema import FIELD_NAMES, FIELDS_BY_NAME, TARGET, TIMESTAMP, Kind

QUALITY_METRICS = ("rmse", "mae", "mean_error")
DELAY_QUANTILES = (0.5, 0.9)


@dataclass(frozen=True)
class FeatureQuality:
    """Shares of one field over the window; None where the share does not apply to the field's kind."""

    missing_share: float
    out_of_range_share: float | None
    new_category_share: float | None


@dataclass(frozen=True)
class ReferenceProfile:
    """What data quality compares a window with: numerical ranges and known categories."""

    ranges: dict[str, tuple[float, float]]
    categories: dict[str, np.ndarray]

    @classmethod
    def of(cls, reference: pd.DataFrame) -> ReferenceProfile:
        """Profile every numerical and categorical schema field present in the reference."""
        ranges, categories = {}, {}
        for name in FIELD_NAMES:
            kind = FIELDS_BY_NAME[name].kind
            if name not in reference.columns or kind is Kind.DATETIME:
                continue
            values = pd.to_numeric(reference[name], errors="coerce").dropna()
            if kind is Kind.NUMERICAL and len(values):
                ranges[name] = (float(values.min()), float(values.max()))
            elif kind is Kind.CATEGORICAL:
                categories[name] = np.unique(values.to_numpy(dtype=float))
        return cls(ranges=ranges, categories=categories)


def data_quality(window: pd.DataFrame, profile: ReferenceProfile) -> dict[str, FeatureQuality]:
    """Return missing, out-of-reference-range and new-category shares of every schema field."""
    n = len(window)
    result = {}
    for name in FIELD_NAMES:
        values = window[name].to_numpy(dtype=float)
        present = ~np.isnan(values)
        out_of_range = new_category = None
        if name in profile.ranges:
            low, high = profile.ranges[name]
            out_of_range = float(np.count_nonzero(present & ((values < low) | (values > high))) / n)
        if name in profile.categories:
            known = np.isin(values, profile.categories[name])
            new_category = float(np.count_nonzero(present & ~known) / n)
        result[name] = FeatureQuality(float(1 - present.mean()), out_of_range, new_category)
    return result


def model_quality(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Return RMSE, MAE and mean error (prediction - target, as Evidently) in minutes."""
    error = np.asarray(prediction, dtype=float) - np.asarray(target, dtype=float)
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mean_error": float(np.mean(error)),
    }


def labelled(window: pd.DataFrame) -> pd.DataFrame:
    """Return the window rows that have ground truth."""
    return window[window[TARGET].notna()]


def label_delays(rows: pd.DataFrame) -> dict[float, float]:
    """Return quantiles of the delay (seconds) between prediction and label."""
    delays = (rows[LABEL_TIMESTAMP] - rows[TIMESTAMP]).to_numpy(dtype=float)
    delays = delays[np.isfinite(delays)]
    if not len(delays):
        return {}
    return {q: float(np.quantile(delays, q)) for q in DELAY_QUANTILES}
