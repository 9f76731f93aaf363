"""Drift thresholds and tail p-values calibrated from the reference for the number of rows being judged.

A distance between the reference and `n` rows of the *same* distribution is not zero: it is
sampling noise, large for small `n` (and for ~260 sparse zones). A fixed threshold is right at
one size only. Here each column's distance gets a simulated null distribution at the window's
size (rows held out of the reference against the rest): its calibrated tail p-value is the
conformal share `(1 + #{null draws >= score}) / (draws + 1)`, and its threshold the smallest score
whose p-value is at most the false-alarm rate, never below the configured effect-size floor (the
description's threshold; for a number, the score a shift of the floor's size reaches in 95% of windows:
FLOOR_POWER). Over the null's own randomness that rate is exact (the window's score
and the draws are exchangeable), not an upper bound. A column gets a verdict only from the size at
which a shift of `detectable_shift` floors is detected with `min_power`. Design, derivation and
measurements: docs/evidently_service.md "Calibrated thresholds".

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
from typing import Any

import numpy as np

from monitoring_core.description import DEFAULT_UNSEEN_FLOOR, DriftTest

log = logging.getLogger(__name__)

# Part of every cache key: bump when the simulation changes, so no stale threshold is reused.
# 3: conformal thresholds and tail p-values from 10,000 draws, interpolated between buckets; "tv".
# 4: categorical windows larger than half the reference meet unseen categories (Good-Turing mass).
# 5: categorical features also test the share of window values the reference never saw (the same
#    simulated windows' unseen share), at UNSEEN_RATE_SHARE of the feature's rate; the distance at the rest.
# 6: a number's score counts as reaching the floor from what samples moved by the floor reach (FLOOR_Z).
# 7: numerical features also test their histogram over the reference's quantile bins (BINS_RATE_SHARE).
CALIBRATION_VERSION = 7

# Size buckets: 10 per decade (10, 13, 16, 20, 25, 32, 40, 50, 63, 79, 100, ...). A window of n rows
# between two buckets uses their nulls' quantile functions interpolated in log n, each draw first
# normalised by the two-sample scale sqrt(1/n + 1/N) (what makes nulls of neighbouring sizes alike).
SIZE_BUCKETS: tuple[int, ...] = tuple(sorted({round(10 ** (1 + k / 10)) for k in range(51)}))
MIN_BUCKET = SIZE_BUCKETS[0]
# The holdout null is simulated up to this size; larger sizes scale it (see `_NumericalNull`).
SIMULATED_ROWS = 400
# Methods with a calibrated null (the drift adapter's fast paths compute exactly these distances).
CALIBRATED = {("wasserstein", "numerical"), ("jensenshannon", "categorical"), ("tv", "categorical")}
# Minimum rows for a method without a calibrated null (e.g. a p-value test a user configured).
UNCALIBRATED_MIN_ROWS = 30
# The largest TAIL_SHARE of the draws are kept exactly (p-values below it are the exact conformal
# ones); the body of the null is kept as quantiles at BODY_LEVELS (p-values above it, for display).
TAIL_SHARE = 0.05
BODY_LEVELS = np.linspace(0.0, 0.95, 20)
# A categorical feature's verdict is two tests on the same simulated windows: the distance (total variation
# or Jensen-Shannon) and the share of window values the reference never saw. Its false-alarm rate is split
# between them (weighted Bonferroni: drift when either passes its part, so the feature's rate stays at most
# the stated one). The unseen share's null is narrow (a binomial around the Good-Turing mass), so a small part
# of the rate costs it little power, while the distance's wide null keeps most of it.
UNSEEN_RATE_SHARE = 0.2
# The unseen test's default effect floor: this share of rows on unseen values beyond the reference's own
# expected unseen share (its Good-Turing mass); a column's `drift.unseen_floor` overrides it.
UNSEEN_FLOOR = DEFAULT_UNSEEN_FLOOR
# A floor is an effect size and a score is an estimate of one: a numerical feature moved by exactly the floor
# scores under it in about half the windows. A move by d (in reference standard deviations) scores about
# |d + the two samples' difference in means|, whose spread is the two-sample scale sqrt(1/n + 1/N) whatever
# the distribution (the central limit theorem). So a number's score counts as reaching the floor from the
# floor less FLOOR_Z such spreads: a shift at the floor is reported in ~FLOOR_POWER of the windows where it is
# significant, on average over references (one reference's own mean error moves it), and as windows grow
# the bar rises toward the floor (to within the reference's own noise), so
# huge windows report no shift much smaller than it. Categories keep the hard floor: over many sparse
# categories the total variation of pure noise is a large share of the floor (0.08 of 0.1 for ~260 zones
# against 5,000 reference rows) and adds to a shift's score, which reaches the floor already; a lower bar
# there would report shifts of a fifth of the floor in huge windows.
FLOOR_POWER = 0.95
FLOOR_Z = 1.6449  # the standard normal's FLOOR_POWER quantile
# A numerical feature's verdict is two tests on the same simulated windows too: the normed Wasserstein distance
# (its effect size, and the most powerful of the two for a move of continuous values) and the Jensen-Shannon
# distance between the window's and the reference's shares in the reference's quantile bins. Real numbers come
# with atoms (zeros, round values, top codes, integers): a rescaling moves whole atoms across bin edges, which a
# histogram sees long before the Wasserstein distance does (measured on the shipped classifier's husband income:
# x1.1 at 500 rows found in 98% of windows against 46%, at the same 0.5% rate), and it sees variance changes of
# skewed values (lognormal spread x1.2 at 500 rows: 87% against 50%). On continuous location shifts it adds
# nothing, and its share of the rate costs the distance 2-6 points of power there; so it gets BINS_RATE_SHARE of
# the feature's rate (weighted Bonferroni), and a flag still needs the distance to reach the effect-size floor.
BINS_RATE_SHARE = 0.3
# Quantile bins per numerical feature: one per BIN_ROWS reference values, within [MIN_BINS, MAX_BINS]. Each edge
# sits halfway between two distinct reference values, so an atom stays whole inside one bin.
MAX_BINS, MIN_BINS, BIN_ROWS = 40, 10, 50


@dataclass(frozen=True)
class CalibrationSettings:
    """The rates and simulation sizes the thresholds are calibrated with (monitoring.yaml `calibration`)."""

    false_alarm_rate: float = 0.01  # per column verdict, per evaluation of clean data
    dataset_false_alarm_rate: float = 0.01  # family-wise, over every feature, per evaluation of clean data
    detectable_shift: float = 2.5  # the minimum size must detect a shift of this many floors...
    min_power: float = 0.5  # ...this often (0.5: the shifted distance's median clears the threshold)
    draws: int = 10_000  # null draws per size bucket (p-values resolve down to 1 / (draws + 1))
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
        """Return the per-column false-alarm rate: `min(false_alarm_rate, dataset_false_alarm_rate x share)`.

        The dataset verdict no longer depends on it (Holm over the features' tail p-values, at
        `dataset_false_alarm_rate`); the formula is kept so the stated per-feature rate of the shipped
        settings (0.5%) does not change.
        """
        return min(self.false_alarm_rate, self.dataset_false_alarm_rate * dataset_drift_share)


def size_bucket(n: int) -> int:
    """Return the largest size bucket <= n (0 below the smallest bucket)."""
    i = np.searchsorted(SIZE_BUCKETS, n, side="right")
    return SIZE_BUCKETS[i - 1] if i else 0


def next_bucket(bucket: int) -> int:
    """Return the size bucket after `bucket` (itself for the largest)."""
    i = SIZE_BUCKETS.index(bucket)
    return SIZE_BUCKETS[min(i + 1, len(SIZE_BUCKETS) - 1)]


def _rng(seed: int, column: str, bucket: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(column.encode()), bucket, purpose])


@dataclass(frozen=True)
class NullSummary:
    """A simulated null distribution as kept: its body as quantiles, its upper tail draw by draw.

    `p_value(z)` is the conformal tail probability `(1 + #{draws >= z}) / (draws + 1)`: for a score
    exchangeable with the draws (a clean window), `P(p <= a) <= a` exactly, whatever the null's
    shape; `threshold(a)` is the smallest score with `p_value <= a`, so `score >= threshold` and
    `p_value <= a` are one verdict.
    """

    draws: int
    body: tuple[float, ...]  # quantiles at BODY_LEVELS
    tail: tuple[float, ...]  # the largest ceil(TAIL_SHARE x draws) draws, ascending

    @classmethod
    def of(cls, values: np.ndarray) -> NullSummary:
        ordered = np.sort(np.asarray(values, dtype=float))
        k = max(1, math.ceil(TAIL_SHARE * len(ordered)))
        return cls(len(ordered), tuple(np.quantile(ordered, BODY_LEVELS)), tuple(ordered[-k:]))

    @classmethod
    def from_json(cls, data: dict) -> NullSummary:
        return cls(int(data["draws"]), tuple(data["body"]), tuple(data["tail"]))

    def to_json(self) -> dict:
        return {"draws": self.draws, "body": list(self.body), "tail": list(self.tail)}

    def mixed(self, other: NullSummary, weight: float) -> NullSummary:
        """Return the quantile-function interpolation (1 - weight) x self + weight x other."""
        if weight <= 0 or other is self:
            return self
        body = (1 - weight) * np.asarray(self.body) + weight * np.asarray(other.body)
        tail = (1 - weight) * np.asarray(self.tail) + weight * np.asarray(other.tail)
        return NullSummary(self.draws, tuple(body), tuple(tail))

    def p_value(self, z: float) -> float:
        tail = np.asarray(self.tail)
        if z >= tail[0]:
            count = len(tail) - int(np.searchsorted(tail, z, side="left"))
            return (1 + count) / (self.draws + 1)
        # Below the kept tail: the survival function interpolated over the body's quantiles.
        levels = np.append(BODY_LEVELS, 1 - len(tail) / self.draws)
        body = np.append(self.body, tail[0])
        return float(max(1.0 - np.interp(z, body, levels), (1 + len(tail)) / (self.draws + 1)))

    def threshold(self, rate: float) -> float:
        allowed = math.floor(rate * (self.draws + 1)) - 1  # the most draws a flagged score may not exceed
        if allowed < 0:
            return math.inf  # too few draws to resolve this rate
        tail = self.tail
        if allowed >= len(tail):
            return float(np.interp(1 - rate, BODY_LEVELS, self.body))
        return float(np.nextafter(tail[len(tail) - 1 - allowed], math.inf))


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
        self.edges = histogram_edges(self.r)
        self._bin = np.searchsorted(self.edges, self.r, side="right")  # each sorted reference value's bin
        self.bins = len(self.edges) + 1
        self.bin_counts = np.bincount(self._bin, minlength=self.bins)

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

    def holdout_null(self, rng: np.random.Generator, size: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
        """Return `draws` (normed Wasserstein, histogram Jensen-Shannon) distances of n-row held-out samples
        against the rest of the reference, both statistics on the same draws.

        With H held out, F_{R-H} - F_H = N/(N-n) (F_R - F_H), so the distance to the rest is the
        scaled distance to the whole reference: no self-comparison.
        """
        at = np.sort(_without_replacement(rng, self.n, size, draws), axis=1)  # positions in the sorted reference
        levels = np.broadcast_to(np.arange(1, size + 1) / size, at.shape)
        g_end = np.full((draws, 1), self._g[-1])
        distances = self._area(self.r[at], levels, self._g[at], g_end) * self.n / (self.n - size) / self.norm
        flat = (self._bin[at] + self.bins * np.arange(draws)[:, None]).ravel()
        held = np.bincount(flat, minlength=draws * self.bins).reshape(draws, self.bins)
        rest = (self.bin_counts - held) / (self.n - size)
        return distances, _jensenshannon(held / size, rest)

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


def histogram_edges(ordered: np.ndarray) -> np.ndarray:
    """Return the inner bin edges of sorted reference values: about one bin per BIN_ROWS values at its quantiles.

    Each edge lies halfway between the quantile's value and the next distinct value, so equal values (an atom)
    share a bin and an atom heavier than a bin is a bin of its own; values beyond the reference's range fall in
    the outer bins.
    """
    bins = min(MAX_BINS, max(MIN_BINS, len(ordered) // BIN_ROWS))
    distinct = np.unique(ordered)
    if len(distinct) < 2:
        return np.empty(0)
    at = np.unique(np.quantile(ordered, np.linspace(0, 1, bins + 1)[1:-1], method="lower"))
    following = distinct[np.minimum(np.searchsorted(distinct, at, side="right"), len(distinct) - 1)]
    return np.unique((at + following)[following > at] / 2)


def bin_shares(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return the share of `values` in each bin of `edges` (inner edges: len(edges) + 1 bins)."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def _without_replacement(rng: np.random.Generator, population: int, size: int, draws: int) -> np.ndarray:
    """Return `draws` sorted rows of `size` distinct positions in range(population).

    Drawn with replacement, then every repeated position is drawn again until none is left: the
    procedure does not depend on the positions' labels, so each row is a uniform random subset
    (and, vectorised, ~50x faster than one `rng.choice(replace=False)` per row).
    """
    if size > population:
        raise ValueError(f"cannot draw {size} distinct positions out of {population}")
    at = np.sort(rng.integers(0, population, (draws, size)), axis=1)
    while True:
        repeated = np.zeros(at.shape, dtype=bool)
        repeated[:, 1:] = at[:, 1:] == at[:, :-1]
        count = int(repeated.sum())
        if not count:
            return at
        at[repeated] = rng.integers(0, population, count)
        at.sort(axis=1)


def _jensenshannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise scipy.spatial.distance.jensenshannon (natural log) of share vectors."""
    from scipy.special import rel_entr

    m = (p + q) / 2
    return np.sqrt(np.maximum((rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1)) / 2, 0.0))


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise total variation distance of share vectors: half the L1 distance, the share of rows that moved."""
    return 0.5 * np.abs(p - q).sum(axis=-1)


class _CategoricalNull:
    """A categorical distance from category counts (one bin per value, as the adapter computes it).

    `method` is "tv" (total variation distance) or "jensenshannon".
    """

    def __init__(self, values: np.ndarray, method: str = "tv") -> None:
        _, self.counts = np.unique(values, return_counts=True)
        self.n = int(self.counts.sum())
        self.shares = self.counts / self.n
        self.distance = total_variation if method == "tv" else _jensenshannon

    def holds_out(self, size: int) -> bool:
        return size <= self.n // 2

    @property
    def unseen_share(self) -> float:
        """Return the Good-Turing estimate of the mass of categories the reference never saw: singletons / rows."""
        return float(np.sum(self.counts == 1)) / self.n

    def _reference_side(self, rng: np.random.Generator, size: int, draws: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Return (counts of the reference side, counts held out of it or None) for n-row samples."""
        if self.holds_out(size):
            held = rng.multivariate_hypergeometric(self.counts, size, size=draws, method="count")
            return self.counts - held, held
        # Too large to hold out: the reference side is a bootstrap sample of the reference.
        return rng.multinomial(self.n, self.shares, size=draws), None

    def null(self, rng: np.random.Generator, size: int, draws: int) -> np.ndarray:
        """Return `draws` distances between n-row samples and a reference they are not part of."""
        return self.null_draws(rng, size, draws)[0]

    def unseen_masses(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Return `draws` plausible unseen masses: the Good-Turing estimate with its sampling error (Esty 1983).

        The estimate N1/N has a standard error of about sqrt(N1 (1 - N1/N) + 2 N2) / N (N1, N2: categories
        seen once, twice). Without it a window of thousands of rows compared its unseen share with the
        estimate's value as if exact, and the estimate's own error alone set the false-alarm rate there.
        """
        once, twice = float(np.sum(self.counts == 1)), float(np.sum(self.counts == 2))
        error = math.sqrt(max(once * (1 - once / self.n) + 2 * twice, 0.0)) / self.n
        return np.clip(rng.normal(self.unseen_share, error, draws), 0.0, 1.0)

    def null_draws(self, rng: np.random.Generator, size: int, draws: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (distances, unseen shares) of `draws` n-row samples against a reference they are not part of.

        Each draw's window puts Binomial(n, m) rows on values the reference never saw, m one of
        `unseen_masses`: that count is the unseen share's null. A window held out of the reference scores its
        distance on its held-out rows (the unseen count is drawn beside it: held-out rows whose category was
        held out whole would count the shrunken reference side's novelty too, 2-3x a fresh window's); a
        larger window puts those rows in the distance's extra bin, so both statistics share the draw.
        """
        rest, held = self._reference_side(rng, size, draws)
        if held is not None:
            distances = self.distance(rest / rest.sum(axis=1, keepdims=True), held / size)
            return distances, rng.binomial(size, self.unseen_masses(rng, draws)) / size
        # A window about as large as the reference (a segment's window against its reference slice): drawn
        # from the reference's shares alone it could only hold the reference's categories, but a window of
        # fresh rows also lands on categories the reference never saw (mass ~ its singletons' share, Good-
        # Turing). Without that mass sparse columns ran at 5-8x their rate (e.g. ~90 dropoff zones over
        # ~630 rows of one segment). The unseen rows go to one extra bin the reference side never has:
        # both distances add such a bin's mass linearly, so one bin scores as many unseen categories would.
        unseen_rows = rng.binomial(size, self.unseen_masses(rng, draws))
        current = np.hstack((rng.multinomial(size - unseen_rows, self.shares), unseen_rows[:, None]))
        reference = np.hstack((rest, np.zeros((draws, 1))))
        return self.distance(reference / self.n, current / size), unseen_rows / size

    def shifted_shares(self, distance: float) -> np.ndarray:
        """Return shares at `distance` from the reference, on the reference's own categories.

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

        def measure(t: float) -> float:
            return float(self.distance(self.shares[None], moved(t)[None])[0])

        if len(self.shares) < 2 or measure(1.0) <= distance:
            return moved(1.0)
        lo, hi = 0.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if measure(mid) < distance else (lo, mid)
        return moved(hi)

    def shifted(self, rng: np.random.Generator, size: int, draws: int, distance: float) -> np.ndarray:
        """Return `draws` distances between the reference side and n-row samples of shares `distance` away."""
        rest, _ = self._reference_side(rng, size, draws)
        current = rng.multinomial(size, self.shifted_shares(distance), size=draws)
        return self.distance(rest / rest.sum(axis=1, keepdims=True), current / size)


class CalibrationCache:
    """Thresholds and powers already simulated for a reference, kept in a JSON file across restarts.

    Entries are keyed by a hash of the column's reference values, test, rate and settings, so a
    changed reference or setting never reuses a stale value. The file is written atomically and
    merged with what other processes wrote; a file that cannot be read or written only costs the
    simulation again (logged once).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, dict[str, Any]]] = {}
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

    def entry(self, key: str) -> dict[str, dict[str, Any]]:
        """Return the mutable entry of one column calibration."""
        with self._lock:
            entry = self.entries.setdefault(key, {})
            entry.setdefault("null", {})
            entry.setdefault("unseen", {})
            entry.setdefault("bins", {})
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
    """One column's calibrated null per size bucket: tail p-values, thresholds and the minimum rows for a verdict."""

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
        self._unseen_floor = UNSEEN_FLOOR if test.unseen_floor is None else test.unseen_floor
        self.rate = rate
        self.settings = settings
        self.calibrated = values is not None and (test.method, kind) in CALIBRATED and not test.is_p_value
        self._null: _NumericalNull | _CategoricalNull | None = None
        if self.calibrated:
            assert values is not None
            self._null = _NumericalNull(values) if kind == "numerical" else _CategoricalNull(values, test.method)
        # A calibrated categorical column also tests its unseen share, at UNSEEN_RATE_SHARE of its rate.
        self.unseen_test = isinstance(self._null, _CategoricalNull)
        # A calibrated numerical column also tests its histogram, at BINS_RATE_SHARE of its rate.
        self.bins_test = isinstance(self._null, _NumericalNull)
        self.second_share = UNSEEN_RATE_SHARE if self.unseen_test else BINS_RATE_SHARE if self.bins_test else 0.0
        self.distance_rate = rate * (1 - self.second_share)
        self.unseen_rate = rate * UNSEEN_RATE_SHARE if self.unseen_test else 0.0
        self.bins_rate = rate * BINS_RATE_SHARE if self.bins_test else 0.0
        self._nulls: dict[int, NullSummary] = {}
        self._bins: dict[int, NullSummary] = {}
        self._unseen: dict[int, NullSummary] = {}
        self._unseen_at_rows: dict[int, NullSummary] = {}
        self._power: dict[int, float] = {}
        self._at_rows: dict[str, dict[int, NullSummary]] = {"null": {}, "bins": {}}
        self._cache = cache
        self._entry: dict[str, dict[str, Any]] | None = None
        if self.calibrated and cache is not None:
            assert values is not None
            digest = hashlib.sha256(
                repr((CALIBRATION_VERSION, column, test.method, test.threshold, kind, rate, astuple(settings))).encode()
            )
            digest.update(np.ascontiguousarray(values, dtype=float).tobytes())
            self._entry = cache.entry(digest.hexdigest()[:24])
            self._nulls = {int(k): NullSummary.from_json(v) for k, v in self._entry["null"].items()}
            self._bins = {int(k): NullSummary.from_json(v) for k, v in self._entry["bins"].items()}
            self._unseen = {int(k): NullSummary.from_json(v) for k, v in self._entry["unseen"].items()}
            self._power = {int(k): float(v) for k, v in self._entry["power"].items()}

    def _remember(self, part: str, bucket: int, value: Any) -> None:  # part: "null", "bins", "unseen" or "power"
        if self._entry is not None and self._cache is not None:
            self._entry[part][str(bucket)] = value.to_json() if isinstance(value, NullSummary) else value
            self._cache.changed()

    @property
    def reference_rows(self) -> int:
        """Return the reference values the null is built from (0 when not calibrated)."""
        return self._null.n if self._null is not None else 0

    def _simulated_limit(self) -> int | None:
        """Return the largest bucket simulated for a numerical column (larger sizes are scaled); None: every size."""
        if isinstance(self._null, _NumericalNull):
            return max(size_bucket(min(SIMULATED_ROWS, self._null.n // 2)), MIN_BUCKET)
        return None

    def _scale(self, rows: int, side: int | None = None) -> float:
        """Return the two-sample scale sqrt(1/rows + 1/side) (side: the reference's rows by default)."""
        assert self._null is not None
        return math.sqrt(1 / rows + 1 / (side if side is not None else self._null.n))

    def _simulated_scale(self, bucket: int) -> float:
        assert self._null is not None
        holds_out = bucket <= self._null.n // 2
        return self._scale(bucket, self._null.n - bucket if holds_out else self._null.n)

    def simulate(self, bucket: int) -> NullSummary:
        """Simulate the null at `bucket` rows, each draw divided by its two-sample scale (the costly part)."""
        null, draws = self._null, self.settings.draws
        rng = _rng(self.settings.seed, self.column, bucket, 0)
        if isinstance(null, _CategoricalNull):
            values, unseen = null.null_draws(rng, bucket, draws)
            if bucket not in self._unseen:
                self._unseen[bucket] = NullSummary.of(unseen)  # raw shares: their mean does not scale with size
                self._remember("unseen", bucket, self._unseen[bucket])
        else:
            assert isinstance(null, _NumericalNull)
            values, binned = null.holdout_null(rng, bucket, draws)
            self._bins[bucket] = NullSummary.of(binned / self._simulated_scale(bucket))
            self._remember("bins", bucket, self._bins[bucket])
        return NullSummary.of(values / self._simulated_scale(bucket))

    def _summary(self, bucket: int, part: str = "null") -> NullSummary:
        if bucket not in self._nulls or (part == "bins" and bucket not in self._bins):
            self._nulls[bucket] = self.simulate(bucket)  # the histogram's null comes from the same draws
            self._remember("null", bucket, self._nulls[bucket])
        return self._bins[bucket] if part == "bins" else self._nulls[bucket]

    def _unseen_summary(self, bucket: int) -> NullSummary:
        if bucket not in self._unseen:
            self.simulate(bucket)  # the same seeded draws as the distance's null: both statistics at once
        return self._unseen[bucket]

    def null_at(self, rows: int, part: str = "null") -> tuple[NullSummary, int]:
        """Return (the normalised null for `rows` values, the size bucket at or below them).

        `part` "bins" gives a numerical column's histogram null. Between buckets b1 <= rows < b2 the two
        nulls' quantile functions are interpolated in log n; numerical columns beyond the simulated sizes
        use the largest simulated one (both normalised two-sample nulls have reached their limit shape there:
        a histogram distance of pure noise also shrinks as sqrt(1/n + 1/N)).
        """
        rows = max(rows, MIN_BUCKET)
        bucket = size_bucket(rows)
        at_rows = self._at_rows[part]
        if rows in at_rows:
            return at_rows[rows], bucket
        limit = self._simulated_limit()
        if limit is not None and bucket >= limit:
            summary = self._summary(limit, part)
        elif rows == bucket:
            summary = self._summary(bucket, part)
        else:
            upper = next_bucket(bucket)
            weight = math.log(rows / bucket) / math.log(upper / bucket) if upper > bucket else 0.0
            summary = self._summary(bucket, part).mixed(self._summary(upper, part), weight)
        if len(at_rows) < 4096:
            at_rows[rows] = summary
        return summary, bucket

    def floor_at(self, rows: int) -> float:
        """Return the score that counts as reaching the floor on `rows` values: for a number, what samples moved by
        exactly the floor reach in FLOOR_POWER of windows (the floor less z x the two-sample scale); a
        category's distances keep the floor itself (see FLOOR_POWER)."""
        if not self.calibrated or not isinstance(self._null, _NumericalNull):
            return self.floor
        return max(0.0, self.floor - FLOOR_Z * self._scale(max(rows, MIN_BUCKET)))

    def threshold(self, rows: int) -> tuple[float, int]:
        """Return (threshold of the distance, size bucket at or below `rows`) for a sample of `rows` values."""
        if not self.calibrated:
            return self.floor, max(size_bucket(rows), MIN_BUCKET)
        summary, bucket = self.null_at(rows)
        calibrated = summary.threshold(self.distance_rate) * self._scale(max(rows, MIN_BUCKET))
        return max(self.floor_at(rows), calibrated), bucket

    def p_value(self, rows: int, score: float) -> float | None:
        """Return the calibrated tail p-value of the distance `score` on `rows` values (None when not calibrated)."""
        if not self.calibrated or math.isnan(score):
            return None
        summary, _ = self.null_at(rows)
        return summary.p_value(score / self._scale(max(rows, MIN_BUCKET)))

    def bins_distance(self, values: np.ndarray) -> float | None:
        """Return the Jensen-Shannon distance between `values`' shares in the reference's bins and the reference's.

        None: no histogram test for this column (not a calibrated number) or no value.
        """
        if not self.bins_test or len(values) == 0:
            return None
        assert isinstance(self._null, _NumericalNull)
        null = self._null
        shares = bin_shares(null.edges, np.asarray(values, dtype=float))
        return float(_jensenshannon(shares[None, :], (null.bin_counts / null.n)[None, :])[0])

    def bins_threshold(self, rows: int) -> float | None:
        """Return the threshold of the histogram distance on `rows` values (None: no histogram test)."""
        if not self.bins_test:
            return None
        summary, _ = self.null_at(rows, "bins")
        return summary.threshold(self.bins_rate) * self._scale(max(rows, MIN_BUCKET))

    def bins_p_value(self, rows: int, score: float | None) -> float | None:
        """Return the calibrated tail p-value of a histogram distance on `rows` values (None: no histogram test)."""
        if not self.bins_test or score is None or math.isnan(score):
            return None
        summary, _ = self.null_at(rows, "bins")
        return summary.p_value(score / self._scale(max(rows, MIN_BUCKET)))

    def _unseen_null_at(self, rows: int) -> NullSummary:
        """Return the null of the unseen share for `rows` values, interpolated in log n between size buckets."""
        rows = max(rows, MIN_BUCKET)
        if rows not in self._unseen_at_rows:
            bucket = size_bucket(rows)
            summary = self._unseen_summary(bucket)
            upper = next_bucket(bucket)
            if rows != bucket and upper > bucket:
                weight = math.log(rows / bucket) / math.log(upper / bucket)
                summary = summary.mixed(self._unseen_summary(upper), weight)
            if len(self._unseen_at_rows) < 4096:
                self._unseen_at_rows[rows] = summary
            return summary
        return self._unseen_at_rows[rows]

    @property
    def unseen_floor(self) -> float | None:
        """Return the unseen test's effect floor: the reference's Good-Turing unseen mass plus the column's
        `unseen_floor` (UNSEEN_FLOOR unless the description or monitoring.yaml sets it)."""
        if not isinstance(self._null, _CategoricalNull):
            return None
        return self._null.unseen_share + self._unseen_floor

    def unseen_threshold(self, rows: int) -> float | None:
        """Return the threshold of the unseen share on `rows` values (None: no unseen test for this column)."""
        floor = self.unseen_floor
        if floor is None:
            return None
        return max(floor, self._unseen_null_at(rows).threshold(self.unseen_rate))

    def unseen_p_value(self, rows: int, share: float) -> float | None:
        """Return the calibrated tail p-value of an unseen share on `rows` values (None: no unseen test)."""
        if not self.unseen_test or math.isnan(share):
            return None
        return self._unseen_null_at(rows).p_value(share)

    def false_alarm_rate(self, rows: int) -> float | None:
        """Return the chance that a clean sample of `rows` values is flagged: the verdict's stated rate at this size.

        The calibrated rate while the calibrated threshold binds; once the effect-size floor binds, the null's
        tail beyond the floor (conformal, so at least 1 / (draws + 1): an upper bound where no draw reaches
        it). A categorical column adds its unseen part the same way (the union bound of its two tests); a number's
        histogram test flags only while the distance reaches its floor, so a number states min(rate, that tail).
        """
        tails = self._floor_tails(rows)
        if tails is None:
            return None
        if self.bins_test:
            # A number is flagged only while its distance reaches the floor, by either test: at most that tail.
            return min(self.rate, tails[0])
        return min(self.distance_rate, tails[0]) + min(self.unseen_rate, tails[1])

    def floor_tail(self, rows: int) -> float | None:
        """Return the chance that a clean sample of `rows` values reaches the floor of either test (union bound)."""
        tails = self._floor_tails(rows)
        return None if tails is None else min(1.0, sum(tails))

    def _floor_tails(self, rows: int) -> tuple[float, float] | None:
        if not self.calibrated:
            return None
        rows = max(rows, MIN_BUCKET)
        summary, _ = self.null_at(rows)
        distance = summary.p_value(self.floor_at(rows) / self._scale(rows))
        unseen = 0.0
        if self.unseen_test:
            floor = self.unseen_floor
            assert floor is not None
            unseen = self._unseen_null_at(rows).p_value(floor)
        return distance, unseen

    def combined_p_value(self, distance_p: float | None, second_p: float | None) -> float | None:
        """Return the feature's p-value over its two tests: min(p_d / (1 - s), p_2 / s), s = `second_share`.

        The second test is a category's unseen share (UNSEEN_RATE_SHARE) or a number's histogram
        (BINS_RATE_SHARE). The weighted Bonferroni p-value: at most `rate` exactly when either test passes its
        part of the rate, so Holm over the features reads the feature's own verdict (floors aside).
        """
        if distance_p is None or second_p is None or not self.second_share:
            return distance_p
        return min(1.0, distance_p / (1 - self.second_share), second_p / self.second_share)

    def power(self, bucket: int) -> float:
        """Return the share of `bucket`-row samples shifted by `detectable_shift` floors that reach the threshold."""
        if isinstance(self._null, _CategoricalNull) and len(self._null.shares) < 2:
            return 1.0  # one reference category: any other value is a new bin the distance sees in full
        if bucket not in self._power:
            threshold, _ = self.threshold(bucket)
            rng = _rng(self.settings.seed, self.column, bucket, 1)
            assert self._null is not None
            shift = self.floor * self.settings.detectable_shift
            scores = self._null.shifted(rng, bucket, self.settings.power_draws, shift)
            self._power[bucket] = float(np.mean(scores >= threshold))
            self._remember("power", bucket, self._power[bucket])
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
