"""Turn one period's rows into reports and the run summary's verdicts (no I/O: files and databases are elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from monitoring_core.calibration import CalibrationCache, CalibrationSettings
from monitoring_core.description import DriftTest, ModelDescription
from monitoring_core.drift import DriftEvaluator
from monitoring_core.estimation import PerformanceEstimator
from prefect_flows import estimation, quality
from prefect_flows.aggregates import (
    PartitionAggregates,
    classification_quality,
    exact_summary,
    regression_quality,
)
from prefect_flows.columns import MODEL_VERSION, REQUEST_ID, TIMESTAMP
from prefect_flows.io_mongo import Sampling
from prefect_flows.period import Period
from prefect_flows.reports import (
    DATA_SUMMARY,
    DRIFT,
    NO_VERDICT,
    QUALITY,
    BuiltReport,
    build_data_summary,
    build_drift,
    build_quality,
    current_frame,
    drift_results,
    drift_state,
    quality_reportable,
    quality_results,
    reference_frame,
    snapshot_meta,
    unjudged_text,
)

OK, NOT_ENOUGH_DATA = "ok", "not_enough_data"
SEGMENT_MIN_LABELLED_ROWS = 10  # fewer labels make a segment's quality noise


@dataclass(frozen=True)
class Limits:
    """The row counts below which a run gives no verdict, and the drift verdict's settings.

    `min_rows` None: the minimum is the one the drift calibration derives (as online); a value
    can only raise it. `tests` None: the description's pinned tests. `calibration` None: the pinned
    thresholds at every size.
    """

    min_rows: int | None = None
    min_labelled_rows: int = 30
    dataset_drift_share: float = 0.5
    multiple_testing: str = "none"
    tests: dict[str, DriftTest] | None = None
    calibration: CalibrationSettings | None = field(default_factory=CalibrationSettings)
    cache: CalibrationCache | None = None

    def evaluator(self, description: ModelDescription, reference: pd.DataFrame) -> DriftEvaluator:
        """Return the online service's drift evaluator for these settings (same thresholds for the same rows)."""
        return DriftEvaluator(
            description,
            reference,
            self.tests,
            self.dataset_drift_share,
            self.multiple_testing,
            self.calibration,
            self.cache,
        )


@dataclass
class Analysis:
    """A run's reports and its summary (verdicts, counts, notes) without file paths yet."""

    summary: dict[str, Any]
    reports: list[BuiltReport] = field(default_factory=list)


def columns_summary(description: ModelDescription, reference: pd.DataFrame) -> dict[str, Any]:
    """Return what the reports' columns are, for the headers: id, time, target and unit, prediction, segment."""
    from prefect_flows.reports import reference_time_column

    return {
        "id": REQUEST_ID,
        "time": TIMESTAMP if TIMESTAMP in reference.columns else None,
        "reference_time": reference_time_column(description) if TIMESTAMP in reference.columns else None,
        "target": description.target_column,
        "target_unit": description.target.unit,
        "prediction": description.prediction_column,
        "prediction_unit": description.prediction.unit,
        "probabilities": list(description.probability_columns.values()),
        "classes": list(description.class_keys),
        "datetimes": list(description.datetime_features),
        "segment": description.segment.name if description.segment is not None else None,
    }


def base_summary(
    rid: str, description: ModelDescription, period: Period, period_rows: pd.DataFrame, sampling: Sampling
) -> dict:
    """Return the summary fields every run has, whatever its outcome."""
    target = description.target_column
    labelled = int(period_rows[target].notna().sum()) if len(period_rows) else 0
    versions = period_rows[MODEL_VERSION].fillna("unknown").value_counts() if len(period_rows) else pd.Series()
    return {
        "run_id": rid,
        "model_name": description.name,
        "task": description.task.value,
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "generated_at": datetime.now(UTC).isoformat(),
        "rows": {"period": len(period_rows), "analysed": sampling.analysed_rows, "labelled": labelled},
        "label_coverage": labelled / len(period_rows) if len(period_rows) else None,
        "model_versions": {str(k): int(v) for k, v in versions.items()},
        "sampling": sampling.as_dict(),
        "reports": {},
    }


