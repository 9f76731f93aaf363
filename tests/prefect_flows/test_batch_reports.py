"""The reports and verdicts of one period, built in-process with Evidently (no database, no Prefect)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from monitoring_core.calibration import CalibrationCache, CalibrationSettings
from monitoring_core.drift import DriftEvaluator
from prefect_flows.analysis import NOT_ENOUGH_DATA, Limits, analyse
from prefect_flows.columns import logged_fields, typed
from prefect_flows.io_mongo import sample_rows
from prefect_flows.period import Period
from prefect_flows.publish import banner
from prefect_flows.reports import DRIFT, build_drift, current_frame, drift_results, reference_frame
from ride_duration.model import load_model
from ride_duration.schema import CATEGORICAL_FEATURES, DESCRIPTION, PREDICTION, TARGET, DriftTest, drift_tests
from ride_duration.synthetic import NO_DRIFT, DriftParams, generate_trips
from ride_duration.zones import borough_of

PERIOD = Period(datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))
# The metrics service's calibrated zone threshold (monitoring_core/monitoring.yaml), for 1,000-row windows.
CALIBRATED = {**drift_tests(), **{c: DriftTest("jensenshannon", 0.3) for c in CATEGORICAL_FEATURES}}


@pytest.fixture(scope="module")
def model(artifacts_dir):
    return load_model(artifacts_dir / "model.pkl")


def _logged(model, n: int, seed: int, drift: DriftParams = NO_DRIFT, label_share: float = 1.0) -> pd.DataFrame:
    """Rows as read_predictions returns them: the projected columns, typed, the label under the target's name."""
    rides = generate_trips(n, seed=seed, drift=drift)
    rides[PREDICTION] = model.predict_frame(rides)
    rides[TARGET] = rides[TARGET].where(np.random.default_rng(seed).random(n) < label_share)
    rides["model_version"] = model.version
    rides["request_id"] = [f"r{seed}-{i}" for i in range(n)]
    # Served over the period, as logged (naive UTC, as read_predictions returns it).
    rides["timestamp"] = pd.date_range(PERIOD.start, PERIOD.end, periods=n + 1, inclusive="left").tz_localize(None)
    columns = [TARGET if c == "target" else c for c in logged_fields(DESCRIPTION)]
    return typed(DESCRIPTION, rides[columns])


# One in-memory calibration cache for the module: each size bucket is simulated once.
CACHE = CalibrationCache(None)
LIMITS = Limits(tests=CALIBRATED, cache=CACHE)


def _analyse(reference, rows, limits=LIMITS):
    analysed, sampling = sample_rows(rows, 100_000, 0)
    return analyse("run", DESCRIPTION, PERIOD, reference, rows, analysed, sampling, limits)


def test_drift_verdicts_follow_the_injected_drift(model, reference):
    clean = _analyse(reference, _logged(model, 1000, seed=1)).summary
    drifted = _analyse(reference, _logged(model, 1000, seed=2, drift=DriftParams(distance_scale=1.8))).summary
    assert clean["drift"]["dataset_drift"] is False and clean["drift"]["drifted_features"] == []
    assert drifted["drift"]["drifted_features"] == ["trip_distance"]
    assert drifted["drift"]["prediction_drift"] is True
    # One broken feature of four is dataset drift: Holm over the features at the dataset rate, as online.
    assert drifted["drift"]["drifted_share"] == 0.25 and drifted["drift"]["dataset_drift"] is True
    assert drifted["drift"]["rule"] == "holm" and drifted["drift"]["flagged"] == ["trip_distance"]


def test_quality_matches_the_errors_and_has_segments(model, reference):
    rows = _logged(model, 1000, seed=3, drift=DriftParams(congestion=1.4), label_share=0.6)
    summary = _analyse(reference, rows).summary
    labelled = rows[rows[TARGET].notna()]
    error = labelled[PREDICTION] - labelled[TARGET]
    quality = summary["quality"]
    assert quality["labelled_rows"] == len(labelled)
    assert quality["rmse"] == pytest.approx(float(np.sqrt((error**2).mean())))
    assert quality["mae"] == pytest.approx(float(error.abs().mean()))
    # Evidently's sign: rides got slower, so the model under-predicts (negative mean error).
    assert quality["mean_error"] == pytest.approx(float(error.mean())) and quality["mean_error"] < -3
    assert summary["label_coverage"] == pytest.approx(len(labelled) / len(rows))
    segments = {s["segment"]: s for s in quality["segments"]}
    in_manhattan = labelled["PULocationID"].map(borough_of) == "Manhattan"
    assert segments["Manhattan"]["labelled_rows"] == int(in_manhattan.sum())
    assert segments["Manhattan"]["rmse"] == pytest.approx(float(np.sqrt((error[in_manhattan] ** 2).mean())))


