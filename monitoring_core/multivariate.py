"""A multivariate drift detector: the largest change in a correlation between features, calibrated from the reference.

Per-feature tests look at one marginal at a time: a shift of the features' *joint* distribution
whose marginals stay put (two correlated features whose correlation flips sign, or distances no
longer matching the zones they run between) is invisible to them. This detector looks at the
correlations between the monitored features, after putting every feature on numbers:

- a numerical feature: its value (missing: the median);
- a categorical feature: its value's share of the reference (how common it is) and its *profile*,
  the reference's mean of every numerical feature among rows of that value (shrunk towards the overall
  mean for rare values, as if by PROFILE_PRIOR more rows): "trips from this zone are short", so a window
  whose long trips start in short-trip zones moves the correlation between distance and the pickup's
  profile even though neither marginal moved.

The score is the largest absolute difference between the window's correlation matrix and the
reference's, over every pair of these columns but those within one feature: "some correlation moved by
0.3". A PCA reconstruction error (NannyML's detector, this module's first design) scored the taxi's
shuffled distances no worse than clean rows: one-hot zone columns left the zones' link to distance off
the kept components.

Calibrated like the per-feature distances (monitoring_core/calibration.py): the reference is split
once (seeded); the profiles and shares are learnt on one half, and the other half, fresh to them as a
window is, gives the reference correlations. The null for n rows is simulated by bootstrapping n rows
of that half against one of REFERENCE_DRAWS bootstraps of the whole half (the reference's own sampling
noise), kept as a
`NullSummary` (conformal tail p-value, exact rate) per size bucket, normalised by sqrt(1/n + 1/half)
(beyond SIMULATED_ROWS the normalised null is reused). The threshold never goes below the effect-size
floor (default 0.1: a correlation moved by 0.1). No verdict below `min_rows`.
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

METHOD = "correlation"
DEFAULT_FLOOR = 0.1
OTHER = "\0other"  # missing values: never a category of their own
MIN_REFERENCE_ROWS = 100  # below this the two halves are too small to fit and calibrate on
PROFILE_PRIOR = 10  # a value's profile is shrunk towards the overall means as if by this many more rows
# Only values with this many rows get a profile (the rest: the overall means). A profile holds its own rows'
# values: on those rows it correlates with them by construction, by up to sqrt(profiled values / rows), which
# windows holding reference rows (a simulator replaying the reference) would show as a joint shift: with a
# profile for every zone, the simulator's clean taxi traffic was flagged in 80% of evaluations. With 30 rows
# per value that bias stays under sqrt(1/30) = 0.18 on the fitted half, half of it on a window drawn from
# the whole reference, under the detector's thresholds (0/40 such windows flagged at 500 and 800 rows).
PROFILE_MIN_ROWS = 30
REFERENCE_DRAWS = 500  # bootstraps of the reference correlations, paired at random with the window draws
CHUNK = 250  # null draws computed at once (bounded memory: CHUNK x rows x columns values)


@dataclass(frozen=True)
class MultivariateDrift:
    """The joint detector's outcome on one window.

    `score`: the largest change of a correlation between the encoded features, window vs reference (NaN
    without usable rows); `pair`: the two encoded columns it is between; `p_value`: its calibrated tail
    p-value; `detected`: p-value <= the rate and score >= the floor, with enough data.
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
    pair: tuple[str, str] | None
    columns: tuple[str, ...]


