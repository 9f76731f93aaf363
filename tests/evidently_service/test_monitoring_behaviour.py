"""What the service concludes from realistic traffic: the issue's "done when" scenarios."""

from __future__ import annotations

import threading

import pytest

from monitoring_core.drift import data_definition, report_drift_metrics
from monitoring_core.reference_data import typed_reference
from ride_duration.schema import DESCRIPTION, PREDICTION
from ride_duration.synthetic import DriftParams

FEATURES = ("PULocationID", "DOLocationID", "trip_distance", "passenger_count")


def _feed(app, rows, labels=None):
    client = app.test_client()
    assert client.post("/iterate/ride_duration", json=rows).status_code == 200
    if labels:
        assert client.post("/feedback/ride_duration", json=labels).status_code == 200


def _flagged(result) -> set[str]:
    return {c.column for c in result.drift.columns.values() if c.detected}


def test_reference_like_rows_raise_no_drift_verdict(make_app, make_rows, monitor_of):
    app = make_app()
    _feed(app, make_rows(1000, seed=21)[0])
    result = monitor_of(app).evaluate()
    assert result.window_rows == 1000
    assert _flagged(result) == set()
    assert result.drift.dataset_drift is False


@pytest.mark.parametrize(
    ("drift", "expected"),
    [
        (DriftParams(distance_scale=1.6), "trip_distance"),
        (DriftParams(new_zone_share=0.3), "PULocationID"),
    ],
    ids=["distance shift", "new zones"],
)
def test_each_injected_fault_flags_its_feature(make_app, make_rows, monitor_of, drift, expected):
    app = make_app()
    _feed(app, make_rows(1000, seed=22, drift=drift)[0])
    result = monitor_of(app).evaluate()
    assert expected in _flagged(result)


def test_new_zones_show_as_new_categories(make_app, make_rows, monitor_of):
    app = make_app()
    _feed(app, make_rows(1000, seed=23)[0])
    baseline = monitor_of(app).evaluate().data_quality["PULocationID"].new_category_share
    app = make_app()
    _feed(app, make_rows(1000, seed=23, drift=DriftParams(new_zone_share=0.3))[0])
    drifted = monitor_of(app).evaluate().data_quality["PULocationID"].new_category_share
    assert drifted >= baseline + 0.2


def test_missing_values_raise_the_missing_share_not_drift(make_app, make_rows, monitor_of):
    app = make_app()
    _feed(app, make_rows(1000, seed=24, drift=DriftParams(missing_share=0.3))[0])
    result = monitor_of(app).evaluate()
    assert result.data_quality["passenger_count"].missing_share == pytest.approx(0.3, abs=0.05)
    assert result.data_quality["trip_distance"].missing_share == 0
    assert _flagged(result) == set()


def test_concept_drift_raises_rmse_while_data_drift_stays_quiet(make_app, make_rows, monitor_of):
    baseline_app, drifted_app = make_app(), make_app()
    _feed(baseline_app, *make_rows(1000, seed=25))
    _feed(drifted_app, *make_rows(1000, seed=25, drift=DriftParams(congestion=1.5)))
    baseline = monitor_of(baseline_app).evaluate()
    drifted = monitor_of(drifted_app).evaluate()
    assert drifted.model_quality.metrics["rmse"] > 1.5 * baseline.model_quality.metrics["rmse"]
    assert (
        drifted.model_quality.metrics["mean_error"] < baseline.model_quality.metrics["mean_error"] - 2
    )  # rides got slower
    assert _flagged(drifted) == set() and not drifted.drift.dataset_drift
    assert drifted.label_coverage == 1.0
    assert drifted.label_delay[0.5] == pytest.approx(1800)


def test_no_verdict_below_the_minimums(make_app, make_rows, monitor_of):
    app = make_app(min_rows=500, min_labelled_rows=100)
    rows, labels = make_rows(499, seed=26, drift=DriftParams(distance_scale=2.0))
    _feed(app, rows, labels[:99])
    result = monitor_of(app).evaluate()
    assert result.window_rows == 499 and result.labelled_rows == 99
    assert result.drift is None and result.data_quality is None and result.model_quality is None
    _feed(app, *make_rows(1, seed=27))
    result = monitor_of(app).evaluate()
    assert result.drift is not None and result.model_quality is not None


