"""What the service concludes from realistic traffic: the issue's "done when" scenarios."""

from __future__ import annotations

import threading

import pytest

from monitoring_core.drift import data_definition, report_drift_metrics
from ride_duration.schema import PREDICTION
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
    assert drifted.model_quality["rmse"] > 1.5 * baseline.model_quality["rmse"]
    assert drifted.model_quality["mean_error"] < baseline.model_quality["mean_error"] - 2  # rides got slower
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
    worst = max((s for s in result.segments.values() if s.quality), key=lambda s: s.quality["rmse"])
    assert worst is result.segments["Manhattan"]
    queens = result.segments["Queens"]
    assert queens.quality["rmse"] < result.segments["Manhattan"].quality["rmse"] / 2


def test_service_scores_equal_an_evidently_report_on_the_same_window(make_app, make_rows, monitor_of, artifacts_dir):
    import pandas as pd
    from evidently import Dataset, Report

    app = make_app()
    _feed(app, make_rows(800, seed=29, drift=DriftParams(distance_scale=1.3, missing_share=0.2))[0])
    monitor = monitor_of(app)
    result = monitor.evaluate()
    reference = pd.read_parquet(artifacts_dir / "reference.parquet")
    columns = list(monitor.config.tests)
    definition = data_definition(monitor.config.tests)
    snapshot = Report(report_drift_metrics(monitor.config.tests)).run(
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
