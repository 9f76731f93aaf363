"""Calibrated drift thresholds: the simulation's formulas, false alarms on unseen clean rows, power, the cache.

Statistical checks are seeded (so they cannot flake) and their bounds come from the binomial
distribution of the counted events: each check fails with probability < 1e-4 under the design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import distance
from scipy.stats import binom, wasserstein_distance

from monitoring_core.calibration import (
    MIN_BUCKET,
    SIZE_BUCKETS,
    CalibrationCache,
    CalibrationSettings,
    ColumnCalibration,
    _jensenshannon,
    _NumericalNull,
    size_bucket,
)
from monitoring_core.description import Kind
from monitoring_core.drift import DriftEvaluator
from monitoring_core.segments import segment_of
from ride_duration.schema import DESCRIPTION, PREDICTION, drift_tests
from ride_duration.synthetic import DriftParams, generate_trips

SETTINGS = CalibrationSettings()
RATE = SETTINGS.column_rate(0.5)  # per column: 0.5% by default
COLUMNS = list(drift_tests())


def _with_prediction(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame[PREDICTION] = 2.0 + 4.0 * frame["trip_distance"]
    return frame


@pytest.fixture(scope="module")
def reference(taxi_reference) -> pd.DataFrame:
    return taxi_reference


@pytest.fixture(scope="module")
def unseen(taxi_unseen) -> pd.DataFrame:
    return taxi_unseen


@pytest.fixture(scope="module")
def evaluator(reference, calibration_cache) -> DriftEvaluator:
    return DriftEvaluator(DESCRIPTION, reference, calibration=SETTINGS, cache=calibration_cache)


def _draw(pool: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    return pool.iloc[rng.choice(len(pool), n, replace=False)].reset_index(drop=True)


def test_the_step_function_area_is_scipys_wasserstein_distance():
    rng = np.random.default_rng(0)
    values = np.round(rng.lognormal(0, 0.6, 2_000), 2)  # ties, as in trip_distance
    null = _NumericalNull(values)
    current = np.sort(np.concatenate([rng.choice(values, (4, 60)), rng.normal(1, 2, (4, 20))], axis=1), axis=1)
    levels = np.broadcast_to(np.arange(1, 81) / 80, current.shape)
    expected = [wasserstein_distance(values, row) for row in current]
    assert null.area(current, levels) == pytest.approx(expected, abs=1e-12)


def test_rowwise_jensen_shannon_is_scipys():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(30), 5), rng.dirichlet(np.ones(30) * 0.1, 5)
    q[:, :3] = 0
    q /= q.sum(axis=1, keepdims=True)
    assert _jensenshannon(p, q) == pytest.approx(
        [distance.jensenshannon(a, b) for a, b in zip(p, q, strict=True)], abs=1e-12
    )


def test_size_buckets_round_down():
    assert SIZE_BUCKETS[:8] == (10, 13, 16, 20, 25, 32, 40, 50)
    assert size_bucket(250) == 200 and size_bucket(251) == 251 and size_bucket(9) == 0 and size_bucket(10**7) == 10**6


def test_dataset_rate_sets_the_column_rate():
    assert CalibrationSettings().column_rate(0.5) == 0.005
    assert CalibrationSettings(dataset_false_alarm_rate=0.05).column_rate(0.5) == 0.01  # capped by the feature rate
    with pytest.raises(ValueError, match="false_alarm_rate"):
        CalibrationSettings(false_alarm_rate=0)


def test_thresholds_shrink_with_size_and_stop_at_the_floor(evaluator):
    sizes = (50, 100, 200, 500, 1000, 2000, 5000, 20000)
    for column, test in drift_tests().items():
        calibration = evaluator._columns[column].calibration
        thresholds = [evaluator.threshold(column, n) for n in sizes]
        assert all(t >= calibration.floor_at(n) for t, n in zip(thresholds, sizes, strict=True)), column
        assert thresholds[0] > test.threshold  # at 50 rows noise, not the floor, sets the threshold
        assert thresholds[:5] == sorted(thresholds[:5], reverse=True), column  # noise shrinks up to 1,000 rows
        # A huge window does not flag what nobody would call drift: a category's floor (or just above it where
        # the reference's own noise stays: total variation over ~260 zones against 5,000 reference rows); a
        # number's floor less its noise margin, which a shift of the floor's size clears in ~95% of windows.
        if DESCRIPTION.column_kind(column) is Kind.CATEGORICAL:
            assert thresholds[-1] == pytest.approx(test.threshold, rel=0.05), column
        else:
            assert 0.7 * test.threshold <= thresholds[-1] <= test.threshold, column


@pytest.mark.parametrize("n", [50, 100, 200, 500, 1000, 5000])
def test_clean_unseen_rows_give_no_drift_verdict_at_any_size(evaluator, unseen, n):
    samples = 40
    rng = np.random.default_rng(n)
    column_flags, dataset_flags, judged = 0, 0, 0
    for _ in range(samples):
        result = evaluator.evaluate(_draw(unseen, n, rng))
        if not result.enough_data:
            assert not result.dataset_drift and n < result.min_rows
            continue
        judged += 1
        column_flags += sum(c.detected for c in result.columns.values())
        dataset_flags += result.dataset_drift
    # 5 columns at RATE each and the dataset at <= 1% per evaluation:
    assert column_flags <= binom.isf(1e-4, judged * len(COLUMNS), RATE)
    assert dataset_flags <= binom.isf(1e-4, max(judged, 1), SETTINGS.dataset_false_alarm_rate)


def test_below_the_minimum_there_is_no_verdict_even_for_a_huge_shift(evaluator):
    n = evaluator.min_rows_of("trip_distance") - 1
    result = evaluator.evaluate(_with_prediction(generate_trips(n, seed=5, drift=DriftParams(distance_scale=3))))
    assert not result.enough_data and not result.dataset_drift
    trip = result.columns["trip_distance"]
    assert trip.min_rows == evaluator.min_rows_of("trip_distance") and trip.rows == n
    assert not trip.enough_data and not trip.detected


def _pickups_to_a_handful_of_zones(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    moved = rng.random(len(frame)) < 0.7
    # Zones the reference knows (ranks 10-15 of the busy ones): no new category, only the mix changes.
    frame.loc[moved, "PULocationID"] = rng.choice([129, 260, 255, 43, 181], size=int(moved.sum()))
    return frame


@pytest.mark.parametrize(
    ("make", "feature"),
    [
        (lambda seed: generate_trips(250, seed=seed, drift=DriftParams(distance_scale=2.5)), "trip_distance"),
        (lambda seed: generate_trips(250, seed=seed, drift=DriftParams(new_zone_share=0.5)), "PULocationID"),
        (lambda seed: _pickups_to_a_handful_of_zones(generate_trips(250, seed=seed), seed), "PULocationID"),
    ],
    ids=["distance x2.5", "pickups to new zones", "pickups to a handful of busy zones"],
)
def test_blatant_shifts_at_250_rows_are_flagged_on_the_shifted_feature(evaluator, make, feature):
    results = [evaluator.evaluate(_with_prediction(make(seed))) for seed in range(10)]
    assert all(r.columns[feature].detected for r in results)


def test_segment_calibration_keeps_the_rate_on_its_own_reference_rows(reference, unseen):
    """A borough is calibrated on the reference's rows of that borough: the same guarantee, fewer rows."""
    in_manhattan = reference[segment_of(DESCRIPTION, reference) == "Manhattan"]
    pool = unseen[segment_of(DESCRIPTION, unseen) == "Manhattan"]
    segment = DriftEvaluator(DESCRIPTION, in_manhattan, calibration=SETTINGS, cache=CalibrationCache(None))
    assert segment.min_rows is not None  # its own: fewer zones in one borough can make it smaller than the city's
    rng = np.random.default_rng(7)
    samples, flags = 30, 0
    for n in (segment.min_rows, 2 * segment.min_rows):
        for _ in range(samples):
            flags += sum(c.detected for c in segment.evaluate(_draw(pool, n, rng)).columns.values())
    assert flags <= binom.isf(1e-4, 2 * samples * len(COLUMNS), RATE)
    shifted = pool.head(segment.min_rows * 2).copy()
    shifted["trip_distance"] *= 2.5
    assert segment.evaluate(shifted).columns["trip_distance"].detected


