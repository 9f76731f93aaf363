"""Build the Evidently 0.7 reports of one period and read their verdicts back from the snapshots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.drift import DriftResult, corrected_thresholds, data_definition, report_drift_metrics
from monitoring_core.segments import with_segment
from prefect_flows.io_mongo import TARGET_FIELD
from ride_duration.schema import (
    CATEGORICAL_FEATURES,
    DATETIME_FIELD,
    NUMERICAL_FEATURES,
    PREDICTION,
    REQUEST_ID,
    SEGMENT,
    TARGET,
    TIMESTAMP,
    DriftTest,
    drift_tests,
)

DRIFT, DATA_SUMMARY, QUALITY = "drift", "data_summary", "quality"
TITLES = {DRIFT: "Data drift", DATA_SUMMARY: "Data summary and quality", QUALITY: "Regression quality"}
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_QUALITY_METRICS = {
    "evidently:metric_v2:RMSE": "rmse",
    "evidently:metric_v2:MAE": "mae",
    "evidently:metric_v2:MeanError": "mean_error",
    "evidently:metric_v2:R2Score": "r2",
    "evidently:metric_v2:AbsMaxError": "abs_max_error",
}


@dataclass(frozen=True)
class BuiltReport:
    """One Evidently report of a run: its kind, its snapshot and the rows it compared (current, reference)."""

    kind: str
    snapshot: Any  # evidently.core.report.Snapshot
    sizes: tuple[int, int] | None = None


def current_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Return the logged rows in serving order, in the reference's column names (the label as the schema's target).

    Evidently 0.7.23's ValueDrift plots against the row index ("Index binned") whatever the data definition
    says, so the rows are sorted by the prediction's time: the index then follows time.
    """
    frame = rows.rename(columns={TARGET_FIELD: TARGET})
    if TIMESTAMP in frame.columns:
        frame = frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    return with_segment(frame)


def reference_frame(reference: pd.DataFrame) -> pd.DataFrame:
    """Return the reference's columns the reports use, with the segment, an id and a time per row.

    Reference rows were never served: their id is `reference-<row>` and their time the ride's pickup
    time (held-out rides of the training month), so both datasets carry the same typed columns.
    """
    columns = [*CATEGORICAL_FEATURES, *NUMERICAL_FEATURES, PREDICTION, TARGET, DATETIME_FIELD]
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise ValueError(f"reference lacks column(s) {missing}")
    frame = reference[columns].reset_index(drop=True)
    pickup = pd.to_datetime(frame[DATETIME_FIELD], errors="coerce", utc=True).dt.tz_localize(None)
    frame = frame.assign(
        **{DATETIME_FIELD: pickup, REQUEST_ID: [f"reference-{i}" for i in range(len(frame))], TIMESTAMP: pickup}
    )
    return with_segment(frame)


# The columns of the summary and quality reports; current and reference must have the same.
REPORT_COLUMNS: tuple[str, ...] = (
    *CATEGORICAL_FEATURES,
    *NUMERICAL_FEATURES,
    PREDICTION,
    TARGET,
    SEGMENT,
    REQUEST_ID,
    TIMESTAMP,
    DATETIME_FIELD,
)


def _definition(numerical: list[str], regression: bool) -> Any:
    """Return the columns typed from the schema: the id, the prediction's time, the pickup time, features."""
    from evidently import DataDefinition, Regression

    return DataDefinition(
        id_column=REQUEST_ID,
        timestamp=TIMESTAMP,  # the time axis of Evidently's plots: when the prediction was served
        datetime_columns=[DATETIME_FIELD],
        numerical_columns=numerical,
        categorical_columns=[*CATEGORICAL_FEATURES, SEGMENT],
        regression=[Regression(target=TARGET, prediction=PREDICTION)] if regression else None,
    )


def _summary_definition() -> Any:
    return _definition([*NUMERICAL_FEATURES, PREDICTION, TARGET], regression=True)


def _run(metrics: list, current: pd.DataFrame, reference: pd.DataFrame, definition: Any, **meta: Any) -> Any:
    from evidently import Dataset, Report

    return Report(metrics).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
        **meta,
    )


