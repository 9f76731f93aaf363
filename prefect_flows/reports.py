"""Build the Evidently 0.7 reports of one period and read their verdicts back from the snapshots."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.description import DriftTest, Kind, ModelDescription
from monitoring_core.drift import DriftResult, corrected_thresholds, data_definition, report_drift_metrics
from prefect_flows.columns import REQUEST_ID, TIMESTAMP, report_features, typed

DRIFT, DATA_SUMMARY, QUALITY = "drift", "data_summary", "quality"
TITLES = {DRIFT: "Data drift", DATA_SUMMARY: "Data summary and quality", QUALITY: "Model quality"}
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_QUALITY_METRICS = {
    "evidently:metric_v2:RMSE": "rmse",
    "evidently:metric_v2:MAE": "mae",
    "evidently:metric_v2:MeanError": "mean_error",
    "evidently:metric_v2:R2Score": "r2",
    "evidently:metric_v2:AbsMaxError": "abs_max_error",
}


def title(kind: str, task: str = "regression") -> str:
    """Return a report's title; the quality report says its task ("Regression quality", "Classification quality")."""
    return f"{task.capitalize()} quality" if kind == QUALITY else TITLES[kind]


@dataclass(frozen=True)
class BuiltReport:
    """One Evidently report of a run: its kind, its snapshot and the rows it compared (current, reference)."""

    kind: str
    snapshot: Any  # evidently.core.report.Snapshot
    sizes: tuple[int, int] | None = None


def current_frame(description: ModelDescription, rows: pd.DataFrame) -> pd.DataFrame:
    """Return the logged rows (io_mongo.read_predictions) in serving order, with the segment column.

    Evidently 0.7.23's ValueDrift plots against the row index ("Index binned") whatever the data definition
    says, so the rows are sorted by the prediction's time: the index then follows time.
    """
    frame = rows
    if TIMESTAMP in frame.columns:
        frame = frame.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)
    return description.with_segment(frame)


def reference_time_column(description: ModelDescription) -> str | None:
    """Return the reference column that dates its rows: the description's `timestamp`, else its first datetime."""
    if description.timestamp is not None:
        return description.timestamp
    return description.datetime_features[0] if description.datetime_features else None


def reference_frame(description: ModelDescription, reference: pd.DataFrame) -> pd.DataFrame:
    """Return the reference's columns the reports use, typed as the logged rows, with the segment, an id and a time.

    Reference rows were never served: their id is the description's `id` column or `reference-<row>`, and
    their time the description's `timestamp` column or first datetime feature. Without either time
    the reports have no time axis (`timestamp` is dropped from both datasets).
    """
    columns = [*report_features(description), *description.output_columns, description.target_column]
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise ValueError(f"reference of {description.name} lacks column(s) {missing}")
    source = reference.reset_index(drop=True)
    frame = typed(description, source[columns])
    ids = (
        source[description.id].astype(str)
        if description.id in source.columns
        else pd.Series([f"reference-{i}" for i in range(len(frame))], dtype=object)
    )
    frame = frame.assign(**{REQUEST_ID: ids.to_numpy()})
    time_column = reference_time_column(description)
    if time_column is not None and time_column in source.columns:
        times = frame[time_column] if time_column in frame.columns else source[time_column]
        frame[TIMESTAMP] = pd.to_datetime(times, errors="coerce", utc=True).dt.tz_localize(None)
    return description.with_segment(frame)


def report_columns(description: ModelDescription, reference: pd.DataFrame) -> list[str]:
    """Return the columns of the summary and quality reports: current and reference must have the same."""
    segment = [description.segment.name] if description.segment is not None else []
    time = [TIMESTAMP] if TIMESTAMP in reference.columns else []
    features = [f for f in report_features(description) if f not in description.datetime_features]
    return [
        *features,
        *description.output_columns,
        description.target_column,
        *segment,
        REQUEST_ID,
        *time,
        *[f for f in report_features(description) if f in description.datetime_features],
    ]