def test_a_reference_too_small_for_the_floor_never_gives_a_verdict():
    tiny = _with_prediction(generate_trips(30, seed=3))
    evaluator = DriftEvaluator(DESCRIPTION, tiny, calibration=SETTINGS)
    assert evaluator.min_rows_of("trip_distance") is None
    result = evaluator.evaluate(_with_prediction(generate_trips(2_000, seed=4, drift=DriftParams(distance_scale=3))))
    assert not result.columns["trip_distance"].detected and not result.columns["trip_distance"].enough_data


def test_thresholds_are_deterministic_and_survive_a_restart(reference, tmp_path, monkeypatch):
    current = _with_prediction(generate_trips(700, seed=8))
    path = tmp_path / "reference.parquet.calibration.json"
    first = DriftEvaluator(DESCRIPTION, reference, calibration=SETTINGS, cache=CalibrationCache(path)).evaluate(current)
    assert path.exists()
    again = DriftEvaluator(DESCRIPTION, reference, calibration=SETTINGS).evaluate(current)  # no cache: simulated anew
    assert {c: r.threshold for c, r in again.columns.items()} == {c: r.threshold for c, r in first.columns.items()}

    def no_simulation(*args, **kwargs):
        raise AssertionError("simulated although cached")

    monkeypatch.setattr(ColumnCalibration, "simulate", no_simulation)
    monkeypatch.setattr(ColumnCalibration, "power", lambda self, bucket: self._power[bucket])
    restarted = DriftEvaluator(DESCRIPTION, reference, calibration=SETTINGS, cache=CalibrationCache(path)).evaluate(
        current
    )
    assert restarted.columns == first.columns and restarted.min_rows == first.min_rows


