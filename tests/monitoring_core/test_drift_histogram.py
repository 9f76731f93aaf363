"""The histogram part of a numerical feature's drift verdict (issue #24).

A synthetic model whose one number is made like an income: a fifth zeros, most of the rest on round values
(multiples of 5), a little continuous. Rescaled by 1.1, its whole atoms move across the reference's bins:
the histogram sees it in windows where the normed Wasserstein distance alone does not, while the distance
still gates the verdict at its effect-size floor. Clean windows trip the histogram part within binomial
error of its share of the rate. Seeded, so the checks cannot flake; each binomial bound fails with
probability < 1e-4 under the design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from monitoring_core.calibration import (
    BINS_RATE_SHARE,
    MAX_BINS,
    CalibrationSettings,
    ColumnCalibration,
    bin_shares,
    histogram_edges,
)
from monitoring_core.description import DriftTest, parse_description
from monitoring_core.drift import DriftEvaluator, reaches_floor

DESCRIPTION = parse_description(
    {
        "name": "incomes",
        "task": "regression",
        "target": {"name": "y"},
        "features": [{"name": "income", "kind": "numerical"}, {"name": "band", "kind": "categorical", "type": "str"}],
    }
)


def _incomes(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.random(n)
    rounded = 5.0 * np.round(rng.gamma(3.0, 10.0, n) / 5.0)
    return np.where(kind < 0.2, 0.0, np.where(kind < 0.9, rounded, rng.gamma(3.0, 10.0, n)))


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = _incomes(rng, n)
    band = rng.choice(["a", "b", "c"], n)
    return pd.DataFrame({"income": income, "band": band, "prediction": income / 10})


@pytest.fixture(scope="module")
def evaluator() -> DriftEvaluator:
    settings = CalibrationSettings(draws=2_000)
    return DriftEvaluator(DESCRIPTION, _rows(5_000, 0), calibration=settings, multivariate=False)


def test_edges_keep_each_atom_whole_and_put_outliers_in_the_outer_bins():
    values = np.sort(np.array([0.0] * 300 + [5.0] * 200 + list(np.linspace(6, 100, 500))))
    edges = histogram_edges(values)
    assert len(edges) + 1 <= MAX_BINS and not np.isin(edges, values).any()  # no edge on a value: atoms stay whole
    shares = bin_shares(edges, values)
    assert shares[0] == pytest.approx(0.3) and shares[1] == pytest.approx(0.2)  # zeros, fives: one bin each
    assert bin_shares(edges, np.array([-1e9, 1e9]))[[0, -1]].tolist() == [0.5, 0.5]
    assert len(histogram_edges(np.zeros(50))) == 0  # a constant: one bin, a distance of 0


def test_rescaled_atoms_are_flagged_where_the_distance_alone_is_not(evaluator):
    flagged = by_histogram = 0
    for seed in range(20):
        window = _rows(500, 100 + seed)
        window["income"] *= 1.1
        outcome = evaluator.evaluate(window).columns["income"]
        assert outcome.enough_data and outcome.bins_distance is not None and outcome.bins_threshold is not None
        flagged += outcome.detected
        if outcome.detected and outcome.score < outcome.threshold:
            by_histogram += 1
            assert outcome.bins_detected and reaches_floor(outcome)
    # Measured: the distance alone flags about half such windows at 500 rows, with the histogram all of them.
    assert flagged >= 19 and by_histogram >= 3, (flagged, by_histogram)


def test_the_histogram_does_not_flag_under_the_effect_floor(evaluator):
    """A shift the distance puts under its floor stays unflagged however significant its histogram is."""
    window = _rows(20_000, 5)
    window["income"] = np.where(window["income"] > 0, window["income"] + 1.0, 0.0)  # ~0.04 std: under the floor
    outcome = evaluator.evaluate(window).columns["income"]
    assert outcome.bins_distance >= outcome.bins_threshold  # the histogram sees it...
    assert outcome.score < outcome.floor and not outcome.detected  # ...but it is no shift worth a flag


def test_categories_have_no_histogram_part(evaluator):
    outcome = evaluator.evaluate(_rows(500, 3)).columns["band"]
    assert outcome.bins_distance is None and outcome.bins_threshold is None


@pytest.mark.parametrize("n", [200, 1_000])
def test_clean_windows_trip_the_histogram_part_at_its_share_of_the_rate(n):
    """Fresh rows of the reference's population, pooled over references (the rate is one over both)."""
    settings = CalibrationSettings(false_alarm_rate=0.05, dataset_false_alarm_rate=0.1, draws=1_000)
    rate = settings.column_rate(0.5) * BINS_RATE_SHARE  # 1.5% on the histogram part
    hits = trials = 0
    for r in range(8):
        rng = np.random.default_rng([r, n])
        calibration = ColumnCalibration("income", DriftTest("wasserstein", 0.1), "numerical", _incomes(rng, 3_000),
                                        0.05, settings)  # fmt: skip
        for _ in range(250):
            distance = calibration.bins_distance(_incomes(rng, n))
            hits += calibration.bins_p_value(n, distance) <= rate
            trials += 1
    low, high = binom.ppf([5e-5, 1 - 5e-5], trials, rate)
    assert low <= hits <= high, (n, hits, trials * rate)
