"""A multivariate drift detector: PCA reconstruction error of the joint feature space, calibrated from the reference.

Per-feature tests look at one marginal at a time: a shift of the features' *joint* distribution
whose marginals stay put (two correlated features whose correlation flips sign) is invisible to
them. As NannyML's data-reconstruction drift does, the reference's monitored features are encoded
(numbers imputed with the median and standardised; categories one-hot over the busy ones, the rest
and unseen values in one "other" column, centred), a PCA keeping `variance` of the variance is fit,
and a row's reconstruction error is its Euclidean distance to its projection: rows that break the
reference's correlations fall off the kept components and reconstruct badly.

Calibrated like the per-feature distances (monitoring_core/calibration.py): the reference is split
once (seeded) into a half the PCA is fit on and a half that gives out-of-sample errors. The score is
the relative increase of the window's mean error over that half's, `mean(window) / mean(half) - 1`;
its null for n rows is simulated by drawing n of the half's errors (with replacement) against the
half's mean with its own sampling noise, kept as a `NullSummary` (conformal tail p-value, exact
rate) per size bucket, and the threshold never goes below the effect-size floor (default 0.1: the
window's rows reconstruct 10% worse than the reference's). No verdict below `min_rows`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring_core.calibration import (
    MIN_BUCKET,
    SIMULATED_ROWS,
    CalibrationSettings,
    NullSummary,
    next_bucket,
    size_bucket,
)
from monitoring_core.description import Kind, ModelDescription, category_key

METHOD = "pca_reconstruction"
DEFAULT_FLOOR = 0.1
DEFAULT_VARIANCE = 0.65  # NannyML's default share of variance the kept components explain
OTHER = "\0other"  # missing values: never a category of their own
MIN_REFERENCE_ROWS = 100  # below this the two halves are too small to fit and calibrate on


@dataclass(frozen=True)
class MultivariateDrift:
    """The joint detector's outcome on one window.

    `score`: relative increase of the window's mean reconstruction error over the reference's (NaN
    without usable rows); `p_value`: its calibrated tail p-value; `detected`: p-value <= the rate and
    score >= the floor, with enough data.
    """

    method: str
    score: float
    threshold: float
    p_value: float | None
    detected: bool
    rows: int
    min_rows: int | None
    enough_data: bool
    false_alarm_rate: float
    floor: float
    components: int
    columns: tuple[str, ...]


class _Encoder:
    """Numbers imputed and standardised, categories one-hot (busy ones) and centred: learnt on one frame."""

    def __init__(
        self, description: ModelDescription, frame: pd.DataFrame, columns: Sequence[str], max_categories: int
    ) -> None:
        self.numerical: list[tuple[str, float, float, float]] = []  # column, median, mean, std
        self.categorical: list[tuple[str, list[str], np.ndarray]] = []  # column, kept keys (+ other), means
        for column in columns:
            if description.column_kind(column) is Kind.CATEGORICAL:
                keys = self._keys(column, frame[column])
                shares = keys.value_counts(normalize=True)
                kept = [k for k in shares.index[:max_categories] if shares[k] >= 0.01 and k != OTHER]
                onehot = self._onehot(keys, kept)
                self.categorical.append((column, kept, onehot.mean(axis=0)))
            else:
                values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
                values = values[np.isfinite(values)]
                if values.size == 0:
                    continue
                median = float(np.median(values))
                std = float(np.std(values))
                self.numerical.append((column, median, float(np.mean(values)), std if std > 1e-12 else 1.0))

    @staticmethod
    def _keys(column: str, values: pd.Series) -> pd.Series:
        codes, uniques = pd.factorize(values)  # each distinct value keyed once; missing values get -1
        keys = np.array([category_key(v) for v in uniques] + [OTHER], dtype=object)  # missing joins "other"
        return pd.Series(keys[codes], index=values.index)

    @staticmethod
    def _onehot(keys: pd.Series, kept: list[str]) -> np.ndarray:
        codes = pd.Categorical(keys, categories=kept).codes  # -1: another value (the "other" column)
        out = np.zeros((len(keys), len(kept) + 1))
        out[np.arange(len(keys)), np.where(codes < 0, len(kept), codes)] = 1.0
        return out

    @property
    def width(self) -> int:
        return len(self.numerical) + sum(len(kept) + 1 for _, kept, _ in self.categorical)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = []
        for column, median, mean, std in self.numerical:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
            values = np.where(np.isfinite(values), values, median)
            blocks.append(((values - mean) / std)[:, None])
        for column, kept, means in self.categorical:
            blocks.append(self._onehot(self._keys(column, frame[column]), kept) - means)
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))


class ReconstructionDrift:
    """PCA reconstruction-error drift of a model's monitored features, calibrated on held-out reference rows."""

    def __init__(
        self,
        description: ModelDescription,
        reference: pd.DataFrame,
        columns: Sequence[str] | None = None,
        rate: float = 0.005,
        settings: CalibrationSettings | None = None,
        floor: float = DEFAULT_FLOOR,
        variance: float = DEFAULT_VARIANCE,
        max_categories: int = 20,
    ) -> None:
        """Fit the encoder and PCA on one seeded half of `reference`, the null's errors on the other.

        Raises ValueError when the reference or the columns cannot support a joint detector (fewer than
        two encoded columns or MIN_REFERENCE_ROWS rows).
        """
        self.settings = settings or CalibrationSettings()
        self.rate = rate
        self.floor = floor
        kinds = (Kind.NUMERICAL, Kind.CATEGORICAL)
        default = [f.name for f in description.monitored_features if f.kind in kinds]
        self.columns = tuple(columns if columns is not None else default)
        if len(self.columns) < 2:
            raise ValueError("a multivariate detector needs at least two numerical or categorical features")
        if len(reference) < MIN_REFERENCE_ROWS:
            raise ValueError(f"a multivariate detector needs at least {MIN_REFERENCE_ROWS} reference rows")
        rng = np.random.default_rng([self.settings.seed, zlib.crc32(METHOD.encode())])
        order = rng.permutation(len(reference))
        fit, held = reference.iloc[order[: len(order) // 2]], reference.iloc[order[len(order) // 2 :]]
        self.encoder = _Encoder(description, fit, self.columns, max_categories)
        if self.encoder.width < 2:
            raise ValueError("a multivariate detector needs at least two encoded columns")
        matrix = self.encoder.transform(fit)
        self._center = matrix.mean(axis=0)
        _, singular, vt = np.linalg.svd(matrix - self._center, full_matrices=False)
        explained = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-300)
        self.components = int(min(np.searchsorted(explained, variance) + 1, self.encoder.width - 1))
        self._basis = vt[: self.components].T
        self._errors = self.errors(held)
        self._mean = max(float(self._errors.mean()), 1e-12)
        self._nulls: dict[int, NullSummary] = {}

    def errors(self, frame: pd.DataFrame) -> np.ndarray:
        """Return each row's reconstruction error (Euclidean distance to its projection on the kept components)."""
        centred = self.encoder.transform(frame) - self._center
        residual = centred - (centred @ self._basis) @ self._basis.T
        return np.sqrt(np.einsum("ij,ij->i", residual, residual))

    def _scale(self, rows: int) -> float:
        return math.sqrt(1 / rows + 1 / len(self._errors))

    def _summary(self, bucket: int) -> NullSummary:
        if bucket not in self._nulls:
            rng = np.random.default_rng([self.settings.seed, zlib.crc32(METHOD.encode()), bucket])
            draws, errors = self.settings.draws, self._errors
            window = np.empty(draws)
            for start in range(0, draws, 1000):  # bounded memory: 1,000 x bucket positions at a time
                stop = min(start + 1000, draws)
                window[start:stop] = errors[rng.integers(0, len(errors), (stop - start, bucket))].mean(axis=1)
            # The reference half's mean has its own noise: its sampling distribution by the central limit.
            reference = self._mean + rng.standard_normal(draws) * errors.std() / math.sqrt(len(errors))
            self._nulls[bucket] = NullSummary.of((window / reference - 1) / self._scale(bucket))
        return self._nulls[bucket]

    def _null_at(self, rows: int) -> NullSummary:
        rows = max(rows, MIN_BUCKET)
        bucket = size_bucket(rows)
        limit = size_bucket(SIMULATED_ROWS)  # beyond it the mean's null is normal: scaling is exact
        if bucket >= limit:
            return self._summary(limit)
        upper = next_bucket(bucket)
        if rows == bucket or upper == bucket:
            return self._summary(bucket)
        weight = math.log(rows / bucket) / math.log(upper / bucket)
        return self._summary(bucket).mixed(self._summary(upper), weight)

    def threshold(self, rows: int) -> float:
        """Return the score threshold for a window of `rows` rows (never below the floor)."""
        return max(self.floor, self._null_at(rows).threshold(self.rate) * self._scale(max(rows, MIN_BUCKET)))

    def score(self, current: pd.DataFrame) -> float:
        """Return the relative increase of `current`'s mean reconstruction error over the reference's."""
        if current.empty:
            return float("nan")
        return float(self.errors(current).mean() / self._mean - 1)

    def evaluate(self, current: pd.DataFrame, min_rows: int | None = MIN_REFERENCE_ROWS) -> MultivariateDrift:
        """Judge `current` (no verdict below `min_rows` rows; None: never)."""
        rows = len(current)
        enough = min_rows is not None and rows >= max(min_rows, MIN_BUCKET)
        if not enough:
            return MultivariateDrift(
                METHOD, float("nan"), self.floor, None, False, rows, min_rows, False, self.rate, self.floor,
                self.components, self.columns,
            )  # fmt: skip
        score = self.score(current)
        threshold = self.threshold(rows)
        p_value = self._null_at(rows).p_value(score / self._scale(rows))
        return MultivariateDrift(
            METHOD, score, threshold, p_value, bool(score >= threshold), rows, min_rows, True, self.rate, self.floor,
            self.components, self.columns,
        )  # fmt: skip