def _task(description: ModelDescription, probabilities: bool) -> dict[str, Any]:
    """Return the DataDefinition's task: Regression, or Binary/MulticlassClassification on the class texts."""
    from evidently import BinaryClassification, MulticlassClassification, Regression

    target, prediction = description.target_column, description.prediction_column
    if not description.is_classification:
        return {"regression": [Regression(target=target, prediction=prediction)]}
    classes = description.class_keys
    probas = description.probability_columns if probabilities else {}
    if len(classes) == 2:
        positive = classes[1]  # scikit-learn's convention: the second (larger) class is the positive one
        task = BinaryClassification(
            target=target, prediction_labels=prediction, prediction_probas=probas.get(positive), pos_label=positive
        )
    else:
        # Evidently names each class's probability column by the class: quality_frame renames them so.
        names = list(classes) if set(probas) == set(classes) else None
        task = MulticlassClassification(target=target, prediction_labels=prediction, prediction_probas=names)
    return {"classification": [task]}


def definition(
    description: ModelDescription, columns: list[str], extra_numerical: tuple[str, ...] = (), probabilities: bool = True
) -> Any:
    """Return the DataDefinition of the report columns, typed from the description: id, time, features, task."""
    from evidently import DataDefinition

    numerical, categorical, datetimes = [], [], []
    for column in columns:
        if column in (REQUEST_ID, TIMESTAMP):
            continue
        if column in description.datetime_features:
            datetimes.append(column)
        elif column in (description.prediction_column, description.target_column):
            (categorical if description.is_classification else numerical).append(column)
        elif description.segment is not None and column == description.segment.name:
            categorical.append(column)
        elif column in description.probability_columns.values() or column in extra_numerical:
            numerical.append(column)
        elif column in description.fields_by_name:
            kind = description.feature(column).kind
            (categorical if kind is Kind.CATEGORICAL else numerical).append(column)
        else:
            numerical.append(column)  # a class's probability renamed to its class (multiclass quality)
    return DataDefinition(
        id_column=REQUEST_ID,
        # The time axis of Evidently's plots: when the prediction was served.
        timestamp=TIMESTAMP if TIMESTAMP in columns else None,
        datetime_columns=datetimes,
        numerical_columns=numerical,
        categorical_columns=categorical,
        **_task(description, probabilities),
    )


def _run(metrics: list, current: pd.DataFrame, reference: pd.DataFrame, definition: Any, **meta: Any) -> Any:
    from evidently import Dataset, Report

    return Report(metrics).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
        **meta,
    )


def build_drift(
    description: ModelDescription,
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
        report_drift_metrics(description, tests, dataset_drift_share, thresholds),
        current[columns],
        reference[columns],
        data_definition(description, tests),
        **meta,
    )
    return BuiltReport(DRIFT, snapshot, (len(current), len(reference)))


def build_data_summary(
    description: ModelDescription, reference: pd.DataFrame, current: pd.DataFrame, meta: dict[str, Any]
) -> BuiltReport:
    """Run the data summary and quality report (counts, missing values, distributions) against the reference."""
    from evidently.presets import DataSummaryPreset

    columns = report_columns(description, reference)
    snapshot = _run(
        [DataSummaryPreset()], current[columns], reference[columns], definition(description, columns), **meta
    )
    return BuiltReport(DATA_SUMMARY, snapshot, (len(current), len(reference)))


_ABOVE_HALF = math.nextafter(0.5, 1.0)

# Per-row errors (prediction - target, Evidently's sign) for the per-segment view. Evidently 0.7.23's
# GroupBy over the legacy-backed regression metrics (RMSE, MAE, MeanError) repeats the overall value
# for every segment, so the segments use native MeanValue metrics over these columns instead.
ERROR, ABS_ERROR = "error", "abs_error"


def with_errors(description: ModelDescription, frame: pd.DataFrame) -> pd.DataFrame:
    """Return labelled rows with their signed and absolute prediction errors in the target's unit."""
    error = frame[description.prediction_column] - frame[description.target_column]
    return frame.assign(**{ERROR: error, ABS_ERROR: error.abs()})


def quality_reportable(description: ModelDescription, labelled: pd.DataFrame, reference: pd.DataFrame) -> bool:
    """Return whether Evidently can build the quality report: a classifier's every class labelled in both datasets.

    Evidently 0.7.23's classification metrics raise a KeyError when a class has no labelled row in the
    current data (a multi-class period with two classes is taken for a binary task, a missing class
    breaks the per-class table): the summary's numbers (prefect_flows.quality) do not need it.
    """
    if not description.is_classification:
        return True
    classes = set(description.class_keys)
    target = description.target_column
    return all(classes <= set(frame[target].dropna().astype(str)) for frame in (labelled, reference))