def test_too_few_labels_or_rows_give_no_misleading_numbers(model, reference):
    few_labels = _analyse(reference, _logged(model, 400, seed=4, label_share=0.02)).summary
    assert few_labels["status"] == "ok" and few_labels["quality"]["available"] is False
    assert few_labels["quality"]["reason"].startswith("only ") and "labelled rows" in few_labels["quality"]["reason"]
    tiny = _analyse(reference, _logged(model, 20, seed=5))
    assert tiny.summary["status"] == NOT_ENOUGH_DATA and tiny.reports == []
    needed = LIMITS.evaluator(DESCRIPTION, reference_frame(DESCRIPTION, reference)).min_rows
    assert tiny.summary["message"] == f"not enough data: 20 rows in the period, at least {needed} needed"
    assert tiny.summary["min_rows"] == needed > 20
    empty = _analyse(reference, _logged(model, 1, seed=5).iloc[:0])
    assert empty.summary["status"] == NOT_ENOUGH_DATA and empty.summary["label_coverage"] is None


def test_a_reference_too_small_for_any_drift_verdict_still_reports_quality_and_says_why(model, reference):
    """Seen: a 90-row reference's runs all read "not enough data: 492 rows in the period, the reference is too
    small for any", with no quality report, while the metrics service exported accuracy from the same labels."""
    tiny_reference = reference.head(40)
    run = _analyse(tiny_reference, _logged(model, 300, seed=6), Limits(tests=CALIBRATED, cache=CalibrationCache(None)))
    summary = run.summary
    assert LIMITS.evaluator(DESCRIPTION, reference_frame(DESCRIPTION, tiny_reference)).min_rows is None
    assert summary["status"] == "ok" and summary["quality"]["available"] and summary["quality"]["labelled_rows"] == 300
    assert summary["drift"]["judged_features"] == [] and summary["drift"]["dataset_drift"] is False
    assert summary["message"].startswith("no verdict for 4 of 4 features (reference too small for their test: ")
    assert "Verdict: no drift verdict" in banner(summary, DRIFT) and "RMSE" in summary["message"]


@pytest.mark.parametrize(
    ("tests", "multiple_testing"),
    [
        (CALIBRATED, "none"),
        (drift_tests(), "none"),
        # p-value tests with a correction: the family and the corrected thresholds must match too.
        (
            {
                **{c: DriftTest("ks", 0.05) for c in ("trip_distance", "passenger_count", PREDICTION)},
                **{c: DriftTest("chisquare", 0.05) for c in CATEGORICAL_FEATURES},
            },
            "bonferroni",
        ),
    ],
)
@pytest.mark.parametrize("calibrated", [True, False], ids=["calibrated", "pinned"])
@pytest.mark.parametrize("rows_n", [300, 1000])
def test_report_scores_equal_the_online_evaluator(model, reference, tests, multiple_testing, calibrated, rows_n):
    """Parity on the same rows: the batch report's scores, thresholds and verdicts equal DriftEvaluator's."""
    drift = DriftParams(distance_scale=1.3, new_zone_share=0.1, missing_share=0.2)
    rows = _logged(model, rows_n, seed=6, drift=drift)
    calibration = CalibrationSettings() if calibrated else None
    online = DriftEvaluator(DESCRIPTION, reference, tests, 0.5, multiple_testing, calibration, CACHE).evaluate(rows)
    thresholds = {c: r.threshold for c, r in online.columns.items()}
    ref, current = reference_frame(DESCRIPTION, reference), current_frame(DESCRIPTION, rows)
    snapshot = build_drift(DESCRIPTION, ref, current, tests, 0.5, {}, thresholds).snapshot
    batch = drift_results(DESCRIPTION, snapshot, tests, 0.5, multiple_testing, online)
    for column, result in online.columns.items():
        assert math.isclose(batch["columns"][column]["score"], result.score, rel_tol=0, abs_tol=1e-9), column
        assert batch["columns"][column]["threshold"] == pytest.approx(result.threshold, abs=1e-12), column
        assert batch["columns"][column]["detected"] == result.detected, column
    assert batch["drifted_share"] == pytest.approx(online.drifted_share)
    assert batch["dataset_drift"] == online.dataset_drift


# Clean samples per size: each is judged on 4 features at a per-feature false-alarm rate of 0.5%
# and a dataset rate of at most 1%; the bounds below fail with probability < 1e-4 (binomial).
CLEAN_SAMPLES = 4


