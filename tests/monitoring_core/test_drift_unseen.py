"""The unseen-values part of a categorical feature's drift verdict (issue #24).

A synthetic model (one categorical feature over 300 Zipf-distributed categories, one number): a
window with 10% of its rows on values the reference never saw is flagged at 500 rows, and clean
windows of fresh rows trip the unseen part within binomial error of its share of the rate.
Seeded, so the checks cannot flake; each binomial bound fails with probability < 1e-4 under the design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from monitoring_core.calibration import UNSEEN_FLOOR, UNSEEN_RATE_SHARE, CalibrationSettings, ColumnCalibration
from monitoring_core.description import DescriptionError, DriftTest, parse_description
from monitoring_core.drift import DriftEvaluator, reaches_floor

DESCRIPTION = parse_description(
    {
        "name": "synthetic",
        "task": "regression",
        "target": {"name": "y"},
        "features": [{"name": "zone", "kind": "categorical", "type": "str"}, {"name": "x", "kind": "numerical"}],
    }
)
CATEGORIES = 300
SHARES = 1.0 / np.arange(1, CATEGORIES + 1) ** 1.1
SHARES /= SHARES.sum()
REFERENCE_ROWS = 5_000


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    zone = rng.choice(CATEGORIES, n, p=SHARES)
    x = rng.normal(size=n)
    return pd.DataFrame({"zone": [f"z{k}" for k in zone], "x": x, "prediction": 2 * x})


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _rows(REFERENCE_ROWS, 0)


@pytest.fixture(scope="module")
def evaluator(reference) -> DriftEvaluator:
    return DriftEvaluator(DESCRIPTION, reference, calibration=CalibrationSettings(draws=2_000), multivariate=False)


def _with_unseen(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = frame.copy()
    moved = rng.random(len(out)) < share
    out.loc[moved, "zone"] = [f"new-{k}" for k in rng.integers(0, 5, int(moved.sum()))]
    return out


def test_ten_percent_unseen_values_at_500_rows_are_flagged(evaluator, reference):
    seen = set(reference["zone"])
    flagged = 0
    for seed in range(20):
        window = _with_unseen(_rows(500, 100 + seed), 0.10, seed)
        outcome = evaluator.evaluate(window).columns["zone"]
        assert outcome.enough_data
        # The exported pair is coherent: the unseen share is the one of the window's values.
        assert outcome.unseen_share == pytest.approx(float(np.mean(~window["zone"].isin(seen))))
        assert outcome.unseen_threshold is not None and outcome.unseen_share is not None
        flagged += outcome.detected
        if outcome.detected and outcome.score < outcome.threshold:
            assert outcome.unseen_share >= outcome.unseen_threshold and reaches_floor(outcome)
    assert flagged >= 19  # total variation alone flagged about 80% of such windows


def test_tiny_novelty_in_a_huge_window_stays_under_the_effect_floor(evaluator):
    window = _with_unseen(_rows(20_000, 7), 0.02, 7)
    outcome = evaluator.evaluate(window).columns["zone"]
    assert outcome.unseen_threshold >= UNSEEN_FLOOR
    assert not outcome.detected


def test_numerical_features_have_no_unseen_part(evaluator):
    outcome = evaluator.evaluate(_rows(500, 3)).columns["x"]
    assert outcome.unseen_share is None and outcome.unseen_threshold is None


@pytest.mark.parametrize("n", [200, 500, 2_000])
def test_clean_windows_trip_the_unseen_part_at_its_share_of_the_rate(n):
    """Fresh rows of the reference's population (not held-out reference rows): the Good-Turing null must hold.

    Many sparse categories (about 30% of fresh rows land on values a 5,000-row reference never saw), where
    the calibrated threshold, not the floor, decides; pooled over references, since the rate is one over
    the reference's randomness too (its Good-Turing estimate errs by ~0.01 either way).
    """
    settings = CalibrationSettings(false_alarm_rate=0.05, dataset_false_alarm_rate=0.1, draws=1_000)
    rate = settings.column_rate(0.5) * UNSEEN_RATE_SHARE  # 1% on the unseen part
    population = 1.0 / np.arange(1, 20_001)
    population /= population.sum()
    hits = trials = 0
    for r in range(10):
        rng = np.random.default_rng([r, n])
        values = rng.choice(len(population), 5_000, p=population).astype(float)
        calibration = ColumnCalibration("zone", DriftTest("tv", 0.1), "categorical", values, 0.05, settings)
        seen = np.isin(np.arange(len(population)), values)
        shares = rng.multinomial(n, population, size=400)[:, ~seen].sum(axis=1) / n
        hits += sum(calibration.unseen_p_value(n, share) <= rate for share in shares)
        trials += len(shares)
        # The exported threshold is the calibrated quantile or the floor, whichever is higher.
        assert calibration.unseen_threshold(n) >= calibration.unseen_floor > UNSEEN_FLOOR
    low, high = binom.ppf([5e-5, 1 - 5e-5], trials, rate)
    assert low <= hits <= high, (n, hits, trials * rate)


def test_text_values_against_numeric_categories_count_as_unseen():
    description = parse_description(
        {
            "name": "ints",
            "task": "regression",
            "target": {"name": "y"},
            "features": [{"name": "z", "kind": "categorical", "type": "int"}],
        }
    )
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"z": rng.integers(0, 50, 3_000), "prediction": rng.normal(size=3_000)})
    evaluator = DriftEvaluator(description, reference, calibration=CalibrationSettings(draws=1_000), multivariate=False)
    window = pd.DataFrame({"z": [*rng.integers(0, 50, 450), *["new"] * 50], "prediction": rng.normal(size=500)})
    outcome = evaluator.evaluate(window).columns["z"]
    assert outcome.unseen_share == pytest.approx(0.1) and outcome.detected


@pytest.mark.parametrize("unseen_floor, flagged", [(None, False), (0.01, True)])
def test_description_sets_the_unseen_floor(unseen_floor, flagged):
    """3% of rows on new values is under the default 5% floor, over a feature's own 1% floor."""
    drift = {} if unseen_floor is None else {"drift": {"unseen_floor": unseen_floor}}
    description = parse_description(
        {
            "name": "ints",
            "task": "regression",
            "target": {"name": "y"},
            "features": [{"name": "z", "kind": "categorical", "type": "int", **drift}],
        }
    )
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"z": rng.integers(0, 50, 3_000), "prediction": rng.normal(size=3_000)})
    evaluator = DriftEvaluator(description, reference, calibration=CalibrationSettings(draws=1_000), multivariate=False)
    window = pd.DataFrame({"z": [*rng.integers(0, 50, 1_940), *[99] * 60], "prediction": rng.normal(size=2_000)})
    outcome = evaluator.evaluate(window).columns["z"]
    assert outcome.unseen_share == pytest.approx(0.03)
    assert outcome.unseen_floor == pytest.approx(0.05 if unseen_floor is None else unseen_floor, abs=0.005)
    assert outcome.detected is flagged


@pytest.mark.parametrize(
    "feature, field",
    [
        ({"kind": "numerical", "drift": {"unseen_floor": 0.02}}, "unseen_floor"),
        ({"kind": "numerical", "drift": {"stattest": "ks"}}, "drift.threshold"),
        ({"kind": "categorical", "drift": {"unseen_floor": 0}}, "unseen_floor"),
    ],
)
def test_drift_override_errors_name_the_field(feature, field):
    with pytest.raises(DescriptionError, match=field):
        parse_description(
            {"name": "m", "task": "regression", "target": {"name": "y"}, "features": [{"name": "x", **feature}]}
        )
