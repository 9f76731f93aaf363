"""Drift thresholds calibrated from the reference for the number of rows being judged.

A distance between the reference and `n` rows of the *same* distribution is not zero: it is
sampling noise, large for small `n` (and for ~260 sparse zones). A fixed threshold is right at
one size only. Here each column's threshold for `n` rows is the `1 - alpha` quantile of the null
distribution of its pinned distance at that size, never below the configured effect-size floor
(the schema's pinned threshold), and a column gets a verdict only from the size at which a
shift of the floor's size is detected with `min_power`. Design, derivation and measurements:
docs/evidently_service.md "Calibrated thresholds".

Everything is computed lazily per size bucket and cached, seeded per (column, bucket), so the
metrics service and the batch flow derive the same threshold for the same reference and size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import zlib
from dataclasses import astuple, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from monitoring_core.description import DriftTest

log = logging.getLogger(__name__)

# Part of every cache key: bump when the simulation changes, so no stale threshold is reused.
CALIBRATION_VERSION = 2

# Size buckets: 10 per decade (10, 13, 16, 20, 25, 32, 40, 50, 63, 79, 100, ...). A window of
# n rows uses the largest bucket <= n: noise shrinks with n, so that threshold is conservative.
SIZE_BUCKETS: tuple[int, ...] = tuple(sorted({round(10 ** (1 + k / 10)) for k in range(51)}))
MIN_BUCKET = SIZE_BUCKETS[0]
# The holdout null is simulated up to this size; larger sizes scale it (see `_NumericalNull`).
SIMULATED_ROWS = 400
# Methods with a calibrated null (the schema's pinned distances, computed by the drift adapter's fast paths).
CALIBRATED = {("wasserstein", "numerical"), ("jensenshannon", "categorical")}
# Minimum rows for a method without a calibrated null (e.g. a p-value test a user configured).
UNCALIBRATED_MIN_ROWS = 30


@dataclass(frozen=True)
class CalibrationSettings:
    """The rates and simulation sizes the thresholds are calibrated with (monitoring.yaml `calibration`)."""

    false_alarm_rate: float = 0.01  # per column verdict, per evaluation of clean data
    dataset_false_alarm_rate: float = 0.01  # per dataset verdict, per evaluation of clean data
    detectable_shift: float = 2.5  # the minimum size must detect a shift of this many floors...
    min_power: float = 0.5  # ...this often (0.5: the shifted distance's median clears the threshold)
    draws: int = 2000  # null draws per size bucket
    power_draws: int = 400  # draws per size bucket when deriving the minimum size
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("false_alarm_rate", "dataset_false_alarm_rate", "min_power"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be within (0, 1), got {getattr(self, name)}")
        if self.detectable_shift < 1:
            raise ValueError(f"detectable_shift must be >= 1, got {self.detectable_shift}")
        if self.draws < 100 or self.power_draws < 50:
            raise ValueError("draws must be >= 100 and power_draws >= 50")

    def column_rate(self, dataset_drift_share: float) -> float:
        """Return the per-column false-alarm rate that keeps the dataset rule within its rate.

        Dataset drift needs at least k >= share * m of the m judged features to drift. With each
        feature wrong with probability a, the expected number of false flags is m * a, so by Markov's
        inequality P(at least k) <= m * a / k <= a / share, whatever the dependence between features.
        """
        return min(self.false_alarm_rate, self.dataset_false_alarm_rate * dataset_drift_share)


def size_bucket(n: int) -> int:
    """Return the largest size bucket <= n (0 below the smallest bucket)."""
    i = np.searchsorted(SIZE_BUCKETS, n, side="right")
    return SIZE_BUCKETS[i - 1] if i else 0


def _rng(seed: int, column: str, bucket: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(column.encode()), bucket, purpose])


# The threshold is an upper confidence bound of the null quantile, not its point estimate: with
# 2,000 draws only ~10 lie beyond the 99.5% quantile of a heavy-tailed distance, and a point
# estimate that lands low would double the false-alarm rate (measured: ~1% instead of 0.5%).
QUANTILE_CONFIDENCE = 0.95


def _quantile(values: np.ndarray, level: float) -> float:
    """Return the order statistic that is >= the `level` quantile with probability QUANTILE_CONFIDENCE."""
    from scipy.stats import binom

    # The count of draws at or below the true quantile is Binomial(B, level): past its 95% point lies the bound.
    rank = int(binom.ppf(QUANTILE_CONFIDENCE, len(values), level))
    return float(np.sort(values)[min(rank, len(values) - 1)])


class _NumericalNull:
    """Normed Wasserstein distances of the fixed reference against step functions, vectorised over draws.

    `area(points, levels)` is the integral of |F_R - S| for S the step function rising to
    `levels[i]` at `points[i]` (rows sorted, last level 1), in O(points) per row: on each step
    interval the integrand is |F_R - c| with F_R increasing, split where F_R crosses c.
    """

    def __init__(self, values: np.ndarray) -> None:
        self.r = np.sort(values)
        self.n = len(self.r)
        self.norm = max(float(np.std(values)), 0.001)  # Evidently's normed Wasserstein denominator
        steps = np.arange(1, self.n) / self.n
        self._g = np.concatenate(([0.0], np.cumsum(steps * np.diff(self.r))))  # integral of F_R up to r[i]

    def _G(self, x: np.ndarray) -> np.ndarray:
        j = np.searchsorted(self.r, x, side="right")
        jj = np.maximum(j - 1, 0)
        return self._g[jj] + (j / self.n) * (x - self.r[jj])  # 0 below r[0]: j = 0 and _g[0] = 0

    def _area(self, points: np.ndarray, levels: np.ndarray, ga: np.ndarray, g_end: np.ndarray) -> np.ndarray:
        end = np.maximum(points[:, -1:], self.r[-1])
        b = np.concatenate((points[:, 1:], end), axis=1)
        at = np.clip(np.ceil(levels * self.n - 1e-9).astype(np.int64) - 1, 0, self.n - 1)
        m = np.clip(self.r[at], points, b)
        gb = np.concatenate((ga[:, 1:], g_end), axis=1)
        # G at a reference value r[k] is _g[k] (duplicates share it), so no search is needed for it.
        gm = np.where(m == points, ga, np.where(m == b, gb, self._g[at]))
        inside = (gb - ga) - levels * (b - points) + 2 * np.maximum(0.0, levels * (m - points) - (gm - ga))
        return ga[:, 0] + inside.sum(axis=1)

    def area(self, points: np.ndarray, levels: np.ndarray) -> np.ndarray:
        end = np.maximum(points[:, -1:], self.r[-1])
        return self._area(points, levels, self._G(points), self._G(end))

    def holdout_null(self, rng: np.random.Generator, size: int, draws: int) -> np.ndarray:
        """Return `draws` normed distances between n-row held-out samples and the rest of the reference.

        With H held out, F_{R-H} - F_H = N/(N-n) (F_R - F_H), so the distance to the rest is the
        scaled distance to the whole reference: no self-comparison.
        """
        at = np.sort(_without_replacement(rng, self.n, size, draws), axis=1)  # positions in the sorted reference
        levels = np.broadcast_to(np.arange(1, size + 1) / size, at.shape)
        g_end = np.full((draws, 1), self._g[-1])
        return self._area(self.r[at], levels, self._g[at], g_end) * self.n / (self.n - size) / self.norm

    def shifted(self, rng: np.random.Generator, size: int, draws: int, distance: float) -> np.ndarray:
        """Return `draws` normed distances between the reference and n-row samples moved by `distance` std.

        Moving every value by d changes the normed Wasserstein distance of the distribution by exactly d.
        """
        delta = distance * self.norm
        if size <= self.n // 2:
            # Held out and moved, against the rest: F_{R-H} - F_{H+d} = N/(N-n) (F_R - C), with C
            # the step function rising 1/N at each held value and (N-n)/(N n) at each moved one.
            held = self.r[_without_replacement(rng, self.n, size, draws)]
            points = np.concatenate((held, held + delta), axis=1)
            heights = np.concatenate(
                (np.full(held.shape, 1 / self.n), np.full(held.shape, (self.n - size) / (self.n * size))), axis=1
            )
            order = np.argsort(points, axis=1, kind="stable")
            points, heights = np.take_along_axis(points, order, 1), np.take_along_axis(heights, order, 1)
            levels = np.minimum(np.cumsum(heights, axis=1), 1.0)
            levels[:, -1] = 1.0
            return self.area(points, levels) * self.n / (self.n - size) / self.norm
        drawn = np.sort(self.r[rng.integers(0, self.n, size=(draws, size))], axis=1) + delta
        levels = np.broadcast_to(np.arange(1, size + 1) / size, drawn.shape)
        return self.area(drawn, levels) / self.norm


def _without_replacement(rng: np.random.Generator, population: int, size: int, draws: int) -> np.ndarray:
    return np.stack([rng.choice(population, size, replace=False) for _ in range(draws)])


def _jensenshannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise scipy.spatial.distance.jensenshannon (natural log) of share vectors."""
    from scipy.special import rel_entr

    m = (p + q) / 2
    return np.sqrt(np.maximum((rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1)) / 2, 0.0))