def build_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    tests: Mapping[str, DriftTest],
    dataset_drift_share: float,
    meta: dict[str, Any],
    thresholds: Mapping[str, float] | None = None,
) -> BuiltReport:
    """Run the drift report: the online service's pinned tests, at the thresholds calibrated for the period's size."""
    columns = list(tests)
    snapshot = _run(
        report_drift_metrics(tests, dataset_drift_share, thresholds),
        current[columns],
        reference[columns],
        data_definition(tests),
        **meta,
    )
    return BuiltReport(DRIFT, snapshot, (len(current), len(reference)))


def build_data_summary(reference: pd.DataFrame, current: pd.DataFrame, meta: dict[str, Any]) -> BuiltReport:
    """Run the data summary and quality report (counts, missing values, distributions) against the reference."""
    from evidently.presets import DataSummaryPreset

    columns = list(REPORT_COLUMNS)
    snapshot = _run([DataSummaryPreset()], current[columns], reference[columns], _summary_definition(), **meta)
    return BuiltReport(DATA_SUMMARY, snapshot, (len(current), len(reference)))


# Per-row errors (prediction - target, Evidently's sign) for the per-segment view. Evidently 0.7.23's
# GroupBy over the legacy-backed regression metrics (RMSE, MAE, MeanError) repeats the overall value
# for every segment, so the segments use native MeanValue metrics over these columns instead.
ERROR, ABS_ERROR = "error", "abs_error"


def with_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Return labelled rows with their signed and absolute prediction errors in minutes."""
    error = frame[PREDICTION] - frame[TARGET]
    return frame.assign(**{ERROR: error, ABS_ERROR: error.abs()})


def build_quality(reference: pd.DataFrame, labelled: pd.DataFrame, meta: dict[str, Any]) -> BuiltReport:
    """Run regression quality on the labelled rows, overall and per pickup borough."""
    from evidently.metrics import GroupBy, MeanValue
    from evidently.presets import RegressionPreset

    columns = [*REPORT_COLUMNS, ERROR, ABS_ERROR]
    definition = _definition([*NUMERICAL_FEATURES, PREDICTION, TARGET, ERROR, ABS_ERROR], regression=True)
    metrics = [
        RegressionPreset(),
        GroupBy(MeanValue(column=ABS_ERROR), SEGMENT),
        GroupBy(MeanValue(column=ERROR), SEGMENT),
    ]
    current, ref = with_errors(labelled)[columns], with_errors(reference)[columns]
    # A pickup borough the period has and the reference lacks (new zones) gives GroupBy an empty reference
    # subset, whose "share of infinite values" Evidently 0.7.23 computes as 0/0: one numpy RuntimeWarning
    # ("invalid value encountered in scalar divide") per numerical column and segment, 36 in a demo run.
    # The NaN it yields is what an empty subset should show; only the division warning is silenced, here.
    with np.errstate(invalid="ignore", divide="ignore"):
        snapshot = _run(metrics, current, ref, definition, **meta)
    return BuiltReport(QUALITY, snapshot, (len(current), len(ref)))


def detected(score: float, test: DriftTest) -> bool:
    """Return Evidently's verdict for a score: p-values drift at or below, distances at or above the threshold."""
    if math.isnan(score):
        return False
    return score <= test.threshold if test.is_p_value else score >= test.threshold