@pytest.mark.parametrize("n", [50, 120, 250, 500, 1000, 3000])
def test_clean_rows_the_reference_never_saw_give_no_drift_verdict_at_any_size(model, reference, n):
    from scipy.stats import binom

    feature_flags, dataset_flags = 0, 0
    for k in range(CLEAN_SAMPLES):
        summary = _analyse(reference, _logged(model, n, seed=700 + 10 * n + k)).summary
        if summary["status"] == NOT_ENOUGH_DATA:
            assert summary["drift"] is None and n < summary["min_rows"]
            continue
        drift = summary["drift"]
        assert drift["rows"] == n and drift["calibrated"] is True
        feature_flags += len(drift["drifted_features"])
        dataset_flags += drift["dataset_drift"]
    # The dataset verdict runs at its stated 1% (exact now, not ~10x below it): two false alarms in 4 samples
    # have probability ~6e-4 (a fixed seed, so never flaky; one is within the stated rate).
    assert dataset_flags <= 1
    assert feature_flags <= binom.isf(1e-4, CLEAN_SAMPLES * 4, 0.005)


def test_small_periods_are_not_enough_data_never_drift(model, reference):
    summary = _analyse(reference, _logged(model, 50, seed=71)).summary
    assert summary["status"] == NOT_ENOUGH_DATA and summary["drift"] is None


def test_the_summary_and_header_state_threshold_rows_and_false_alarm_rate(model, reference):
    analysis = _analyse(reference, _logged(model, 400, seed=72))
    drift = analysis.summary["drift"]
    assert drift["rows"] == 400 and drift["false_alarm_rate"] == 0.005 and drift["dataset_false_alarm_rate"] == 0.01
    assert drift["min_rows"] == analysis.summary["min_rows"] <= 400
    for column in drift["columns"].values():
        assert column["calibrated_rows"] == 398 and column["threshold"] > 0 and column["enough_data"]
    header = banner(analysis.summary, DRIFT)
    assert "Rows analysed: 400." in header and "0.50% of the time per feature" in header
    column = drift["columns"]["trip_distance"]
    assert f"trip_distance ({column['rows']:,} rows with this feature present): score {column['score']:.3f}" in header
    assert f"against threshold {column['threshold']:.3f}" in header


@pytest.mark.parametrize(
    ("drift", "feature"),
    [(DriftParams(distance_scale=2.5), "trip_distance"), (DriftParams(new_zone_share=0.5), "PULocationID")],
    ids=["distance x2.5", "pickups to a few new zones"],
)
def test_blatant_shifts_at_250_rows_are_flagged_on_the_shifted_feature(model, reference, drift, feature):
    summary = _analyse(reference, _logged(model, 250, seed=73, drift=drift)).summary
    assert feature in summary["drift"]["drifted_features"]


def test_reports_name_model_and_period_for_the_ui(model, reference):
    analysis = _analyse(reference, _logged(model, 300, seed=7))
    drift = next(r for r in analysis.reports if r.kind == DRIFT).snapshot
    stored = drift.to_snapshot_model()  # what the workspace keeps
    assert {"ride_duration", DRIFT} <= set(stored.tags)
    assert stored.metadata["period_start"] == PERIOD.start.isoformat()
    assert stored.timestamp == PERIOD.end.replace(tzinfo=None)  # the UI's time axis follows the periods
    assert drift.get_name() == "ride_duration data drift 2026-01-05 10:00-11:00 UTC"


def test_workspace_opens_without_reading_stored_snapshots(model, reference, tmp_path):
    """A run's cost must not grow with the history: opening the workspace leaves stored snapshots unread."""
    from evidently.ui.workspace import Workspace

    from prefect_flows.publish import record_snapshots
    from prefect_flows.workspace import open_workspace

    analysis = _analyse(reference, _logged(model, 300, seed=8))
    first = record_snapshots(open_workspace(tmp_path), DESCRIPTION, analysis.reports)
    # An unparsable stored snapshot: Evidently's Workspace(path) would parse (and here reject) it on open.
    stored = tmp_path / first["project_id"] / "snapshots"
    unreadable = stored / "01a21a4d-0000-7000-8000-000000000000.json"
    unreadable.write_text("{}")
    second = record_snapshots(open_workspace(tmp_path), DESCRIPTION, analysis.reports)
    assert second["project_id"] == first["project_id"]
    unreadable.unlink()
    workspace = Workspace(str(tmp_path))  # what `evidently ui` reads
    runs = {str(r) for r in workspace.list_runs(first["project_id"])}
    assert {*first["snapshots"].values(), *second["snapshots"].values()} <= runs
    assert workspace.get_run(first["project_id"], second["snapshots"][DRIFT]).tags == ["ride_duration", DRIFT]


def test_new_zones_raise_no_runtime_warning_from_the_quality_segments(model, reference):
    """Seen: 36 `RuntimeWarning: invalid value encountered in scalar divide` in the demo's batch log."""
    import warnings

    rows = _logged(model, 400, seed=74, drift=DriftParams(new_zone_share=0.5, distance_scale=1.8), label_share=0.8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analysis = _analyse(reference, rows)
    assert analysis.summary["quality"]["available"]
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
