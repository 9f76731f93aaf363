"""The one adapter between the stack and Evidently's drift stat tests.

Online (the metrics service) and batch (the Prefect flow) drift both go through here, so
an Evidently upgrade touches this file only. `DriftEvaluator` prepares the reference once
and calls Evidently's pinned stat tests directly, giving the scores an Evidently `Report`
with `report_drift_metrics()` computes, without the Report's widget rendering.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ride_duration.schema import PREDICTION, DriftTest, Kind, column_kind, drift_tests

MULTIPLE_TESTING = ("none", "bonferroni", "bh")


@dataclass(frozen=True)
class ColumnDrift:
    """The pinned stat test's outcome for one column.

    `threshold` is the threshold the score was compared with: the pinned one, or the
    corrected one when a multiple-testing correction applies to a p-value test.
    `score` is NaN when the window holds no usable value of the column (no verdict).
    """

    column: str
    stattest: str
    threshold: float
    score: float
    detected: bool


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift and the dataset verdict (share over monitored features, prediction excluded)."""

    columns: dict[str, ColumnDrift]
    drifted_share: float
    dataset_drift: bool


def _evidently_column_type(column: str) -> Any:
    from evidently.legacy.core import ColumnType

    return ColumnType.Categorical if column_kind(column) is Kind.CATEGORICAL else ColumnType.Numerical


def _clean(series: pd.Series) -> pd.Series:
    # Exactly Evidently's cleaning in get_one_column_drift: infinities become NaN, NaN rows are dropped.
    # Missing values are a data-quality signal, not drift.
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy()
        return series[np.isfinite(values)]
    return series.replace([-np.inf, np.inf], np.nan).dropna()


def _wasserstein_sorted(reference_sorted: np.ndarray, current: np.ndarray) -> float:
    """Return scipy.stats.wasserstein_distance(reference, current) with the reference sorted beforehand.

    The same steps as scipy's `_cdf_distance` for p=1 without weights (sorting the 5,000
    reference values on every call was half of the cost).
    """
    current_sorted = np.sort(current)
    all_values = np.concatenate((reference_sorted, current_sorted))
    all_values.sort(kind="mergesort")
    deltas = np.diff(all_values)
    reference_cdf = reference_sorted.searchsorted(all_values[:-1], "right") / reference_sorted.size
    current_cdf = current_sorted.searchsorted(all_values[:-1], "right") / current_sorted.size
    return float(np.dot(np.abs(reference_cdf - current_cdf), deltas))


class _PreparedColumn:
    """One column's reference, cleaned and prepared once for its pinned stat test."""

    def __init__(self, column: str, test: DriftTest, reference: pd.Series) -> None:
        from evidently.legacy.calculations.stattests import get_stattest

        self.column = column
        self.test = test
        self.column_type = _evidently_column_type(column)
        self.reference = _clean(reference).reset_index(drop=True)
        if self.reference.empty:
            raise ValueError(f"reference column {column!r} has no usable value")
        # With an explicit method the test does not depend on the data: resolve it once.
        self.stattest = get_stattest(self.reference, self.reference, self.column_type, test.method)
        self._fast = self._prepare_fast()

    def _prepare_fast(self) -> Callable[[np.ndarray], float] | None:
        """Return Evidently's formula for the pinned method on reference statistics computed once, if known.

        Only the two methods the schema pins have a fast path, each the exact formula of
        Evidently 0.7's implementation (wasserstein_distance_norm.py: scipy's Wasserstein
        distance over the reference's std; jensenshannon.py with utils.get_binned_data);
        every other method calls Evidently's stat test as is. The parity tests compare both
        paths with an Evidently Report.
        """
        from scipy.spatial import distance

        if not pd.api.types.is_numeric_dtype(self.reference.dtype):
            return None
        values = self.reference.to_numpy(dtype=float)
        if self.test.method == "wasserstein" and column_kind(self.column) is not Kind.CATEGORICAL:
            norm = max(float(np.std(self.reference)), 0.001)
            ordered = np.sort(values)
            return lambda current: _wasserstein_sorted(ordered, current) / norm
        if self.test.method == "jensenshannon" and column_kind(self.column) is Kind.CATEGORICAL:
            # Categorical: one bin per value seen in either sample, shares of each sample's length.
            keys, counts = np.unique(values, return_counts=True)
            shares = counts / len(values)

            def jensenshannon(current: np.ndarray) -> float:
                current_keys, current_counts = np.unique(current, return_counts=True)
                union = np.union1d(keys, current_keys)
                reference_percents = np.zeros(len(union))
                reference_percents[np.searchsorted(union, keys)] = shares
                current_percents = np.zeros(len(union))
                current_percents[np.searchsorted(union, current_keys)] = current_counts / len(current)
                return distance.jensenshannon(reference_percents, current_percents)

            return jensenshannon
        return None

    def score(self, current: pd.Series) -> tuple[float, bool]:
        """Return (score, Evidently's verdict) of the pinned test on `current`; NaN score when no data."""
        cur = _clean(current)
        if cur.empty:
            return float("nan"), False
        if self._fast is not None and pd.api.types.is_numeric_dtype(cur.dtype):
            score = float(self._fast(cur.to_numpy(dtype=float)))
            return score, score >= self.test.threshold  # both pinned methods are distances
        result = self.stattest(self.reference, cur, self.column_type, self.test.threshold)
        return float(result.drift_score), bool(result.drifted)