class _Encoder:
    """Features to numbers, learnt on one frame: numbers as they are, categories by share and profile."""

    def __init__(self, description: ModelDescription, frame: pd.DataFrame, columns: Sequence[str]) -> None:
        self.numerical = [c for c in columns if description.column_kind(c) is not Kind.CATEGORICAL]
        self.categorical = [c for c in columns if description.column_kind(c) is Kind.CATEGORICAL]
        self.medians = {c: self._median(frame[c]) for c in self.numerical}
        self.numerical = [c for c in self.numerical if math.isfinite(self.medians[c])]
        numbers = self._numbers(frame)
        overall = numbers.mean(axis=0) if len(frame) else np.zeros(len(self.numerical))
        self.shares: dict[str, pd.Series] = {}
        self.profiles: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
        for column in self.categorical:
            keys = self._keys(frame[column])
            self.shares[column] = keys.value_counts(normalize=True).drop(OTHER, errors="ignore")
            if self.numerical:
                grouped = pd.DataFrame(numbers, index=keys.index).groupby(keys.to_numpy())
                size = grouped.size()
                means = grouped.mean()[(size >= PROFILE_MIN_ROWS).to_numpy()]
                size = size[size >= PROFILE_MIN_ROWS].to_numpy()[:, None]
                weight = size / (size + PROFILE_PRIOR)
                table = pd.DataFrame(weight * means.to_numpy() + (1 - weight) * overall, index=means.index)
                self.profiles[column] = (table.drop(OTHER, errors="ignore"), overall)
        # Names and owning feature of each encoded column (pairs within one feature are not compared).
        self.names: list[str] = list(self.numerical)
        self.owners: list[str] = list(self.numerical)
        for column in self.categorical:
            self.names.append(f"{column} (share)")
            self.owners.append(column)
            if column in self.profiles:
                self.names += [f"{column} (mean {n})" for n in self.numerical]
                self.owners += [column] * len(self.numerical)

    @staticmethod
    def _median(values: pd.Series) -> float:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
        numbers = numbers[np.isfinite(numbers)]
        return float(np.median(numbers)) if numbers.size else math.nan

    @staticmethod
    def _keys(values: pd.Series) -> pd.Series:
        codes, uniques = pd.factorize(values)  # each distinct value keyed once; missing values get -1
        keys = np.array([category_key(v) for v in uniques] + [OTHER], dtype=object)  # missing joins "other"
        return pd.Series(keys[codes], index=values.index)

    def _numbers(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = [np.zeros((len(frame), 0))]
        for column in self.numerical:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
            blocks.append(np.where(np.isfinite(values), values, self.medians[column])[:, None])
        return np.hstack(blocks)

    @property
    def width(self) -> int:
        return len(self.names)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the encoded columns of `frame` (unseen or missing values: share 0, the overall profile)."""
        blocks = [self._numbers(frame)]
        for column in self.categorical:
            keys = self._keys(frame[column]).to_numpy()
            blocks.append(self.shares[column].reindex(keys).fillna(0.0).to_numpy(float)[:, None])
            if column in self.profiles:
                table, overall = self.profiles[column]
                profile = table.reindex(keys).to_numpy(float)
                blocks.append(np.where(np.isnan(profile), overall, profile))
        return np.hstack(blocks)


def _correlations(rows: np.ndarray) -> np.ndarray:
    """Return the correlation matrices of a stack of samples (..., rows, columns); constant columns: 0."""
    centred = rows - rows.mean(axis=-2, keepdims=True)
    cov = np.einsum("...ri,...rj->...ij", centred, centred)
    std = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 0, None))
    denom = std[..., :, None] * std[..., None, :]
    return np.divide(cov, denom, out=np.zeros_like(cov), where=denom > 1e-12)


class CorrelationDrift:
    """The largest change of a correlation between monitored features, calibrated on held-out reference rows."""

    def __init__(
        self,
        description: ModelDescription,
        reference: pd.DataFrame,
        columns: Sequence[str] | None = None,
        rate: float = 0.005,
        settings: CalibrationSettings | None = None,
        floor: float = DEFAULT_FLOOR,
    ) -> None:
        """Learn shares and profiles on one seeded half of `reference`, the reference correlations on the other.

        Raises ValueError when the reference or the columns cannot support a joint detector (fewer than
        two features, no pair of encoded columns from different features, or MIN_REFERENCE_ROWS rows).
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
        self.encoder = _Encoder(description, fit, self.columns)
        owners = np.asarray(self.encoder.owners)
        upper = np.triu(np.ones((len(owners), len(owners)), dtype=bool), k=1)
        self._pairs = upper & (owners[:, None] != owners[None, :])  # pairs of columns of different features
        if not self._pairs.any():
            raise ValueError("a multivariate detector needs two encoded columns of different features")
        self._held = self.encoder.transform(held)
        self._reference = _correlations(self._held)
        self._nulls: dict[int, NullSummary] = {}
        self._references: np.ndarray | None = None

    @property
    def components(self) -> int:
        """Return the number of encoded columns the correlations are taken between."""
        return self.encoder.width

    def _scale(self, rows: int) -> float:
        return math.sqrt(1 / rows + 1 / len(self._held))

    def _changes(self, correlations: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Return the largest absolute change over the compared pairs, per matrix of the stack."""
        return np.abs(correlations - reference)[..., self._pairs].max(axis=-1)

    def _reference_draws(self) -> np.ndarray:
        """Return REFERENCE_DRAWS bootstraps of the reference correlations: their own sampling noise, drawn once."""
        if self._references is None:
            rng = np.random.default_rng([self.settings.seed, zlib.crc32(METHOD.encode()), 0])
            held = self._held
            self._references = np.concatenate([
                _correlations(held[rng.integers(0, len(held), (min(CHUNK, REFERENCE_DRAWS - start), len(held)))])
                for start in range(0, REFERENCE_DRAWS, CHUNK)
            ])  # fmt: skip
        return self._references

    def _summary(self, bucket: int) -> NullSummary:
        if bucket not in self._nulls:
            rng = np.random.default_rng([self.settings.seed, zlib.crc32(METHOD.encode()), bucket])
            draws, held = self.settings.draws, self._held
            values = np.empty(draws)
            references = self._reference_draws()
            for start in range(0, draws, CHUNK):
                stop = min(start + CHUNK, draws)
                window = _correlations(held[rng.integers(0, len(held), (stop - start, bucket))])
                values[start:stop] = self._changes(window, references[rng.integers(0, len(references), stop - start)])
            self._nulls[bucket] = NullSummary.of(values / self._scale(bucket))
        return self._nulls[bucket]

    def _null_at(self, rows: int) -> NullSummary:
        rows = max(rows, MIN_BUCKET)
        bucket = size_bucket(rows)
        limit = size_bucket(SIMULATED_ROWS)  # beyond it the normalised null keeps its shape (correlations ~ normal)
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

    def score(self, current: pd.DataFrame) -> tuple[float, tuple[str, str] | None]:
        """Return (the largest change of a correlation in `current` against the reference, its pair of columns)."""
        if len(current) < 2:
            return float("nan"), None
        changes = np.abs(_correlations(self.encoder.transform(current)) - self._reference)
        changes = np.where(self._pairs, changes, -1.0)
        i, j = np.unravel_index(int(np.argmax(changes)), changes.shape)
        return float(changes[i, j]), (self.encoder.names[i], self.encoder.names[j])

    def evaluate(self, current: pd.DataFrame, min_rows: int | None = MIN_REFERENCE_ROWS) -> MultivariateDrift:
        """Judge `current` (no verdict below `min_rows` rows; None: never)."""
        rows = len(current)
        enough = min_rows is not None and rows >= max(min_rows, MIN_BUCKET)
        if not enough:
            return MultivariateDrift(
                METHOD, float("nan"), self.floor, None, False, rows, min_rows, False, self.rate, self.floor,
                None, self.columns,
            )  # fmt: skip
        score, pair = self.score(current)
        threshold = self.threshold(rows)
        p_value = self._null_at(rows).p_value(score / self._scale(rows))
        return MultivariateDrift(
            METHOD, score, threshold, p_value, bool(score >= threshold), rows, min_rows, True, self.rate, self.floor,
            pair, self.columns,
        )  # fmt: skip
