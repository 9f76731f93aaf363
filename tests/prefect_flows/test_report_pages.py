"""What a reader sees on the report pages: the period, the typed columns, the view the charts open on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape

import pytest

from prefect_flows.index_page import render_index
from prefect_flows.publish import banner, threshold_sentences, uneven, verdict
from prefect_flows.reports import DATA_SUMMARY, DRIFT, QUALITY, period_label

HOUR = datetime(2026, 1, 5, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (HOUR, HOUR + timedelta(hours=1), "2026-01-05 10:00 \u2013 11:00 UTC"),
        # Shorter than an hour: seconds, so a 46-second demo period does not read "23:31 - 23:31".
        (HOUR + timedelta(seconds=1865), HOUR + timedelta(seconds=1911), "2026-01-05 10:31:05 \u2013 10:31:51 UTC"),
        (HOUR.replace(hour=23), HOUR + timedelta(hours=14), "2026-01-05 23:00 \u2013 2026-01-06 00:00 UTC"),
    ],
)
def test_period_reads_to_the_second_when_shorter_than_an_hour(start, end, expected):
    assert period_label(start, end) == expected


def _summary(seconds: int = 3600) -> dict:
    start = HOUR
    return {
        "run_id": "ride_duration_x",
        "model_name": "ride_duration",
        "status": "ok",
        "message": "no dataset drift",
        "generated_at": HOUR.isoformat(),
        "period": {"start": start.isoformat(), "end": (start + timedelta(seconds=seconds)).isoformat()},
        "rows": {"period": 400, "analysed": 400, "labelled": 300},
        "label_coverage": 0.75,
        "sampling": {"applied": False, "period_rows": 400, "analysed_rows": 400, "seed": 1},
        "drift": {"dataset_drift": False, "drifted_features": [], "drifted_share": 0.0},
        "quality": {"available": True, "labelled_rows": 300, "rmse": 5.0, "mae": 4.0},
        "reports": {},
        "task": "regression",
        "columns": {
            "id": "request_id",
            "time": "timestamp",
            "reference_time": "lpep_pickup_datetime",
            "target": "duration",
            "target_unit": "minutes",
            "prediction": "prediction",
            "probabilities": [],
            "datetimes": ["lpep_pickup_datetime"],
            "segment": "pickup_borough",
        },
    }


def _classifier_summary() -> dict:
    summary = _summary()
    summary.update(task="classification", model_name="wine", run_id="wine_x")
    summary["quality"] = {"available": True, "labelled_rows": 300, "accuracy": 0.9312, "f1_macro": 0.9, "log_loss": 0.2}
    summary["columns"].update(
        target="cultivar", target_unit="", reference_time=None, time=None, datetimes=[], segment=None
    )
    summary["columns"]["probabilities"] = ["proba_0", "proba_1"]
    return summary


def test_uneven_sizes_open_the_distributions_on_shares_and_say_so():
    assert uneven((400, 5000)) and uneven((5000, 400)) and not uneven((1000, 1500)) and not uneven(None)
    for kind in (DRIFT, DATA_SUMMARY, QUALITY):
        header = banner(_summary(), kind, (400, 5000))
        assert "Current 400 rows, reference 5,000" in header and "perc" in header, kind
        assert "<script>" in header and "updatemenu-button" in header, kind
        even = banner(_summary(), kind, (1000, 1500))
        assert "<script>" not in even and "Current 1,000 rows" not in even, kind


def test_headers_say_the_period_the_columns_and_the_time_bins():
    short = banner(_summary(46), QUALITY, (300, 5000))
    assert "2026-01-05 10:00:00 \u2013 10:00:46 UTC" in short and "bin by the minute" in short
    assert "bin by the minute" not in banner(_summary(3600), QUALITY, (300, 5000))
    columns = banner(_summary(), DATA_SUMMARY, (300, 300))
    assert "id request_id" in columns and "target duration (minutes)" in columns
    assert "Index binned" in banner(_summary(), DRIFT, (300, 300))
    assert "<b>Regression quality</b>" in short


def test_headers_and_verdicts_follow_the_task_and_its_units():
    """Units and metrics come from the description: no "min" for a regressor in points, accuracy for a classifier."""
    regression = _summary()
    regression["columns"]["target_unit"] = "points"
    assert verdict(regression) == "no dataset drift; RMSE 5.00 points, MAE 4.00 points"
    classifier = _classifier_summary()
    assert verdict(classifier) == "no dataset drift; accuracy 0.931, F1 macro 0.900"
    assert "<b>Classification quality</b> &middot; model wine" in banner(classifier, QUALITY, (300, 300))
    columns = banner(classifier, DATA_SUMMARY, (300, 300))
    assert "target cultivar and prediction, categorical (the classes)" in columns
    assert "class probabilities proba_0, proba_1" in columns and "no time column" in columns
    page = render_index([classifier], now=HOUR)
    assert "classification quality" not in page  # no report link without a report
    assert "accuracy 0.931" in page and " min" not in page


def test_index_shows_short_periods_to_the_second():
    page = render_index([_summary(46)], now=HOUR)
    assert "2026-01-05 10:00:00 \u2013 10:00:46 UTC" in page


def _calibrated_drift() -> dict:
    column = {"stattest": "jensenshannon", "threshold": 0.2996, "score": 0.294, "detected": False}
    return {
        "dataset_drift": False,
        "drifted_features": [],
        "drifted_share": 0.0,
        "dataset_drift_share": 0.5,
        "calibrated": True,
        "rows": 1980,
        "min_rows": 50,
        "false_alarm_rate": 0.005,
        "dataset_false_alarm_rate": 0.01,
        "columns": {
            "PULocationID": {**column, "rows": 1585, "calibrated_rows": 1585, "enough_data": True},
            "trip_distance": {
                **column,
                "threshold": 0.0004,
                "score": 0.00012,
                "rows": 1980,
                "calibrated_rows": 2000,
                "enough_data": True,
            },
            "passenger_count": {**column, "score": None, "rows": 3, "enough_data": False},
        },
    }


def test_the_drift_header_counts_one_thing_per_sentence_at_the_scores_precision():
    """Seen: `for n = 1,980 rows: PULocationID 0.3 (1,585 rows)` - two counts unexplained, 0.294 against "0.3"."""
    sentences = threshold_sentences(_calibrated_drift())
    text = " ".join(sentences)
    assert sentences[0].startswith("Verdict rule: a feature drifts when its score reaches its threshold")
    assert "at least 50% of the judged features drift" in sentences[0]
    assert "Rows analysed: 1,980." in text
    assert (
        "PULocationID (1,585 rows with this feature present): score 0.294 against threshold 0.300 "
        "(jensenshannon): no drift." in sentences
    )
    assert "score 1.20e-04 against threshold 4.00e-04 (jensenshannon)" in text
    assert "trip_distance's threshold is the one calibrated for the nearest size, 2,000 rows." in sentences
    assert "passenger_count (3 rows with this feature present): too few for a verdict." in sentences
    for sentence in sentences[2:]:  # one row count per sentence
        assert sentence.count(" rows") == 1, sentence
    summary = {**_summary(), "drift": _calibrated_drift()}
    assert all(escape(sentence) in banner(summary, DRIFT) for sentence in sentences)


def test_a_categorical_feature_shows_its_unseen_share_beside_its_score():
    drift = _calibrated_drift()
    drift["columns"]["PULocationID"].update(unseen_share=0.104, unseen_threshold=0.0612, detected=True)
    sentences = threshold_sentences(drift)
    assert (
        "PULocationID (1,585 rows with this feature present): score 0.294 against threshold 0.300 "
        "(jensenshannon); values unseen in the reference 10.4% against threshold 6.1%: drift." in sentences
    )
    assert "never saw reaches its own threshold" in sentences[0]


def test_a_numerical_feature_shows_its_histogram_distance_beside_its_score():
    drift = _calibrated_drift()
    drift["columns"]["trip_distance"].update(bins_distance=0.1834, bins_threshold=0.1212, detected=True)
    sentences = threshold_sentences(drift)
    line = next(s for s in sentences if s.startswith("trip_distance ("))
    assert line.endswith(
        "; histogram (Jensen-Shannon over the reference's quantile bins) 0.183 against threshold 0.121: drift."
    ), line
    assert "histogram over the reference's quantile bins reaches its own threshold" in sentences[0]


def test_the_drift_header_states_the_lower_rate_where_the_floor_binds():
    drift = _calibrated_drift()
    drift["stated_dataset_rate"] = 0.0012
    drift["columns"]["trip_distance"]["floor"] = 0.0004  # the floor sets its threshold (0.0004)
    # A category's stated rate is under the configured one with a calibrated threshold too (its unseen part's
    # floor binds): the floor, not the rate, says which threshold the floor set.
    drift["columns"]["PULocationID"].update(floor=0.1, false_alarm_rate=0.0041)
    sentences = threshold_sentences(drift)
    assert (
        "At 1,980 rows the effect-size floor, not the calibration, sets the threshold of trip_distance: clean data "
        "raises a false alarm less often there, at most 0.12% of the time for the dataset verdict." in sentences
    )
    drift["stated_dataset_rate"] = 0.01  # no floor binds: no such sentence
    assert not any("effect-size floor, not the calibration" in s for s in threshold_sentences(drift))


def test_no_estimate_is_said_once_on_the_index_and_its_page():
    """Seen: "no estimate: no estimate: the reference has 169 labelled rows ..." on a small classifier's index."""
    from prefect_flows.estimation import unavailable
    from prefect_flows.estimation_page import render

    summary = _classifier_summary()
    summary["estimation"] = unavailable("no estimate: the reference has 169 labelled rows with probabilities")
    for page in (render_index([summary], now=HOUR), render(summary)):
        assert page.lower().count("no estimate") == 1
        assert "169 labelled rows" in page


def test_no_dataset_drift_says_which_features_had_no_verdict():
    """Seen: "no dataset drift (0% of features drifted)" for a 142-row reference where 10 of 12 features had none."""
    from prefect_flows.analysis import _message
    from prefect_flows.io_mongo import Sampling

    drift = {**_calibrated_drift(), "judged_features": ["PULocationID", "trip_distance"]}
    drift["columns"]["passenger_count"]["min_rows"] = 50  # calibrated: more rows would give it a verdict
    drift["columns"]["fare"] = {"score": 0.1, "rows": 400, "enough_data": False, "min_rows": None}  # never
    drift["unjudged_features"] = ["passenger_count", "fare"]
    summary = {**_summary(), "drift": drift}
    summary["estimation"] = {"available": False, "reason": "no estimate: x"}
    expected = (
        "no verdict for 2 of 4 features (reference too small for their test: fare; too few rows in the period: "
        "passenger_count)"
    )
    assert expected in _message(summary, Sampling(False, 400, 400, 1000, 1))
    assert expected in verdict(summary)
    assert "No verdict for 2 of 4 features" in banner(summary, DRIFT)
    del drift["unjudged_features"]  # a summary written before the key: as before
    assert "no verdict" not in verdict(summary)