class DriftEvaluator:
    """Evaluate drift of current windows against one reference prepared once."""

    def __init__(
        self,
        reference: pd.DataFrame,
        tests: Mapping[str, DriftTest] | None = None,
        dataset_drift_share: float = 0.5,
        multiple_testing: str = "none",
    ) -> None:
        if multiple_testing not in MULTIPLE_TESTING:
            raise ValueError(f"multiple_testing must be one of {MULTIPLE_TESTING}, got {multiple_testing!r}")
        if not 0 < dataset_drift_share <= 1:
            raise ValueError(f"dataset_drift_share must be within (0, 1], got {dataset_drift_share}")
        self.tests: dict[str, DriftTest] = dict(tests if tests is not None else drift_tests())
        self.dataset_drift_share = dataset_drift_share
        self.multiple_testing = multiple_testing
        missing = [c for c in self.tests if c not in reference.columns]
        if missing:
            raise ValueError(f"reference lacks monitored column(s) {missing}")
        self._columns = {
            column: _PreparedColumn(column, test, reference[column]) for column, test in self.tests.items()
        }

    @property
    def features(self) -> tuple[str, ...]:
        """Return the monitored feature columns (the prediction excluded)."""
        return tuple(c for c in self.tests if c != PREDICTION)

    def score(self, column: str, current: pd.Series) -> tuple[float, bool]:
        """Return (score, Evidently's verdict) of the pinned test on one column; NaN score when no data."""
        return self._columns[column].score(current)

    def evaluate(self, current: pd.DataFrame) -> DriftResult:
        """Compute every pinned test on `current` and the dataset-level verdict."""
        missing = [c for c in self.tests if c not in current.columns]
        if missing:
            raise ValueError(f"current data lacks monitored column(s) {missing}")
        raw = {column: self.score(column, current[column]) for column in self.tests}
        thresholds = self._corrected_thresholds({c: s for c, (s, _) in raw.items()})
        columns: dict[str, ColumnDrift] = {}
        for column, (score, detected) in raw.items():
            test = self.tests[column]
            threshold = thresholds.get(column, test.threshold)
            if column in thresholds and not np.isnan(score):
                detected = score <= threshold
            columns[column] = ColumnDrift(column, test.method, float(threshold), score, bool(detected))
        judged = [columns[c] for c in self.features if not np.isnan(columns[c].score)]
        share = sum(c.detected for c in judged) / len(judged) if judged else 0.0
        return DriftResult(
            columns=columns, drifted_share=share, dataset_drift=bool(judged) and share >= self.dataset_drift_share
        )

    def _corrected_thresholds(self, scores: dict[str, float]) -> dict[str, float]:
        # The family is the monitored features with a p-value test; distances are not
        # probabilities and the prediction is not part of the dataset verdict.
        family = {c: scores[c] for c in self.features if self.tests[c].is_p_value and not np.isnan(scores[c])}
        return corrected_thresholds(family, {c: self.tests[c].threshold for c in family}, self.multiple_testing)


def corrected_thresholds(p_values: Mapping[str, float], alphas: Mapping[str, float], method: str) -> dict[str, float]:
    """Return the threshold each p-value is compared with (drift when p <= it) under `method`.

    Bonferroni divides every alpha by the family size m. Benjamini-Hochberg finds the largest
    rank k with p_(k) <= k/m * alpha and flags every p up to it, i.e. compares each p with
    alpha * max(k, 1) / m. "none" leaves the pinned thresholds (an empty mapping).
    """
    if method not in MULTIPLE_TESTING:
        raise ValueError(f"multiple_testing must be one of {MULTIPLE_TESTING}, got {method!r}")
    m = len(p_values)
    if method == "none" or m == 0:
        return {}
    if method == "bonferroni":
        return {c: alphas[c] / m for c in p_values}
    ranked = sorted(p_values, key=lambda c: p_values[c])
    k_star = max((k for k, c in enumerate(ranked, start=1) if p_values[c] <= k / m * alphas[c]), default=0)
    return {c: alphas[c] * max(k_star, 1) / m for c in p_values}


def data_definition(tests: Mapping[str, DriftTest] | None = None) -> Any:
    """Return the Evidently DataDefinition typing every monitored column as the schema says."""
    from evidently import DataDefinition

    columns = list(tests if tests is not None else drift_tests())
    return DataDefinition(
        numerical_columns=[c for c in columns if column_kind(c) is not Kind.CATEGORICAL],
        categorical_columns=[c for c in columns if column_kind(c) is Kind.CATEGORICAL],
    )


def report_drift_metrics(tests: Mapping[str, DriftTest] | None = None, dataset_drift_share: float = 0.5) -> list:
    """Return Evidently 0.7 metrics for a Report: a pinned ValueDrift per column and the drifted-columns count."""
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    tests = dict(tests if tests is not None else drift_tests())
    features = [c for c in tests if c != PREDICTION]
    metrics: list = [ValueDrift(column=c, method=t.method, threshold=t.threshold) for c, t in tests.items()]
    metrics.append(
        DriftedColumnsCount(
            columns=features,
            drift_share=dataset_drift_share,
            per_column_method={c: tests[c].method for c in features},
            per_column_threshold={c: tests[c].threshold for c in features},
        )
    )
    return metrics
