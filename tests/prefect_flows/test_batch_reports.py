"""The reports and verdicts of one period, built in-process with Evidently (no database, no Prefect)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from monitoring_core.drift import DriftEvaluator
from prefect_flows.analysis import NOT_ENOUGH_DATA, Limits, analyse
from prefect_flows.io_mongo import COLUMNS, TARGET_FIELD, sample_rows
from prefect_flows.period import Period
from prefect_flows.reports import DRIFT, build_drift, drift_results, reference_frame
from ride_duration.model import load_model
from ride_duration.schema import CATEGORICAL_FEATURES, PREDICTION, TARGET, DriftTest, drift_tests
from ride_duration.synthetic import NO_DRIFT, DriftParams, generate_trips
from ride_duration.zones import borough_of

PERIOD = Period(datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC))
# The metrics service's calibrated zone threshold (monitoring_core/monitoring.yaml), for 1,000-row windows.
CALIBRATED = {**drift_tests(), **{c: DriftTest("jensenshannon", 0.3) for c in CATEGORICAL_FEATURES}}


@pytest.fixture(scope="module")
def model(artifacts_dir):
    return load_model(artifacts_dir / "model.pkl")


def _logged(model, n: int, seed: int, drift: DriftParams = NO_DRIFT, label_share: float = 1.0) -> pd.DataFrame:
    """Rows as read_predictions returns them: the projected columns, the label under `target`."""
    rides = generate_trips(n, seed=seed, drift=drift)
    rides[PREDICTION] = model.predict_frame(rides)
    rides[TARGET_FIELD] = rides[TARGET].where(np.random.default_rng(seed).random(n) < label_share)
    rides["model_version"] = model.version
    rides["request_id"] = [f"r{seed}-{i}" for i in range(n)]
    # Served over the period, as logged (naive UTC, as read_predictions returns it).
    rides["timestamp"] = pd.date_range(PERIOD.start, PERIOD.end, periods=n + 1, inclusive="left").tz_localize(None)
    return rides[list(COLUMNS)]


LIMITS = Limits(tests=CALIBRATED)


def _analyse(reference, rows, limits=LIMITS):
    analysed, sampling = sample_rows(rows, 100_000, 0)
    return analyse("run", "ride_duration", PERIOD, reference, rows, analysed, sampling, limits)


def test_drift_verdicts_follow_the_injected_drift(model, reference):
    clean = _analyse(reference, _logged(model, 1000, seed=1)).summary
    drifted = _analyse(reference, _logged(model, 1000, seed=2, drift=DriftParams(distance_scale=1.8))).summary
    assert clean["drift"]["dataset_drift"] is False and clean["drift"]["drifted_features"] == []
    assert drifted["drift"]["drifted_features"] == ["trip_distance"]
    assert drifted["drift"]["prediction_drift"] is True
    assert drifted["drift"]["drifted_share"] == 0.25 and drifted["drift"]["dataset_drift"] is False


def test_quality_matches_the_errors_and_has_segments(model, reference):
    rows = _logged(model, 1000, seed=3, drift=DriftParams(congestion=1.4), label_share=0.6)
    summary = _analyse(reference, rows).summary
    labelled = rows[rows[TARGET_FIELD].notna()]
    error = labelled[PREDICTION] - labelled[TARGET_FIELD]
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
    assert tiny.summary["message"] == "not enough data: 20 rows in the period, at least 50 needed"
    empty = _analyse(reference, pd.DataFrame(columns=list(COLUMNS)))
    assert empty.summary["status"] == NOT_ENOUGH_DATA and empty.summary["label_coverage"] is None


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
def test_report_scores_equal_the_online_evaluator(model, reference, tests, multiple_testing):
    """Parity on the same rows: the batch report's scores and verdicts equal DriftEvaluator's."""
    rows = _logged(model, 1000, seed=6, drift=DriftParams(distance_scale=1.3, new_zone_share=0.1, missing_share=0.2))
    snapshot = build_drift(reference_frame(reference), rows, tests, 0.5, {}).snapshot
    batch = drift_results(snapshot, tests, 0.5, multiple_testing)
    online = DriftEvaluator(reference, tests, 0.5, multiple_testing).evaluate(rows)
    for column, result in online.columns.items():
        assert math.isclose(batch["columns"][column]["score"], result.score, rel_tol=1e-12, abs_tol=1e-15), column
        assert batch["columns"][column]["threshold"] == pytest.approx(result.threshold), column
        assert batch["columns"][column]["detected"] == result.detected, column
    assert batch["drifted_share"] == pytest.approx(online.drifted_share)
    assert batch["dataset_drift"] == online.dataset_drift


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
    first = record_snapshots(open_workspace(tmp_path), "ride_duration", analysis.reports)
    # An unparsable stored snapshot: Evidently's Workspace(path) would parse (and here reject) it on open.
    stored = tmp_path / first["project_id"] / "snapshots"
    unreadable = stored / "01a21a4d-0000-7000-8000-000000000000.json"
    unreadable.write_text("{}")
    second = record_snapshots(open_workspace(tmp_path), "ride_duration", analysis.reports)
    assert second["project_id"] == first["project_id"]
    unreadable.unlink()
    workspace = Workspace(str(tmp_path))  # what `evidently ui` reads
    runs = {str(r) for r in workspace.list_runs(first["project_id"])}
    assert {*first["snapshots"].values(), *second["snapshots"].values()} <= runs
    assert workspace.get_run(first["project_id"], second["snapshots"][DRIFT]).tags == ["ride_duration", DRIFT]