def test_a_slow_borough_shows_in_its_segment_only(make_app, make_rows, monitor_of):
    app = make_app()
    _feed(app, *make_rows(1000, seed=28, drift=DriftParams(borough="Manhattan", borough_congestion=2.0)))
    result = monitor_of(app).evaluate()
    assert set(result.segments) <= {"Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island", "EWR", "Unknown"}
    worst = max((s for s in result.segments.values() if s.quality), key=lambda s: s.quality.metrics["rmse"])
    assert worst is result.segments["Manhattan"]
    queens = result.segments["Queens"]
    assert queens.quality.metrics["rmse"] < result.segments["Manhattan"].quality.metrics["rmse"] / 2


def test_service_scores_equal_an_evidently_report_on_the_same_window(make_app, make_rows, monitor_of, artifacts_dir):
    import pandas as pd
    from evidently import Dataset, Report

    app = make_app()
    _feed(app, make_rows(800, seed=29, drift=DriftParams(distance_scale=1.3, missing_share=0.2))[0])
    monitor = monitor_of(app)
    result = monitor.evaluate()
    # The reference as the service types it: categories as their text, like the window's.
    reference = typed_reference(DESCRIPTION, pd.read_parquet(artifacts_dir / "reference.parquet"))
    columns = list(monitor.config.tests)
    definition = data_definition(DESCRIPTION, monitor.config.tests)
    snapshot = Report(report_drift_metrics(DESCRIPTION, monitor.config.tests)).run(
        Dataset.from_pandas(monitor.window.snapshot()[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    scores = {m["config"]["column"]: m["value"] for m in snapshot.dict()["metrics"] if "column" in m["config"]}
    assert set(scores) == {*FEATURES, PREDICTION}
    for column, score in scores.items():
        assert result.drift.columns[column].score == pytest.approx(score, abs=1e-9, rel=0)


def test_rows_are_accepted_while_an_evaluation_runs(make_app, make_rows, monitor_of):
    app = make_app()
    monitor = monitor_of(app)
    _feed(app, make_rows(600, seed=30)[0])
    entered, release = threading.Event(), threading.Event()
    evaluate = monitor.drift.evaluate

    def slow_evaluate(frame):
        entered.set()
        release.wait(10)  # hold the evaluation until ingestion has been shown to proceed
        return evaluate(frame)

    monitor.drift.evaluate = slow_evaluate
    thread = threading.Thread(target=monitor.evaluate)
    thread.start()
    try:
        assert entered.wait(10)
        response = app.test_client().post("/iterate/ride_duration", json=make_rows(100, seed=31)[0])
        assert response.status_code == 200 and response.json["window_rows"] == 700
        assert thread.is_alive()  # the evaluation was still running while the rows went in
    finally:
        release.set()
        thread.join()
    assert monitor.latest.window_rows == 600  # it evaluated the snapshot it took


# With the derived minimums (no min_rows / segment_min_rows override), as shipped.
DERIVED = {"min_rows": None, "segment_min_rows": None}


def test_clean_rows_the_reference_never_saw_raise_no_drift_at_any_window_size(make_app, make_rows, monitor_of):
    """The window grows from 50 rows: "not enough data" first, then verdicts that stay quiet, segments too."""
    from scipy.stats import binom

    app = make_app(**DERIVED)
    monitor = monitor_of(app)
    rows = make_rows(1000, seed=31)[0]  # a seed the session's reference was not drawn from
    fed, feature_flags, judged, segment_flags, segment_judged = 0, 0, 0, 0, 0
    for size in (50, 100, 150, 200, 300, 400, 600, 800, 1000):
        _feed(app, rows[fed:size])
        fed = size
        result = monitor.evaluate()
        assert result.min_rows is not None and result.min_rows > 50
        if size < result.min_rows:
            assert result.drift is None  # not enough data: no verdict, not "no drift"
            continue
        assert result.drift.enough_data and result.drift.dataset_drift is False
        judged += 1
        feature_flags += len(_flagged(result))
        if result.segment_flags:  # one family over every judged segment x feature: at most 1% per evaluation
            segment_judged += 1
            segment_flags += any(result.segment_flags.values())
    assert judged >= 4  # the derived minimum (~250 rows here) leaves 400-1,000
    # 5 columns at 0.5% per evaluation, the dataset at <= 1%: bounds failing with probability < 1e-4.
    assert feature_flags <= binom.isf(1e-4, judged * 5, 0.005)
    assert segment_judged > 0 and segment_flags <= binom.isf(1e-4, segment_judged, 0.01)


@pytest.mark.parametrize(
    ("drift", "expected"),
    [(DriftParams(distance_scale=2.5), "trip_distance"), (DriftParams(new_zone_share=0.5), "PULocationID")],
    ids=["distance x2.5", "pickups to new zones"],
)
def test_blatant_shifts_at_a_few_hundred_rows_are_flagged(make_app, make_rows, monitor_of, drift, expected):
    app = make_app(**DERIVED)
    monitor = monitor_of(app)
    _feed(app, make_rows(400, seed=32, drift=drift)[0])
    result = monitor.evaluate()
    assert result.drift is not None, f"400 rows below the derived minimum {result.min_rows}"
    assert expected in _flagged(result)
    column = result.drift.columns[expected]
    # Thresholds are interpolated between the size buckets around the window (monitoring_core/calibration.py).
    assert 251 <= column.calibrated_rows <= column.rows == 400 and column.threshold >= 0.1 >= column.floor


def test_a_shift_in_one_borough_is_flagged_in_that_segment(make_app, make_rows, monitor_of):
    app = make_app(**DERIVED)
    monitor = monitor_of(app)
    rows = make_rows(1000, seed=33)[0]
    for row in rows:
        if row["PULocationID"] in (74, 75, 41, 166, 42):  # Manhattan's busy pickup zones
            row["trip_distance"] = row["trip_distance"] * 2.5
    _feed(app, rows)
    result = monitor.evaluate()
    manhattan = result.segments["Manhattan"]
    assert manhattan.drift is not None and manhattan.drift.columns["trip_distance"].detected
    assert all(
        not s.drift.columns["trip_distance"].detected for name, s in result.segments.items()
        if s.drift is not None and name != "Manhattan"
    )  # fmt: skip


def test_a_small_segment_judges_its_features_from_their_own_minimums(make_app, make_rows, monitor_of):
    """A segment under its largest feature's minimum still flags a feature that has reached its own."""
    import pandas as pd

    from ride_duration.schema import DESCRIPTION

    app = make_app(**DERIVED, window_size=2000)
    monitor = monitor_of(app)
    rows = make_rows(2000, seed=35)[0]
    names = DESCRIPTION.segment_of(pd.DataFrame(rows))
    sizes = names.value_counts()
    firsts = {s: ev.first_verdict_rows for s, ev in monitor._segment_drift.items()}
    small = [s for s, n in sizes.items() if firsts.get(s) and monitor.segment_min_rows(s) and firsts[s] <= n]
    small = [s for s in small if sizes[s] < monitor.segment_min_rows(s)]
    assert small, (sizes.to_dict(), firsts, {s: monitor.segment_min_rows(s) for s in sizes.index})
    segment = small[0]
    evaluator = monitor._segment_drift[segment]
    column = min(DESCRIPTION.numerical_features, key=lambda c: evaluator.min_rows_of(c) or 10**9)
    assert evaluator.min_rows_of(column) <= sizes[segment]
    field = DESCRIPTION.fields_by_name[column]
    for row, name in zip(rows, names, strict=True):
        if name == segment:  # x2.5, kept within the field's range and type (a refused row is no shift)
            value = min(row[column] * 2.5, field.maximum if field.maximum is not None else float("inf"))
            row[column] = field.python_type(round(value) if field.python_type is int else value)
    _feed(app, rows)
    result = monitor.evaluate()
    drift = result.segments[segment].drift
    assert result.window_rows == len(rows)
    assert drift is not None and not drift.enough_data  # no drifted share for the segment yet...
    assert result.segment_flags.get((segment, column)), (segment, column, result.segment_flags)  # ...its feature is
    assert not any(flag for (name, _), flag in result.segment_flags.items() if name != segment)