def build_quality(
    description: ModelDescription, reference: pd.DataFrame, labelled: pd.DataFrame, meta: dict[str, Any]
) -> BuiltReport:
    """Run the task's quality report on the labelled rows: regression overall and per segment, or classification."""
    from evidently.metrics import GroupBy, MeanValue
    from evidently.presets import ClassificationPreset, RegressionPreset

    columns = report_columns(description, reference)
    if description.is_classification:
        current, ref = labelled[columns], reference[columns]
        if len(description.class_keys) > 2:
            # Evidently's multi-class probabilities are columns named by their class.
            renamed = {column: c for c, column in description.probability_columns.items()}
            current, ref = current.rename(columns=renamed), ref.rename(columns=renamed)
            columns = [renamed.get(c, c) for c in columns]
        quality_definition = definition(description, columns)
        # Evidently's binary labels from probabilities are p >= threshold: a tie at 0.5 goes to the positive
        # class, where the served label (scikit-learn's argmax) is the first one. Just above 0.5 they agree.
        threshold = _ABOVE_HALF if len(description.class_keys) == 2 and description.probability_columns else None
        snapshot = _run([ClassificationPreset(probas_threshold=threshold)], current, ref, quality_definition, **meta)
        return BuiltReport(QUALITY, snapshot, (len(current), len(ref)))
    columns = [*columns, ERROR, ABS_ERROR]
    metrics: list = [RegressionPreset()]
    if description.segment is not None:
        metrics += [GroupBy(MeanValue(column=ABS_ERROR), description.segment.name)]
        metrics += [GroupBy(MeanValue(column=ERROR), description.segment.name)]
    current, ref = with_errors(description, labelled)[columns], with_errors(description, reference)[columns]
    quality_definition = definition(description, columns, extra_numerical=(ERROR, ABS_ERROR))
    # A segment the period has and the reference lacks (e.g. new zones) gives GroupBy an empty reference
    # subset, whose "share of infinite values" Evidently 0.7.23 computes as 0/0: one numpy RuntimeWarning
    # ("invalid value encountered in scalar divide") per numerical column and segment, 36 in a demo run.
    # The NaN it yields is what an empty subset should show; only the division warning is silenced, here.
    with np.errstate(invalid="ignore", divide="ignore"):
        snapshot = _run(metrics, current, ref, quality_definition, **meta)
    return BuiltReport(QUALITY, snapshot, (len(current), len(ref)))


def detected(score: float, test: DriftTest) -> bool:
    """Return Evidently's verdict for a score: p-values drift at or below, distances at or above the threshold."""
    if math.isnan(score):
        return False
    return score <= test.threshold if test.is_p_value else score >= test.threshold