def test_a_changed_reference_or_setting_does_not_reuse_the_cache(reference, tmp_path):
    path = tmp_path / "cache.json"
    cache = CalibrationCache(path)
    base = ColumnCalibration("trip_distance", drift_tests()["trip_distance"], "numerical",
                             reference["trip_distance"].to_numpy(float), RATE, SETTINGS, cache)  # fmt: skip
    base.threshold(200)
    other = ColumnCalibration("trip_distance", drift_tests()["trip_distance"], "numerical",
                              reference["trip_distance"].to_numpy(float) * 2, RATE, SETTINGS, cache)  # fmt: skip
    stricter = ColumnCalibration("trip_distance", drift_tests()["trip_distance"], "numerical",
                                 reference["trip_distance"].to_numpy(float), RATE / 2, SETTINGS, cache)  # fmt: skip
    assert not other._nulls and not stricter._nulls and len(cache.entries) == 3


def test_an_unwritable_cache_only_costs_the_simulation(reference, tmp_path):
    folder = tmp_path / "missing" / "cache.json"  # its folder does not exist: writing fails
    result = DriftEvaluator(DESCRIPTION, reference, calibration=SETTINGS, cache=CalibrationCache(folder)).evaluate(
        _with_prediction(generate_trips(300, seed=9))
    )
    assert result.enough_data and not folder.exists()


