"""The drift adapter: parity with an Evidently Report, drift scenarios, multiple testing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitoring_core.calibration import CalibrationSettings
from monitoring_core.drift import (
    ColumnDrift,
    DriftEvaluator,
    DriftResult,
    corrected_thresholds,
    data_definition,
    family_flags,
    holm,
    register_total_variation,
    report_drift_metrics,
    total_variation_distance,
)
from ride_duration.schema import (
    CATEGORICAL_FEATURES,
    DESCRIPTION,
    NUMERICAL_FEATURES,
    PREDICTION,
    DriftTest,
    drift_tests,
)
from ride_duration.synthetic import DriftParams, generate_trips


def _with_prediction(frame: pd.DataFrame) -> pd.DataFrame:
    # A stand-in for the model: a function of the features only, like the real one, so
    # concept drift (slower rides, same features) leaves it unchanged.
    frame = frame.copy()
    frame[PREDICTION] = 2.0 + 4.0 * frame["trip_distance"]
    return frame


# Jensen-Shannon on 265 sparse zone ids reads about 0.2 between two same-distribution
# samples of 1,000 and 5,000 rows (sampling noise, see docs/evidently_service.md), so the
# behavioural tests use the zone threshold the monitoring config (monitoring_core/monitoring.yaml) pins.
# Evidently's usual zone threshold, stricter than the schema's: parity must hold for any pinned threshold.
STRICT_ZONES = {**drift_tests(), **{c: DriftTest("jensenshannon", 0.1) for c in CATEGORICAL_FEATURES}}


@pytest.fixture(scope="module")
def reference(taxi_reference) -> pd.DataFrame:
    return taxi_reference


def _report_results(reference: pd.DataFrame, current: pd.DataFrame, tests: dict[str, DriftTest]) -> tuple[dict, dict]:
    """Run a real Evidently Report; return ({column: (score, detected)}, drifted-columns count value)."""
    from evidently import Dataset, Report

    definition = data_definition(DESCRIPTION, tests)
    snapshot = Report(report_drift_metrics(DESCRIPTION, tests), include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    data = snapshot.dict()
    verdicts = {}
    for test in data["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            verdicts[params["column"]] = test["status"] == "FAIL"
    scores, count = {}, None
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            scores[config["column"]] = (float(metric["value"]), verdicts[config["column"]])
        else:
            count = metric["value"]
    return scores, count


SCENARIOS = {
    "reference-like": DriftParams(),
    "distance shift": DriftParams(distance_scale=1.6),
    "new zones": DriftParams(new_zone_share=0.3),
    "missing values": DriftParams(missing_share=0.3),
    "concept drift": DriftParams(congestion=1.5),
}

P_VALUE_TESTS = {
    **{c: DriftTest("ks", 0.05) for c in NUMERICAL_FEATURES},
    **{c: DriftTest("chisquare", 0.05) for c in CATEGORICAL_FEATURES},
    PREDICTION: DriftTest("ks", 0.05),
}


@pytest.mark.parametrize("tests", [None, STRICT_ZONES, P_VALUE_TESTS], ids=["schema", "strict zones", "p-value tests"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scores_and_verdicts_equal_an_evidently_report(reference, scenario, tests):
    tests = tests or drift_tests()
    current = _with_prediction(generate_trips(1_000, seed=12, drift=SCENARIOS[scenario]))
    result = DriftEvaluator(DESCRIPTION, reference, tests).evaluate(current)
    expected, count = _report_results(reference, current, tests)

    assert set(result.columns) == set(expected)
    for column, (score, detected) in expected.items():
        assert result.columns[column].score == pytest.approx(score, abs=1e-9, rel=0), column
        assert result.columns[column].detected is detected, column
        assert result.columns[column].stattest == tests[column].method
    features = [c for c in tests if c != PREDICTION]
    assert count["count"] == sum(result.columns[c].detected for c in features)
    assert result.drifted_share == pytest.approx(count["share"], abs=1e-12)


@pytest.fixture(scope="module")
def calibrated(reference, calibration_cache) -> DriftEvaluator:
    return DriftEvaluator(DESCRIPTION, reference, calibration=CalibrationSettings(), cache=calibration_cache)


def test_reference_like_rows_raise_no_verdict(calibrated):
    # Calibrated: total variation over ~260 sparse zones reads ~0.15 on clean 1,000-row samples,
    # above its 0.1 floor, so the pinned floor alone would flag sampling noise.
    current = _with_prediction(generate_trips(1_000, seed=99))
    result = calibrated.evaluate(current)
    assert not any(c.detected for c in result.columns.values())
    assert result.drifted_share == 0.0
    assert result.dataset_drift is False


@pytest.mark.parametrize(
    ("params", "flagged"),
    [
        (DriftParams(distance_scale=1.6), "trip_distance"),
        (DriftParams(new_zone_share=0.3), "PULocationID"),
    ],
)
def test_each_injected_fault_flags_its_feature(reference, params, flagged):
    result = DriftEvaluator(DESCRIPTION, reference, drift_tests()).evaluate(
        _with_prediction(generate_trips(1_000, seed=5, drift=params))
    )
    assert result.columns[flagged].detected


def test_missing_values_are_dropped_not_drift(calibrated):
    current = _with_prediction(generate_trips(1_000, seed=5, drift=DriftParams(missing_share=0.3)))
    result = calibrated.evaluate(current)
    assert not any(c.detected for c in result.columns.values())


def test_a_column_without_values_has_no_verdict_and_leaves_the_share(reference):
    current = _with_prediction(generate_trips(500, seed=5, drift=DriftParams(distance_scale=1.6)))
    current["passenger_count"] = np.nan
    result = DriftEvaluator(DESCRIPTION, reference).evaluate(current)
    assert math.isnan(result.columns["passenger_count"].score)
    assert result.columns["passenger_count"].detected is False
    judged = [c for c in ("PULocationID", "DOLocationID", "trip_distance")]
    assert result.drifted_share == sum(result.columns[c].detected for c in judged) / 3


def test_dataset_drift_follows_the_share(reference):
    current = _with_prediction(generate_trips(1_000, seed=5, drift=DriftParams(distance_scale=1.6)))
    result = DriftEvaluator(DESCRIPTION, reference, drift_tests(), dataset_drift_share=0.25).evaluate(current)
    assert result.drifted_share >= 0.25 and result.dataset_drift
    strict = DriftEvaluator(DESCRIPTION, reference, drift_tests(), dataset_drift_share=1.0).evaluate(current)
    assert strict.drifted_share < 1.0 and not strict.dataset_drift


def test_bad_settings_and_data_are_refused(reference):
    with pytest.raises(ValueError, match="multiple_testing"):
        DriftEvaluator(DESCRIPTION, reference, multiple_testing="holm")
    with pytest.raises(ValueError, match="lacks"):
        DriftEvaluator(DESCRIPTION, reference.drop(columns=["trip_distance"]))
    with pytest.raises(ValueError, match="lacks"):
        DriftEvaluator(DESCRIPTION, reference).evaluate(reference.drop(columns=[PREDICTION]))


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("none", {}),
        ("bonferroni", {"a": 0.0125, "b": 0.0125, "c": 0.0125, "d": 0.0125}),
        # Sorted p: a=0.001 <= 1/4*.05, b=0.02 <= 2/4*.05 (0.025), c=0.03 > 3/4*.05? no: 0.0375 -> k=3; d=0.5 > .05.
        ("bh", {"a": 0.0375, "b": 0.0375, "c": 0.0375, "d": 0.0375}),
    ],
)
def test_multiple_testing_corrections(method, expected):
    p_values = {"a": 0.001, "b": 0.02, "c": 0.03, "d": 0.5}
    thresholds = corrected_thresholds(p_values, dict.fromkeys(p_values, 0.05), method)
    assert thresholds == pytest.approx(expected)


def test_bh_with_no_discovery_flags_nothing():
    p_values = {"a": 0.2, "b": 0.3}
    thresholds = corrected_thresholds(p_values, dict.fromkeys(p_values, 0.05), "bh")
    assert not any(p <= thresholds[c] for c, p in p_values.items())


def test_corrections_apply_to_p_value_features_only(reference):
    tests = {**P_VALUE_TESTS, "trip_distance": DriftTest("wasserstein", 0.1)}
    current = _with_prediction(generate_trips(1_000, seed=5, drift=DriftParams(new_zone_share=0.05)))
    plain = DriftEvaluator(DESCRIPTION, reference, tests).evaluate(current)
    corrected = DriftEvaluator(DESCRIPTION, reference, tests, multiple_testing="bonferroni").evaluate(current)
    family = ["PULocationID", "DOLocationID", "passenger_count"]
    for column in family:
        assert corrected.columns[column].threshold == pytest.approx(0.05 / len(family))
        assert corrected.columns[column].score == plain.columns[column].score
    for column in ("trip_distance", PREDICTION):
        assert corrected.columns[column] == plain.columns[column]


@pytest.mark.parametrize(
    ("edit", "rows"),
    [
        pytest.param({"passenger_count": 1.0}, 300, id="constant reference"),
        pytest.param({}, 1, id="one current row"),
        pytest.param({"PULocationID": 74}, 300, id="one reference category"),
    ],
)
def test_edge_cases_equal_an_evidently_report(reference, edit, rows):
    ref = reference.assign(**edit)
    current = _with_prediction(generate_trips(rows, seed=3))
    result = DriftEvaluator(DESCRIPTION, ref).evaluate(current)
    expected, _ = _report_results(ref, current, drift_tests())
    for column, (score, detected) in expected.items():
        assert result.columns[column].score == pytest.approx(score, abs=1e-9, rel=0), column
        assert result.columns[column].detected is detected, column


def test_total_variation_is_half_the_l1_distance_of_category_shares():
    """ "tv" is ours (Evidently's "TVD" is a permutation p-value): its formula, checked by hand."""
    reference = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    current = pd.Series(["a"] * 30 + ["b"] * 30 + ["c"] * 20 + ["new"] * 20)
    # a: .5 -> .3, b: .3 -> .3, c: .2 -> .2, new: 0 -> .2: |.2| + |.2| over 2 = 0.2 (20% of rows moved)
    assert total_variation_distance(reference, current) == pytest.approx(0.2, abs=1e-12)
    assert total_variation_distance(reference, reference) == 0.0
    assert total_variation_distance(pd.Series(["x"] * 5), pd.Series(["y"] * 7)) == pytest.approx(1.0)


@pytest.mark.parametrize("text", [False, True], ids=["integer zones", "text categories"])
def test_the_total_variation_fast_path_and_evidentlys_registry_agree_with_the_formula(reference, text):
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    register_total_variation()
    ref, current = (
        reference.copy(),
        _with_prediction(generate_trips(700, seed=21, drift=DriftParams(new_zone_share=0.2))),
    )
    if text:
        ref["PULocationID"] = "zone-" + ref["PULocationID"].astype(str)
        current["PULocationID"] = "zone-" + current["PULocationID"].astype(str)
    expected = total_variation_distance(ref["PULocationID"], current["PULocationID"])
    result = DriftEvaluator(DESCRIPTION, ref).evaluate(current)
    assert result.columns["PULocationID"].stattest == "tv"
    assert result.columns["PULocationID"].score == pytest.approx(expected, abs=1e-12)
    test = get_stattest(ref["PULocationID"], current["PULocationID"], ColumnType.Categorical, "tv")
    assert test(ref["PULocationID"], current["PULocationID"], ColumnType.Categorical, 0.1).drift_score == pytest.approx(
        expected, abs=1e-12
    )


@pytest.mark.parametrize(
    ("p_values", "rate", "expected"),
    [
        ({}, 0.05, set()),
        ({"a": 0.001, "b": 0.02, "c": 0.04}, 0.05, {"a", "b", "c"}),  # .001<=.05/3, .02<=.05/2, .04<=.05
        ({"a": 0.001, "b": 0.03, "c": 0.04}, 0.05, {"a"}),  # .03 > .05/2: the step-down stops there
        ({"a": 0.012, "b": 0.013}, 0.02, set()),  # .012 > .02/2 even though both are below .02
        ({"a": 0.2}, 0.25, {"a"}),  # a family of one is the plain test
    ],
)
def test_holm_step_down(p_values, rate, expected):
    assert holm(p_values, rate) == expected


def _outcome(
    column: str, p_value: float, score: float = 0.5, floor: float | None = 0.1, enough: bool = True
) -> ColumnDrift:
    return ColumnDrift(column, "tv", 0.2, score, p_value < 0.005, 500, 500, 100, enough, p_value, floor)


def test_family_flags_control_segments_x_features_together():
    def result(*outcomes: ColumnDrift, enough: bool = True) -> DriftResult:
        columns = {o.column: o for o in outcomes}
        return DriftResult(columns, 0.0, False, 500, 100, enough, features=tuple(columns))

    results = {
        "north": result(_outcome("x", 0.0004), _outcome("y", 0.3)),
        "south": result(_outcome("x", 0.006), _outcome("y", 0.0001, score=0.05)),  # below its floor
        "east": result(_outcome("x", 0.0001, enough=False)),  # x under its minimum: not tested
        # The segment is under its largest feature's minimum, z is over its own: z is tested.
        "west": result(_outcome("z", 0.00001), _outcome("w", 0.2, enough=False), enough=False),
    }
    flags = family_flags(results, 0.01)
    # Five tested pairs: .00001 <= .01/5 (west/z), .0001 <= .01/4 (south/y, rejected but under its floor),
    # .0004 <= .01/3, .006 > .01/2.
    assert flags == {
        ("north", "x"): True,
        ("north", "y"): False,
        ("south", "x"): False,
        ("south", "y"): False,
        ("west", "z"): True,
    }