def drift_results(
    snapshot: Any,
    tests: Mapping[str, DriftTest] | None = None,
    dataset_drift_share: float = 0.5,
    multiple_testing: str = "none",
    calibrated: DriftResult | None = None,
) -> dict[str, Any]:
    """Read per-column scores from a drift snapshot and derive the verdicts as the online service does.

    `calibrated` is the drift evaluator's result on the same rows: its thresholds (calibrated for
    each column's size) and "enough data" flags are the ones applied; without it, the pinned thresholds.
    """
    tests = dict(tests if tests is not None else drift_tests())
    scores = {
        metric["config"]["column"]: float(metric["value"])
        for metric in snapshot.dict()["metrics"]
        if metric["config"].get("type") == _VALUE_DRIFT and metric["config"]["column"] in tests
    }
    # The same multiple-testing family as the online evaluator: features with a p-value test.
    family = {c: s for c, s in scores.items() if c != PREDICTION and tests[c].is_p_value and not math.isnan(s)}
    corrected = corrected_thresholds(family, {c: tests[c].threshold for c in family}, multiple_testing)
    columns: dict[str, dict[str, Any]] = {}
    for column, score in scores.items():
        outcome = calibrated.columns[column] if calibrated is not None else None
        pinned = outcome.threshold if outcome is not None else tests[column].threshold
        test = DriftTest(tests[column].method, corrected.get(column, pinned))
        enough = outcome.enough_data if outcome is not None else True
        columns[column] = {
            "stattest": test.method,
            "threshold": test.threshold,
            "score": None if math.isnan(score) else score,
            "detected": enough and detected(score, test),
            "enough_data": enough,
            "rows": outcome.rows if outcome is not None else None,
            "calibrated_rows": outcome.calibrated_rows if outcome is not None else None,
            "min_rows": outcome.min_rows if outcome is not None else None,
        }
    features = [
        c
        for c in tests
        if c != PREDICTION and columns.get(c, {}).get("score") is not None and columns[c]["enough_data"]
    ]
    drifted = [c for c in features if columns[c]["detected"]]
    share = len(drifted) / len(features) if features else 0.0
    enough_rows = calibrated.enough_data if calibrated is not None else True
    return {
        "dataset_drift": enough_rows and bool(features) and share >= dataset_drift_share,
        "drifted_share": share,
        "dataset_drift_share": dataset_drift_share,
        "multiple_testing": multiple_testing,
        "drifted_features": drifted,
        "prediction_drift": columns.get(PREDICTION, {}).get("detected", False),
        "calibrated": calibrated is not None and calibrated.false_alarm_rate is not None,
        "rows": calibrated.rows if calibrated is not None else None,
        "min_rows": calibrated.min_rows if calibrated is not None else None,
        "false_alarm_rate": calibrated.false_alarm_rate if calibrated is not None else None,
        "dataset_false_alarm_rate": calibrated.dataset_false_alarm_rate if calibrated is not None else None,
        "columns": columns,
    }


def quality_results(snapshot: Any) -> dict[str, float]:
    """Read the overall regression metrics (minutes) from a quality snapshot."""
    values: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        name = _QUALITY_METRICS.get(metric["config"].get("type"))
        if name is None:
            continue
        value = metric["value"]
        values.setdefault(name, float(value["mean"] if isinstance(value, dict) else value))
    return values


def segment_quality(labelled: pd.DataFrame, min_rows: int) -> list[dict[str, Any]]:
    """Return quality per pickup borough (segments with at least `min_rows` labels), largest first."""
    error = labelled[PREDICTION] - labelled[TARGET]  # Evidently's sign: positive = over-predicted
    table = []
    for segment, errors in error.groupby(labelled[SEGMENT]):
        if len(errors) < min_rows:
            continue
        table.append(
            {
                "segment": str(segment),
                "labelled_rows": int(len(errors)),
                "rmse": float(np.sqrt(np.mean(errors**2))),
                "mae": float(np.mean(np.abs(errors))),
                "mean_error": float(np.mean(errors)),
            }
        )
    return sorted(table, key=lambda row: -row["labelled_rows"])


def snapshot_meta(model_name: str, period_start: datetime, period_end: datetime, kind: str) -> dict[str, Any]:
    """Return the run arguments that date and label a snapshot for the Evidently UI."""
    return {
        # The snapshot's time is the period's end, so the UI's time axis follows the periods.
        "timestamp": period_end.replace(tzinfo=None),
        "name": f"{model_name} {TITLES[kind].lower()} {period_label(period_start, period_end, '-')}",
        "tags": [model_name, kind],
        "metadata": {
            "model": model_name,
            "period_start": period_start.isoformat(),
            "period_end": period_end.isoformat(),
        },
    }


def period_label(start: datetime, end: datetime, dash: str = " \u2013 ") -> str:
    """Return a period as people read it: to the minute, or to the second when shorter than an hour."""
    clock = "%H:%M:%S" if end - start < timedelta(hours=1) else "%H:%M"
    end_day = "" if end.date() == start.date() else f"{end:%Y-%m-%d} "
    return f"{start:%Y-%m-%d} {start.strftime(clock)}{dash}{end_day}{end.strftime(clock)} UTC"