def test_methods_without_a_simulated_null_keep_their_pinned_threshold(reference):
    from ride_duration.schema import DriftTest

    tests = {**drift_tests(), "trip_distance": DriftTest("ks", 0.05)}
    result = DriftEvaluator(DESCRIPTION, reference, tests, calibration=SETTINGS).evaluate(
        _with_prediction(generate_trips(300))
    )
    assert result.columns["trip_distance"].threshold == 0.05
    assert MIN_BUCKET <= result.columns["trip_distance"].min_rows <= 30


def test_the_stated_rate_holds_where_the_floor_binds():
    """Where the effect-size floor, not the calibrated threshold, decides, the verdict states the lower rate it
    holds (the null's tail beyond the floor), and clean windows are flagged at that rate, not at the configured one.
    """
    from scipy.stats import binom

    from monitoring_core.description import parse_description

    settings = CalibrationSettings(false_alarm_rate=0.1, dataset_false_alarm_rate=0.2, draws=2_000)
    n = 500

    def evaluator(reference: pd.DataFrame, floor: float) -> DriftEvaluator:
        description = parse_description(
            {
                "name": "m",
                "task": "regression",
                "target": {"name": "y"},
                "features": [{"name": "x", "kind": "numerical", "drift": {"threshold": floor}}],
            }
        )
        return DriftEvaluator(description, reference, calibration=settings, multivariate=False)

    def sample(rng: np.random.Generator, size: int) -> pd.DataFrame:
        return pd.DataFrame({"x": rng.gamma(2.0, 1.0, size), "prediction": rng.normal(size=size)})

    rng = np.random.default_rng(7)
    references = [sample(rng, 3_000) for _ in range(5)]
    # A floor that binds at this size: clean windows reach the score that counts as reaching it (what samples
    # moved by the floor reach in 95% of draws) about 2% of the time, above the calibrated 10% threshold.
    probe = evaluator(references[0], 1e-6)._columns["x"].calibration
    summary, _ = probe.null_at(n)
    target = summary.threshold(0.02) * probe._scale(n)
    below = target - evaluator(references[0], target)._columns["x"].calibration.floor_at(n)
    floor = target + below
    flags, stated = 0, 0.0
    for reference in references:
        ev = evaluator(reference, floor)
        at = ev._columns["x"].calibration.floor_at(n)
        assert at > ev._columns["x"].calibration.null_at(n)[0].threshold(0.1) * probe._scale(n) and at < floor
        for _ in range(300):
            result = ev.evaluate(sample(rng, n))
            column = result.columns["x"]
            assert column.threshold == at and column.false_alarm_rate < settings.column_rate(0.5)
            assert result.stated_dataset_rate == pytest.approx(column.false_alarm_rate)  # one feature, floor binds
            flags += column.detected
            stated += column.false_alarm_rate
    windows = 5 * 300
    low, high = binom.ppf([1e-4, 1 - 1e-4], windows, stated / windows)
    assert low <= flags <= high, (flags, stated)


def test_a_numerical_shift_of_the_floors_size_is_reported_in_most_windows():
    """The floor is an effect size: a feature moved by exactly the floor (normed Wasserstein 0.1) is flagged in
    ~95% of large windows, not in the coin toss a score compared with the floor itself would give."""
    from monitoring_core.description import parse_description

    description = parse_description(
        {"name": "m", "task": "regression", "target": {"name": "y"}, "features": [{"name": "x", "kind": "numerical"}]}
    )
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"x": rng.normal(size=5_000), "prediction": rng.normal(size=5_000)})
    evaluator = DriftEvaluator(description, reference, calibration=CalibrationSettings(draws=2_000), multivariate=False)
    shift = 0.1 * float(reference["x"].std())  # a location shift's normed Wasserstein distance is shift / std
    flagged = [
        evaluator.evaluate(pd.DataFrame({"x": rng.normal(size=5_000) + shift, "prediction": 0.0})).columns["x"].detected
        for _ in range(60)
    ]
    assert sum(flagged) >= 48, sum(flagged)  # >= 80% of 60 (expected ~95%; a hard floor gives ~50%)