def analyse(
    rid: str,
    description: ModelDescription,
    period: Period,
    reference: pd.DataFrame,
    period_rows: pd.DataFrame,
    analysed_rows: pd.DataFrame,
    sampling: Sampling,
    limits: Limits,
    exact: PartitionAggregates | None = None,
    estimator: PerformanceEstimator | None = None,
    estimation_reason: str | None = estimation.NOT_PREPARED,
) -> Analysis:
    """Build the drift, data-summary and (when labels allow) quality reports, the verdicts and the estimate.

    With `exact` (the Dask path: `period_rows` is then the sample) the counts, label coverage, versions and
    quality metrics are the aggregates' over every row, and the summary gains their `exact` block.
    `estimator` None: the model folder has no prepared performance estimator, and `estimation_reason`
    says why (the summary says it instead of an estimate).
    """
    summary = base_summary(rid, description, period, period_rows, sampling)
    if exact is not None:
        summary["exact"] = exact_summary(description, exact)
        summary["rows"].update(period=exact.rows, labelled=exact.labelled)
        summary.update(
            label_coverage=summary["exact"]["label_coverage"], model_versions=summary["exact"]["model_versions"]
        )
    reference = reference_frame(description, reference)
    summary["columns"] = columns_summary(description, reference)
    evaluator = limits.evaluator(description, reference)
    tests = evaluator.tests
    derived = evaluator.min_rows
    # A reference too small for any drift verdict (derived None) still gives the data summary and the quality
    # from labels, as the metrics service does; the drift part then says no feature has a verdict.
    min_rows = max(derived or 0, limits.min_rows or 0, 1)
    if len(analysed_rows) < min_rows:
        needed = f"at least {min_rows} needed"
        summary.update(
            status=NOT_ENOUGH_DATA,
            message=f"not enough data: {len(analysed_rows)} rows in the period, {needed}",
            min_rows=min_rows,
            drift=None,
            quality={"available": False, "reason": "not enough data"},
            estimation=estimation.unavailable(
                "not enough data" if estimator is not None else (estimation_reason or estimation.NOT_PREPARED)
            ),
        )
        return Analysis(summary)

    current = current_frame(description, analysed_rows)
    if TIMESTAMP not in reference.columns:
        current = current.drop(columns=[TIMESTAMP])  # no time axis when the reference has no time
    # The same evaluator as the metrics service's: the thresholds the report compares with are
    # calibrated for this period's size, so online and batch agree on the same rows.
    online = evaluator.evaluate(current)
    task = description.task.value
    meta = {
        k: snapshot_meta(description.name, period.start, period.end, k, task) for k in (DRIFT, DATA_SUMMARY, QUALITY)
    }
    thresholds = {c: online.columns[c].threshold for c in tests}
    reports = [
        build_drift(description, reference, current, tests, limits.dataset_drift_share, meta[DRIFT], thresholds),
        build_data_summary(description, reference, current, meta[DATA_SUMMARY]),
    ]
    drift = drift_results(
        description, reports[0].snapshot, tests, limits.dataset_drift_share, limits.multiple_testing, online
    )
    summary.update(status=OK, min_rows=min_rows, drift=drift)

    labelled = current[current[description.target_column].notna()]
    if len(labelled) < limits.min_labelled_rows:
        reason = (
            "no ground truth in this period"
            if labelled.empty
            else (f"only {len(labelled)} labelled rows, at least {limits.min_labelled_rows} needed")
        )
        summary["quality"] = {"available": False, "reason": reason}
    else:
        summary["quality"] = _quality(description, reference, labelled, meta[QUALITY], reports)
        if exact is not None:
            summary["quality"].update(_exact_quality(description, exact, len(labelled)))
    summary["estimation"] = estimation.summarise(
        description, estimator, estimation_reason, current, limits.min_labelled_rows, SEGMENT_MIN_LABELLED_ROWS
    )
    summary["message"] = _message(summary, sampling)
    return Analysis(summary, reports)


def _quality(
    description: ModelDescription,
    reference: pd.DataFrame,
    labelled: pd.DataFrame,
    meta: dict[str, Any],
    reports: list[BuiltReport],
) -> dict[str, Any]:
    """Return the quality part of the summary; append the quality report to `reports` when Evidently can build it."""
    values: dict[str, Any] = {"available": True, "labelled_rows": len(labelled)}
    if quality_reportable(description, labelled, reference):
        reports.append(build_quality(description, reference, labelled, meta))
    else:
        values["report_note"] = (
            "no quality report: some classes have no labelled row in this period or the reference "
            "(Evidently 0.7 needs each class); the metrics below are computed without it"
        )
    if description.is_classification:
        values.update(quality.overall(description, labelled))
        values["classes"] = quality.per_class(description, labelled)
    else:
        values.update(quality_results(reports[-1].snapshot))
    values["segments"] = quality.segment_quality(description, labelled, SEGMENT_MIN_LABELLED_ROWS)
    return values


def _exact_quality(description: ModelDescription, exact: PartitionAggregates, sampled: int) -> dict[str, Any]:
    """Return the quality metrics over every labelled row of the period (from the aggregates' sums and counts)."""
    values: dict[str, Any] = {"sample_labelled_rows": sampled, "exact": True}
    if description.is_classification:
        computed = classification_quality(description, exact)
        if computed is not None:
            overall, per_class = computed
            values.update(overall, classes=per_class, labelled_rows=sum(exact.confusion.values()))
    else:
        computed = regression_quality(exact)
        if computed is not None:
            values.update(computed, labelled_rows=int(exact.errors[0]))
    values["segments_note"] = f"segment quality is computed on the sample's {sampled:,} labelled rows"
    return values


def _message(summary: dict[str, Any], sampling: Sampling) -> str:
    drift = summary["drift"]
    parts = [
        f"dataset drift ({len(drift['drifted_features'])} features: {', '.join(drift['drifted_features'])})"
        if drift["dataset_drift"]
        else f"no dataset drift ({drift['drifted_share']:.0%} of features drifted)"
    ]
    if unjudged := unjudged_text(drift):
        parts[0] = unjudged if drift_state(drift) == NO_VERDICT else f"{parts[0]}, {unjudged}"
    quality_part = summary["quality"]
    parts.append(
        quality.headline(summary) if quality_part["available"] else f"quality unavailable: {quality_part['reason']}"
    )
    if not quality_part["available"] and summary["estimation"]["available"]:
        parts.append(estimation.headline(summary))  # before labels: the estimate is the quality news
    if sampling.applied:
        parts.append(f"analysed a seeded sample of {sampling.analysed_rows} of {sampling.period_rows} rows")
    return "; ".join(parts)