class _CategoricalNull:
    """Jensen-Shannon distances from category counts (one bin per value, as the adapter computes it)."""

    def __init__(self, values: np.ndarray) -> None:
        _, self.counts = np.unique(values, return_counts=True)
        self.n = int(self.counts.sum())
        self.shares = self.counts / self.n

    def _reference_side(self, rng: np.random.Generator, size: int, draws: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (counts of the reference side, counts held out of it or None) for n-row samples."""
        if size <= self.n // 2:
            held = rng.multivariate_hypergeometric(self.counts, size, size=draws, method="count")
            return self.counts - held, held
        # Too large to hold out: both sides are independent bootstrap samples of the reference.
        return rng.multinomial(self.n, self.shares, size=draws), None

    def null(self, rng: np.random.Generator, size: int, draws: int) -> np.ndarray:
        """Return `draws` distances between n-row samples and a reference they are not part of."""
        rest, held = self._reference_side(rng, size, draws)
        current = held if held is not None else rng.multinomial(size, self.shares, size=draws)
        return _jensenshannon(rest / rest.sum(axis=1, keepdims=True), current / size)

    def shifted_shares(self, distance: float) -> np.ndarray:
        """Return shares at Jensen-Shannon `distance` from the reference, on the reference's own categories.

        Every other category by popularity loses a share t of its mass to the rest, in proportion to
        theirs: busy and rare categories on both sides, no new category (the hardest kind of move to
        see through sparse-category noise; moves to unseen zones show far more).
        """
        order = np.argsort(-self.shares, kind="stable")
        losing = np.zeros(len(self.shares), dtype=bool)
        losing[order[::2]] = True

        def moved(t: float) -> np.ndarray:
            q = np.where(losing, self.shares * (1 - t), self.shares)
            gaining = ~losing
            q[gaining] += t * self.shares[losing].sum() * self.shares[gaining] / max(self.shares[gaining].sum(), 1e-12)
            return q

        def js(t: float) -> float:
            return float(_jensenshannon(self.shares[None], moved(t)[None])[0])

        if len(self.shares) < 2 or js(1.0) <= distance:
            return moved(1.0)
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if js(mid) < distance else (lo, mid)
        return moved(hi)

    def shifted(self, rng: np.random.Generator, size: int, draws: int, distance: float) -> np.ndarray:
        """Return `draws` distances between the reference side and n-row samples of shares `distance` away."""
        rest, _ = self._reference_side(rng, size, draws)
        current = rng.multinomial(size, self.shifted_shares(distance), size=draws)
        return _jensenshannon(rest / rest.sum(axis=1, keepdims=True), current / size)


class CalibrationCache:
    """Thresholds and powers already simulated for a reference, kept in a JSON file across restarts.

    Entries are keyed by a hash of the column's reference values, test, rate and settings, so a
    changed reference or setting never reuses a stale value. The file is written atomically and
    merged with what other processes wrote; a file that cannot be read or written only costs the
    simulation again (logged once).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, dict[str, float]]] = {}
        self._dirty = False
        self._warned = False
        self._lock = threading.Lock()
        if path is not None:
            self.entries = self._read()

    def _read(self) -> dict:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            self._warn(f"cannot read {self.path}: {exc}")
            return {}
        return data if isinstance(data, dict) else {}

    def _warn(self, message: str) -> None:
        if not self._warned:
            log.warning("drift calibration cache: %s (thresholds are recomputed instead)", message)
            self._warned = True

    def entry(self, key: str) -> dict[str, dict[str, float]]:
        """Return the mutable entry of one column calibration."""
        with self._lock:
            entry = self.entries.setdefault(key, {})
            entry.setdefault("thresholds", {})
            entry.setdefault("power", {})
            return entry

    def changed(self) -> None:
        """Note that an entry gained a value."""
        self._dirty = True

    def save(self) -> None:
        """Write new values to the file (merged with its current content), if there are any."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            merged = self._read()
            for key, entry in self.entries.items():
                target = merged.setdefault(key, {})
                for part, values in entry.items():
                    target.setdefault(part, {}).update(values)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(merged, sort_keys=True))
                tmp.replace(self.path)
            except OSError as exc:
                self._warn(f"cannot write {self.path}: {exc}")
            self._dirty = False


def cache_path_for(reference_path: Path) -> Path:
    """Return where the calibration cache of a reference file lives: beside it."""
    return Path(reference_path).with_name(Path(reference_path).name + ".calibration.json")


class ColumnCalibration:
    """One column's calibrated threshold per size bucket and the minimum rows for a verdict."""

    def __init__(
        self,
        column: str,
        test: DriftTest,
        kind: str,
        values: np.ndarray | None,
        rate: float,
        settings: CalibrationSettings,
        cache: CalibrationCache | None = None,
    ) -> None:
        self.column = column
        self.floor = test.threshold
        self.rate = rate
        self.settings = settings
        self.calibrated = values is not None and (test.method, kind) in CALIBRATED and not test.is_p_value
        self._null: _NumericalNull | _CategoricalNull | None = None
        if self.calibrated:
            assert values is not None
            self._null = _NumericalNull(values) if kind == "numerical" else _CategoricalNull(values)
        self._thresholds: dict[int, float] = {}
        self._power: dict[int, float] = {}
        self._cache = cache
        self._entry: dict[str, dict[str, float]] | None = None
        if self.calibrated and cache is not None:
            assert values is not None
            digest = hashlib.sha256(
                repr((CALIBRATION_VERSION, column, test.method, test.threshold, kind, rate, astuple(settings))).encode()
            )
            digest.update(np.ascontiguousarray(values, dtype=float).tobytes())
            self._entry = cache.entry(digest.hexdigest()[:24])
            self._thresholds = {int(k): float(v) for k, v in self._entry["thresholds"].items()}
            self._power = {int(k): float(v) for k, v in self._entry["power"].items()}

    def _remember(self, part: str, bucket: int, value: float) -> float:
        (self._thresholds if part == "thresholds" else self._power)[bucket] = value
        if self._entry is not None and self._cache is not None:
            self._entry[part][str(bucket)] = value
            self._cache.changed()
        return value

    @property
    def reference_rows(self) -> int:
        """Return the reference values the null is built from (0 when not calibrated)."""
        return self._null.n if self._null is not None else 0

    def threshold(self, rows: int) -> tuple[float, int]:
        """Return (threshold, size bucket it was calibrated for) for a sample of `rows` values."""
        bucket = max(size_bucket(rows), MIN_BUCKET)
        if not self.calibrated:
            return self.floor, bucket
        if bucket not in self._thresholds:
            self._remember("thresholds", bucket, max(self.floor, self.null_quantile(bucket)))
        return self._thresholds[bucket], bucket

    def null_quantile(self, bucket: int) -> float:
        """Return the 1 - rate quantile of the pinned distance between the reference and `bucket` clean rows."""
        null, draws = self._null, self.settings.draws
        rng = _rng(self.settings.seed, self.column, bucket, 0)
        if isinstance(null, _CategoricalNull):
            return _quantile(null.null(rng, bucket, draws), 1 - self.rate)
        assert isinstance(null, _NumericalNull)
        simulated = size_bucket(min(SIMULATED_ROWS, null.n // 2))
        if bucket <= simulated:
            return _quantile(null.holdout_null(rng, bucket, draws), 1 - self.rate)
        # Beyond the simulated sizes the distance scales like sqrt(1/N + 1/n) (the two-sample
        # Wasserstein limit); the base quantile is from a reference side of N - n0 rows.
        base = self._thresholds.get(-simulated) or self._remember(
            "thresholds", -simulated, self.null_quantile(simulated)
        )
        n, n0 = null.n, simulated
        return base * math.sqrt((1 / n + 1 / bucket) / (1 / (n - n0) + 1 / n0))

    def power(self, bucket: int) -> float:
        """Return the share of `bucket`-row samples shifted by `detectable_shift` floors that exceed the threshold."""
        if isinstance(self._null, _CategoricalNull) and len(self._null.shares) < 2:
            return 1.0  # one reference category: any other value is a new bin the distance sees in full
        if bucket not in self._power:
            threshold, _ = self.threshold(bucket)
            rng = _rng(self.settings.seed, self.column, bucket, 1)
            assert self._null is not None
            shift = self.floor * self.settings.detectable_shift
            scores = self._null.shifted(rng, bucket, self.settings.power_draws, shift)
            self._remember("power", bucket, float(np.mean(scores >= threshold)))
        return self._power[bucket]

    @cached_property
    def min_rows(self) -> int | None:
        """Return the smallest size bucket with `min_power` against the detectable shift; None if none up to 2N."""
        if not self.calibrated:
            return UNCALIBRATED_MIN_ROWS
        assert self._null is not None
        if self._null.n < 2 * MIN_BUCKET:
            return None  # too few values to hold out the smallest size bucket: no null to calibrate against
        candidates = [b for b in SIZE_BUCKETS if b <= max(2 * self._null.n, MIN_BUCKET)]
        lo, hi = 0, len(candidates) - 1  # power grows with size: binary search for the first bucket
        while lo < hi:
            mid = (lo + hi) // 2
            if self.power(candidates[mid]) >= self.settings.min_power:
                hi = mid
            else:
                lo = mid + 1
        if self.power(candidates[lo]) < self.settings.min_power:
            return None  # the reference is too small to detect the shift at any window size up to 2N
        return candidates[lo]
