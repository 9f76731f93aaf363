"""The one adapter between the stack and Evidently's drift stat tests.

Online (the metrics service) and batch (the Prefect flow) drift both go through here, so
an Evidently upgrade touches this file only. `DriftEvaluator` prepares the reference once
and calls Evidently's pinned stat tests directly, giving the scores an Evidently `Report`
with `report_drift_metrics()` computes, without the Report's widget rendering.

"tv" (total variation distance over categories: the share of rows whose category moved) is ours,
not an Evidently stat test (Evidently's "TVD" is a permutation p-value): it is registered with
Evidently's stat-test registry under the name "tv" so a Report computes the same score.

The dataset verdict is family-wise: Holm's step-down over the features' calibrated tail p-values
at `dataset_false_alarm_rate` (one broken feature can trip it; the drifted share is reported beside
it), and `family_flags` does the same over segments x features.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from monitoring_core.calibration import CalibrationCache, CalibrationSettings, ColumnCalibration
from monitoring_core.description import DriftTest, Kind, ModelDescription
from monitoring_core.multivariate import CorrelationDrift, MultivariateDrift

MULTIPLE_TESTING = ("none", "bonferroni", "bh")
TOTAL_VARIATION = "tv"
K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class ColumnDrift:
    """The pinned stat test's outcome for one column.

    `threshold` is the threshold the score was compared with: calibrated for `calibrated_rows`
    (the size bucket of the column's `rows` usable values), the pinned one without calibration,
    or the corrected one when a multiple-testing correction applies to a p-value test.
    `score` is NaN when the window holds no usable value of the column; `enough_data` is False
    below the column's `min_rows` (None: no size is enough): no verdict either way.
    """

    column: str
    stattest: str
    threshold: float
    score: float
    detected: bool
    rows: int = 0
    calibrated_rows: int = 0
    min_rows: int | None = 1
    enough_data: bool = True
    # The calibrated tail p-value (share of null draws >= score), or the test's own p-value for a
    # p-value test; None for a distance without a calibrated null. `floor`: the score that counts as reaching
    # the effect-size floor at this size (for a number, what a shift of the floor's size reaches in 95% of
    # windows: calibration.FLOOR_POWER).
    # For a calibrated column, `p_value` covers both of its tests (`combined_p_value`).
    p_value: float | None = None
    floor: float | None = None
    # A calibrated categorical column's second test: the share of its values the reference never saw,
    # the threshold it is compared with (calibrated for the size, never below `unseen_floor`), its own
    # tail p-value. `detected` is either test's verdict. None for other columns (and without a verdict).
    unseen_share: float | None = None
    unseen_threshold: float | None = None
    unseen_p_value: float | None = None
    unseen_floor: float | None = None
    # A calibrated numerical column's second test: the Jensen-Shannon distance between its shares in the
    # reference's quantile bins and the reference's, the threshold calibrated for the size, its tail p-value.
    # It flags only while `score` reaches `floor` (the effect size stays the distance's). None for other columns.
    bins_distance: float | None = None
    bins_threshold: float | None = None
    bins_p_value: float | None = None
    # The chance a clean window of this size is flagged (ColumnCalibration.false_alarm_rate): the calibrated
    # rate until the effect-size floor binds, then less. None without a calibrated verdict.
    false_alarm_rate: float | None = None

    @property
    def unseen_detected(self) -> bool:
        """Whether the unseen share reached its threshold (with enough data)."""
        return (
            self.enough_data
            and self.unseen_share is not None
            and self.unseen_threshold is not None
            and self.unseen_share >= self.unseen_threshold
        )

    @property
    def bins_detected(self) -> bool:
        """Whether the histogram distance reached its threshold while the distance reached its floor."""
        return (
            self.enough_data
            and self.bins_distance is not None
            and self.bins_threshold is not None
            and self.bins_distance >= self.bins_threshold
            and (self.floor is None or self.score >= self.floor)
        )

    @property
    def second_detected(self) -> bool:
        """Whether the column's second test (unseen share or histogram) flags it."""
        return self.unseen_detected or self.bins_detected

    @property
    def judged(self) -> bool:
        """Whether the column has a verdict (usable values, at least its minimum rows)."""
        return self.enough_data and not np.isnan(self.score)


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift and the dataset verdict (prediction excluded).

    `dataset_drift`: with calibration, some feature is flagged by Holm's step-down over the judged
    features' p-values at `dataset_false_alarm_rate` (family-wise) and its score reaches its floor
    (`flagged` names them, `dataset_p_value` is the Holm-adjusted p of the most significant one);
    without calibration, the share rule. `drifted_share`: the share of judged features whose own
    verdict (at `false_alarm_rate`) is drift; `share_drift`: that share >= `dataset_drift_share`.
    `enough_data` is False when the window holds fewer than `min_rows` rows: then there is no
    dataset verdict (`dataset_drift` False, not to be read as "no drift").
    `multivariate`: the joint detector's outcome (None when not configured).
    """

    columns: dict[str, ColumnDrift]
    drifted_share: float
    dataset_drift: bool
    rows: int = 0
    min_rows: int | None = 1
    enough_data: bool = True
    false_alarm_rate: float | None = None  # per column verdict; None without calibration
    dataset_false_alarm_rate: float | None = None  # family-wise over the features (Holm)
    # The chance a clean window of this size makes dataset drift: the family-wise rate, or less once the
    # features' effect-size floors bind (their floor tails summed). None without a dataset verdict.
    stated_dataset_rate: float | None = None
    flagged: tuple[str, ...] = ()
    dataset_p_value: float | None = None
    share_drift: bool = False
    features: tuple[str, ...] = ()  # the dataset verdict's family (monitored features, outputs excluded)
    multivariate: MultivariateDrift | None = field(default=None, compare=False)


def _evidently_column_type(kind: Kind) -> Any:
    from evidently.legacy.core import ColumnType

    return ColumnType.Categorical if kind is Kind.CATEGORICAL else ColumnType.Numerical


def _clean(series: pd.Series) -> pd.Series:
    # Exactly Evidently's cleaning in get_one_column_drift: infinities become NaN, NaN rows are dropped.
    # Missing values are a data-quality signal, not drift.
    if pd.api.types.is_float_dtype(series.dtype):
        values = series.to_numpy()
        return series[np.isfinite(values)]
    return series[~series.isin([-np.inf, np.inf])].dropna()


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


def total_variation_distance(reference: pd.Series, current: pd.Series) -> float:
    """Return the total variation distance of two samples' category shares: half their L1 distance.

    It is the share of rows whose category would have to move to turn one mix into the other (0: the
    same mix, 1: no category in common), whatever the number of categories; an unseen category counts
    in full. Ours, not Evidently's (its "TVD" stat test returns a permutation p-value).
    """
    ref = pd.Series(reference).value_counts(normalize=True)
    cur = pd.Series(current).value_counts(normalize=True)
    return float(ref.sub(cur, fill_value=0.0).abs().sum() / 2)


def register_total_variation() -> None:
    """Register "tv" (`total_variation_distance`, drift when >= threshold) with Evidently's stat tests, once."""
    from evidently.legacy.calculations.stattests.registry import StatTest, _registered_stat_tests, register_stattest
    from evidently.legacy.core import ColumnType

    if TOTAL_VARIATION in _registered_stat_tests:
        return

    def total_variation(reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float):
        score = total_variation_distance(reference, current)
        return score, score >= threshold

    test = StatTest(
        name=TOTAL_VARIATION,
        display_name="Total variation distance (share of rows moved between categories)",
        allowed_feature_types=[ColumnType.Categorical],
        default_threshold=0.1,
    )
    register_stattest(test, default_impl=total_variation)


class _PreparedColumn:
    """One column's reference, cleaned and prepared once for its pinned stat test."""

    def __init__(
        self,
        column: str,
        kind: Kind,
        test: DriftTest,
        reference: pd.Series,
        calibration: CalibrationSettings | None = None,
        rate: float = 0.0,
        cache: CalibrationCache | None = None,
    ) -> None:
        self.column = column
        self.test = test
        self.kind = kind
        self.reference = _clean(reference).reset_index(drop=True)
        if self.reference.empty:
            raise ValueError(f"reference column {column!r} has no usable value")
        # Text categories are scored on codes: one code per reference category, new ones per unseen value.
        # The distances depend on the category counts only, so the scores are those of the text values.
        self._codes: dict[Any, float] | None = None
        if kind is Kind.CATEGORICAL and not pd.api.types.is_numeric_dtype(self.reference.dtype):
            self._codes = {value: float(code) for code, value in enumerate(pd.unique(self.reference))}
        self._fast = self._prepare_fast()
        # The reference's categories (as scored: numbers or codes), for the unseen share of a window.
        self._keys: np.ndarray | None = None
        if kind is Kind.CATEGORICAL and self._fast is not None:
            self._keys = np.unique(self._numeric(self.reference))
        self._stattest: Any = None
        if self._fast is None:
            self.stattest  # noqa: B018 - resolve now, so an unknown method stops the start, not an evaluation
        self.calibration: ColumnCalibration | None = None
        if calibration is not None:
            # Only the fast paths' formulas are simulated; other methods keep their pinned threshold.
            values = self._numeric(self.reference) if self._fast is not None else None
            kind_name = "categorical" if kind is Kind.CATEGORICAL else "numerical"
            self.calibration = ColumnCalibration(column, test, kind_name, values, rate, calibration, cache)

    @property
    def column_type(self) -> Any:
        """Return Evidently's column type of the column."""
        return _evidently_column_type(self.kind)

    @property
    def stattest(self) -> Any:
        """Return Evidently's stat test of the pinned method, resolved on first need.

        The two fast paths never need it, so a service whose columns all use them does not import
        Evidently at all (about 3 s of its start).
        """
        if self._stattest is None:
            from evidently.legacy.calculations.stattests import get_stattest

            register_total_variation()  # `tv` is ours: Evidently must know it before a method resolves

            # With an explicit method the test does not depend on the data: resolve it once.
            self._stattest = get_stattest(self.reference, self.reference, self.column_type, self.test.method)
        return self._stattest

    def _numeric(self, values: pd.Series) -> np.ndarray:
        """Return cleaned values as floats: numbers as they are, text categories as their codes."""
        if self._codes is None:
            return values.to_numpy(dtype=float)
        codes = values.map(self._codes)
        unseen = codes.isna()
        if unseen.any():
            codes[unseen] = len(self._codes) + pd.factorize(values[unseen])[0]
        return codes.to_numpy(dtype=float)

    def _fast_applies(self, values: pd.Series) -> bool:
        return self._fast is not None and (self._codes is not None or pd.api.types.is_numeric_dtype(values.dtype))

    def _prepare_fast(self) -> Callable[[np.ndarray], float] | None:
        """Return Evidently's formula for the pinned method on reference statistics computed once, if known.

        Normed Wasserstein and Jensen-Shannon are the exact formulas of Evidently 0.7's implementation
        (wasserstein_distance_norm.py: scipy's Wasserstein distance over the reference's std;
        jensenshannon.py with utils.get_binned_data); "tv" is `total_variation_distance`. Every
        other method calls Evidently's stat test as is. The parity tests compare both
        paths with an Evidently Report.
        """
        from scipy.spatial import distance

        if self._codes is None and not pd.api.types.is_numeric_dtype(self.reference.dtype):
            return None
        values = self._numeric(self.reference)
        if self.test.method == "wasserstein" and self.kind is not Kind.CATEGORICAL:
            norm = max(float(np.std(self.reference)), 0.001)
            ordered = np.sort(values)
            return lambda current: _wasserstein_sorted(ordered, current) / norm
        if self.test.method == "jensenshannon" and self.kind is Kind.CATEGORICAL:
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
        if self.test.method == TOTAL_VARIATION and self.kind is Kind.CATEGORICAL:
            keys, counts = np.unique(values, return_counts=True)
            shares = counts / len(values)

            def total_variation(current: np.ndarray) -> float:
                current_keys, current_counts = np.unique(current, return_counts=True)
                union = np.union1d(keys, current_keys)
                difference = np.zeros(len(union))
                difference[np.searchsorted(union, keys)] = shares
                difference[np.searchsorted(union, current_keys)] -= current_counts / len(current)
                return float(np.abs(difference).sum() / 2)

            return total_variation
        return None

    def score(self, current: pd.Series, threshold: float | None = None) -> tuple[float, bool]:
        """Return (score, verdict at `threshold`, default the pinned one) on `current`; NaN score when no data."""
        return self._score(_clean(current), self.test.threshold if threshold is None else threshold)

    def _score(self, cur: pd.Series, threshold: float) -> tuple[float, bool]:
        if cur.empty:
            return float("nan"), False
        if self._fast is not None and self._fast_applies(cur):
            score = float(self._fast(self._numeric(cur)))
            return score, score >= threshold  # the fast methods are distances
        result = self.stattest(self.reference, cur, self.column_type, threshold)
        return float(result.drift_score), bool(result.drifted)

    def unseen_share(self, cur: pd.Series) -> float:
        """Return the share of cleaned values `cur` that are no category of the reference (as the score sees them)."""
        assert self._keys is not None
        if self._fast_applies(cur):
            return float(np.mean(~np.isin(self._numeric(cur), self._keys)))
        return float(np.mean(~cur.isin(self.reference.unique())))  # e.g. text values against numeric categories

    def judge(self, current: pd.Series) -> ColumnDrift:
        """Return the column's outcome on `current`, with the threshold and tail p-value calibrated for its size."""
        cur = _clean(current)
        rows = len(cur)
        floor = None if self.test.is_p_value else self.test.threshold
        if self.calibration is None:
            score, detected = self._score(cur, self.test.threshold)
            p_value = score if self.test.is_p_value and not np.isnan(score) else None
            return ColumnDrift(
                self.column, self.test.method, self.test.threshold, score, detected, rows, rows,
                p_value=p_value, floor=floor,
            )  # fmt: skip
        min_rows = self.calibration.min_rows
        enough = min_rows is not None and rows >= min_rows
        calibration = self.calibration
        threshold, bucket = calibration.threshold(rows) if enough else (self.test.threshold, 0)
        score, detected = self._score(cur, threshold)
        p_value = None
        second: dict[str, float | None] = {}  # the second test: a category's unseen share or a number's histogram
        stated: dict[str, float | None] = {}
        if enough and not np.isnan(score):
            p_value = score if self.test.is_p_value else calibration.p_value(rows, score)
            stated["false_alarm_rate"] = calibration.false_alarm_rate(rows)
            if floor is not None:
                floor = calibration.floor_at(rows)
            if calibration.unseen_test and self._keys is not None:
                share = self.unseen_share(cur)
                unseen_p = calibration.unseen_p_value(rows, share)
                second = {
                    "unseen_share": share,
                    "unseen_threshold": calibration.unseen_threshold(rows),
                    "unseen_p_value": unseen_p,
                    "unseen_floor": calibration.unseen_floor,
                }
                p_value = calibration.combined_p_value(p_value, unseen_p)
            elif calibration.bins_test and self._fast_applies(cur):
                distance = calibration.bins_distance(self._numeric(cur))
                bins_p = calibration.bins_p_value(rows, distance)
                second = {
                    "bins_distance": distance,
                    "bins_threshold": calibration.bins_threshold(rows),
                    "bins_p_value": bins_p,
                }
                p_value = calibration.combined_p_value(p_value, bins_p)
        outcome = ColumnDrift(
            self.column, self.test.method, threshold, score, detected and enough, rows, bucket, min_rows, enough,
            p_value, floor, **second, **stated,
        )  # fmt: skip
        return replace(outcome, detected=True) if outcome.second_detected else outcome


class DriftEvaluator:
    """Evaluate drift of current windows against one reference prepared once."""

    def __init__(
        self,
        description: ModelDescription,
        reference: pd.DataFrame,
        tests: Mapping[str, DriftTest] | None = None,
        dataset_drift_share: float = 0.5,
        multiple_testing: str = "none",
        calibration: CalibrationSettings | None = None,
        cache: CalibrationCache | None = None,
        multivariate: bool = True,
    ) -> None:
        """Prepare `reference`; with `calibration`, thresholds and minimum sizes come from it, else the pinned ones.

        `multivariate`: with calibration, also judge the features jointly (`CorrelationDrift`, at the
        per-feature rate) when at least two numerical or categorical features are monitored.
        """
        if multiple_testing not in MULTIPLE_TESTING:
            raise ValueError(f"multiple_testing must be one of {MULTIPLE_TESTING}, got {multiple_testing!r}")
        if not 0 < dataset_drift_share <= 1:
            raise ValueError(f"dataset_drift_share must be within (0, 1], got {dataset_drift_share}")
        self.description = description
        self.tests: dict[str, DriftTest] = dict(tests if tests is not None else description.drift_tests())
        self.dataset_drift_share = dataset_drift_share
        self.multiple_testing = multiple_testing
        missing = [c for c in self.tests if c not in reference.columns]
        if missing:
            raise ValueError(f"reference lacks monitored column(s) {missing}")
        self.calibration = calibration
        self.cache = cache
        rate = calibration.column_rate(dataset_drift_share) if calibration is not None else 0.0
        self._columns = {
            column: _PreparedColumn(
                column, description.column_kind(column), test, reference[column], calibration, rate, cache
            )
            for column, test in self.tests.items()
        }
        self.multivariate: CorrelationDrift | None = None
        if multivariate and calibration is not None:
            kinds = (Kind.NUMERICAL, Kind.CATEGORICAL)
            joint = [c for c in self.features if description.column_kind(c) in kinds]
            try:
                self.multivariate = CorrelationDrift(description, reference, joint, rate, calibration)
            except ValueError:
                self.multivariate = None  # too few features or reference rows for a joint detector

    @property
    def false_alarm_rate(self) -> float | None:
        """Return the per-column false-alarm rate the thresholds are calibrated for (None: pinned thresholds)."""
        return self.calibration.column_rate(self.dataset_drift_share) if self.calibration is not None else None

    def min_rows_of(self, column: str) -> int | None:
        """Return the rows `column` needs for a verdict (1 without calibration; None: no size is enough)."""
        calibration = self._columns[column].calibration
        return calibration.min_rows if calibration is not None else 1

    @property
    def min_rows(self) -> int | None:
        """Return the window rows the dataset verdict needs: the largest minimum of the features that have one.

        Features no size is enough for (None) leave the dataset rule; None when that is every feature.
        """
        mins = self._feature_minimums()
        return max(mins) if mins else None

    @property
    def first_verdict_rows(self) -> int | None:
        """Return the window rows the first feature verdict needs: the smallest minimum of the features.

        From there each feature judged at its own size counts in `family_flags` (segments reach their
        largest feature's minimum late: a 13% segment of a 2,000-row window holds 260 rows).
        """
        mins = self._feature_minimums()
        return min(mins) if mins else None

    def _feature_minimums(self) -> list[int]:
        return [m for m in (self.min_rows_of(c) for c in self.features) if m is not None]

    def threshold(self, column: str, rows: int) -> float:
        """Return the threshold `column` is compared with for `rows` usable values."""
        calibration = self._columns[column].calibration
        return calibration.threshold(rows)[0] if calibration is not None else self.tests[column].threshold

    @property
    def features(self) -> tuple[str, ...]:
        """Return the monitored feature columns (the prediction and class probabilities excluded)."""
        outputs = set(self.description.output_columns)
        return tuple(c for c in self.tests if c not in outputs)

    def score(self, column: str, current: pd.Series) -> tuple[float, bool]:
        """Return (score, Evidently's verdict) of the pinned test on one column; NaN score when no data."""
        return self._columns[column].score(current)

    def evaluate(self, current: pd.DataFrame) -> DriftResult:
        """Compute every pinned test on `current` and the dataset-level verdict."""
        missing = [c for c in self.tests if c not in current.columns]
        if missing:
            raise ValueError(f"current data lacks monitored column(s) {missing}")
        raw = {column: self._columns[column].judge(current[column]) for column in self.tests}
        thresholds = self._corrected_thresholds(raw)
        columns: dict[str, ColumnDrift] = {}
        for column, outcome in raw.items():
            if column in thresholds and not np.isnan(outcome.score):
                threshold = thresholds[column]
                outcome = replace(
                    outcome, threshold=float(threshold), detected=outcome.enough_data and outcome.score <= threshold
                )
            columns[column] = outcome
        min_rows = self.min_rows
        rows = len(current)
        enough = min_rows is not None and rows >= min_rows
        judged = [columns[c] for c in self.features if columns[c].judged]
        share = sum(c.detected for c in judged) / len(judged) if judged else 0.0
        share_drift = enough and bool(judged) and share >= self.dataset_drift_share
        flagged: tuple[str, ...] = ()
        dataset_p_value = stated_dataset_rate = None
        if self.calibration is not None:
            family = {c.column: c.p_value for c in judged if c.p_value is not None}
            rejected = holm(family, self.calibration.dataset_false_alarm_rate)
            flagged = tuple(c.column for c in judged if c.column in rejected and reaches_floor(c)) if enough else ()
            dataset_p_value = min(1.0, len(family) * min(family.values())) if family else None
            if enough and family:
                calibrations = [(self._columns[c.column].calibration, c.rows) for c in judged if c.column in family]
                tails = [cal.floor_tail(rows) if cal is not None else None for cal, rows in calibrations]
                floor_rate = sum(t for t in tails if t is not None) if None not in tails else 1.0
                stated_dataset_rate = min(self.calibration.dataset_false_alarm_rate, floor_rate)
        multivariate = None
        if self.multivariate is not None:
            multivariate = self.multivariate.evaluate(current[list(self.multivariate.columns)], min_rows)
        if self.cache is not None:
            self.cache.save()  # keeps what this evaluation had to compute, for the next start
        return DriftResult(
            columns=columns,
            drifted_share=share,
            dataset_drift=bool(flagged) if self.calibration is not None else share_drift,
            rows=rows,
            min_rows=min_rows,
            enough_data=enough,
            false_alarm_rate=self.false_alarm_rate,
            dataset_false_alarm_rate=self.calibration.dataset_false_alarm_rate if self.calibration else None,
            flagged=flagged,
            dataset_p_value=dataset_p_value,
            stated_dataset_rate=stated_dataset_rate,
            share_drift=share_drift,
            multivariate=multivariate,
            features=self.features,
        )

    def _corrected_thresholds(self, outcomes: dict[str, ColumnDrift]) -> dict[str, float]:
        # The family is the monitored features with a p-value test; distances are not
        # probabilities and the prediction is not part of the dataset verdict.
        family = {c: outcomes[c].score for c in self.features if self.tests[c].is_p_value and outcomes[c].judged}
        return corrected_thresholds(family, {c: self.tests[c].threshold for c in family}, self.multiple_testing)


def reaches_floor(outcome: ColumnDrift) -> bool:
    """Whether a column's score is at least its effect-size floor (always, for a p-value test).

    For a categorical column with an unseen test, its unseen share reaching the unseen floor also counts.
    """
    unseen = outcome.unseen_share is not None and outcome.unseen_floor is not None
    return (
        outcome.floor is None
        or outcome.score >= outcome.floor
        or (unseen and outcome.unseen_share >= outcome.unseen_floor)
    )  # type: ignore[operator]


def holm(p_values: Mapping[K, float], rate: float) -> set[K]:
    """Return the hypotheses Holm's step-down rejects at family-wise rate `rate`.

    Sorted p_(1) <= ... <= p_(m): reject while p_(k) <= rate / (m - k + 1), stop at the first that is
    not. The chance of rejecting any true null is at most `rate`, whatever the dependence between them.
    """
    ranked = sorted(p_values, key=lambda key: p_values[key])
    m = len(ranked)
    rejected: set[K] = set()
    for k, key in enumerate(ranked):
        if p_values[key] > rate / (m - k):
            break
        rejected.add(key)
    return rejected


def family_flags(results: Mapping[str, DriftResult], rate: float) -> dict[tuple[str, str], bool]:
    """Return, for every judged (segment, feature) pair of the segments' results, whether it is flagged.

    One family over all segments x features: Holm at `rate` over their calibrated p-values, then
    the score must reach the feature's floor. So on clean data the chance that *any* segment shows
    a flagged feature is at most `rate`. Each feature counts from its own minimum size (a segment
    need not hold its largest feature's minimum); features below theirs and features without a
    p-value (a distance without calibration) are not tested and not in the mapping.
    """
    outcomes = {
        (segment, column): result.columns[column]
        for segment, result in results.items()
        for column in result.features
        if result.columns[column].judged and result.columns[column].p_value is not None
    }
    rejected = holm({pair: outcome.p_value for pair, outcome in outcomes.items()}, rate)  # type: ignore[misc]
    return {pair: pair in rejected and reaches_floor(outcome) for pair, outcome in outcomes.items()}


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


def data_definition(description: ModelDescription, tests: Mapping[str, DriftTest] | None = None) -> Any:
    """Return the Evidently DataDefinition typing every monitored column as the description says."""
    from evidently import DataDefinition

    columns = list(tests if tests is not None else description.drift_tests())
    kinds = {c: description.column_kind(c) for c in columns}
    return DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] is not Kind.CATEGORICAL],
        categorical_columns=[c for c in columns if kinds[c] is Kind.CATEGORICAL],
    )


def report_drift_metrics(
    description: ModelDescription,
    tests: Mapping[str, DriftTest] | None = None,
    dataset_drift_share: float = 0.5,
    thresholds: Mapping[str, float] | None = None,
) -> list:
    """Return Evidently 0.7 metrics for a Report: a pinned ValueDrift per column and the drifted-columns count.

    `thresholds` (e.g. calibrated for the current data's size) replace the pinned ones per column.
    """
    from evidently.metrics import DriftedColumnsCount, ValueDrift

    register_total_variation()
    tests = dict(tests if tests is not None else description.drift_tests())
    used = {c: (thresholds or {}).get(c, t.threshold) for c, t in tests.items()}
    outputs = set(description.output_columns)
    features = [c for c in tests if c not in outputs]
    metrics: list = [ValueDrift(column=c, method=t.method, threshold=used[c]) for c, t in tests.items()]
    metrics.append(
        DriftedColumnsCount(
            columns=features,
            drift_share=dataset_drift_share,
            per_column_method={c: tests[c].method for c in features},
            per_column_threshold={c: used[c] for c in features},
        )
    )
    return metrics