def drift_results(
    description: ModelDescription,
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
    tests = dict(tests if tests is not None else description.drift_tests())
    outputs = set(description.output_columns)
    scores = {
        metric["config"]["column"]: float(metric["value"])
        for metric in snapshot.dict()["metrics"]
        if metric["config"].get("type") == _VALUE_DRIFT and metric["config"]["column"] in tests
    }
    # The same multiple-testing family as the online evaluator: features with a p-value test.
    family = {c: s for c, s in scores.items() if c not in outputs and tests[c].is_p_value and not math.isnan(s)}
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
            # A feature's second test (a category's unseen values, a number's histogram) is part of its verdict
            # (the online one, same rows).
            "detected": enough and (detected(score, test) or (outcome is not None and outcome.second_detected)),
            "enough_data": enough,
            "rows": outcome.rows if outcome is not None else None,
            "calibrated_rows": outcome.calibrated_rows if outcome is not None else None,
            "min_rows": outcome.min_rows if outcome is not None else None,
            "unseen_share": outcome.unseen_share if outcome is not None else None,
            "unseen_threshold": outcome.unseen_threshold if outcome is not None else None,
            "bins_distance": outcome.bins_distance if outcome is not None else None,
            "bins_threshold": outcome.bins_threshold if outcome is not None else None,
            "false_alarm_rate": outcome.false_alarm_rate if outcome is not None else None,  # at this size
            "floor": outcome.floor if outcome is not None else None,  # the score that counts as the floor here
        }
    features = [
        c
        for c in tests
        if c not in outputs and columns.get(c, {}).get("score") is not None and columns[c]["enough_data"]
    ]
    drifted = [c for c in features if columns[c]["detected"]]
    share = len(drifted) / len(features) if features else 0.0
    enough_rows = calibrated.enough_data if calibrated is not None else True
    share_rule = enough_rows and bool(features) and share >= dataset_drift_share
    # With calibration the dataset verdict is the online one: Holm over the features' calibrated tail
    # p-values at the dataset rate (one broken feature trips it); the share rule only without calibration.
    holm = calibrated is not None and calibrated.false_alarm_rate is not None
    joint = calibrated.multivariate if calibrated is not None else None
    return {
        "dataset_drift": bool(calibrated.dataset_drift) if holm else share_rule,
        "rule": "holm" if holm else "share",
        "flagged": list(calibrated.flagged) if holm else [],
        "dataset_p_value": calibrated.dataset_p_value if holm else None,
        "share_drift": share_rule,
        "multivariate": (
            {"score": joint.score, "threshold": joint.threshold, "detected": joint.detected}
            if joint is not None and joint.enough_data
            else None
        ),
        "drifted_share": share,
        # Features without a verdict (too few rows for their calibrated test, or a reference too small for any):
        # "no dataset drift" speaks for the others only, and the verdict lines say so.
        "judged_features": features,
        "unjudged_features": [c for c in tests if c not in outputs and c not in features],
        "dataset_drift_share": dataset_drift_share,
        "multiple_testing": multiple_testing,
        "drifted_features": drifted,
        "prediction_drift": columns.get(description.prediction_column, {}).get("detected", False),
        "calibrated": calibrated is not None and calibrated.false_alarm_rate is not None,
        "rows": calibrated.rows if calibrated is not None else None,
        "min_rows": calibrated.min_rows if calibrated is not None else None,
        "false_alarm_rate": calibrated.false_alarm_rate if calibrated is not None else None,
        "dataset_false_alarm_rate": calibrated.dataset_false_alarm_rate if calibrated is not None else None,
        "stated_dataset_rate": calibrated.stated_dataset_rate if calibrated is not None else None,
        "columns": columns,
    }


NO_VERDICT = "no drift verdict"


def drift_state(drift: dict[str, Any]) -> str:
    """Return "DATASET DRIFT", "no dataset drift", or "no drift verdict" when no feature could be judged."""
    if drift["dataset_drift"]:
        return "DATASET DRIFT"
    if drift.get("unjudged_features") and not drift.get("judged_features"):
        return NO_VERDICT
    return "no dataset drift"


def unjudged_text(drift: dict[str, Any], shown: int = 5) -> str:
    """Return e.g. "no verdict for 10 of 12 features (reference too small for their test: age, bmi, ...)" or ""."""
    unjudged = drift.get("unjudged_features") or []  # absent from summaries written before it was added
    if not unjudged:
        return ""
    total = len(unjudged) + len(drift.get("judged_features") or [])
    columns = drift.get("columns") or {}
    # No calibrated size at all: no window ever gets a verdict (the reference is too small); else too few rows now.
    small = [c for c in unjudged if c in columns and columns[c].get("min_rows") is None and drift.get("calibrated")]
    few = [c for c in unjudged if c not in small]
    parts = [
        f"{why}: " + ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
        for why, names in (("reference too small for their test", small), ("too few rows in the period", few))
        if names
    ]
    return f"no verdict for {len(unjudged)} of {total} features ({'; '.join(parts)})"


def quality_results(snapshot: Any) -> dict[str, float]:
    """Read the overall regression metrics (in the target's unit) from a regression quality snapshot."""
    values: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        name = _QUALITY_METRICS.get(metric["config"].get("type"))
        if name is None:
            continue
        value = metric["value"]
        values.setdefault(name, float(value["mean"] if isinstance(value, dict) else value))
    return values


def snapshot_meta(
    model_name: str, period_start: datetime, period_end: datetime, kind: str, task: str = "regression"
) -> dict[str, Any]:
    """Return the run arguments that date and label a snapshot for the Evidently UI."""
    return {
        # The snapshot's time is the period's end, so the UI's time axis follows the periods.
        "timestamp": period_end.replace(tzinfo=None),
        "name": f"{model_name} {title(kind, task).lower()} {period_label(period_start, period_end, '-')}",
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
