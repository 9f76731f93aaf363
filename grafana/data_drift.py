"""Data drift: has the input (or the prediction) distribution moved away from the reference?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.models.dashboard import VariableRefresh, VariableSort

from grafana.alert_rules import duration_text, for_seconds, threshold
from grafana.common import (
    DATASOURCE,
    MODEL,
    dashed_series,
    model_variable,
    new_dashboard,
    query,
    row,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
    value_text,
)

UID = "ride-data-drift"
FEATURE = 'feature=~"$feature"'


def dataset_drift_now() -> stat.Panel:
    """The latest dataset-level verdict."""
    return stat_panel(
        "Dataset drift",
        "The latest dataset-level verdict: drift when the share of drifted features reaches the dataset-drift "
        "share. No value while the window holds too few rows (see Window).",
        "none",
        query(f"evidently_dataset_drift{{{MODEL}}}", "dataset drift"),
    ).mappings(value_text({0: ("No drift", "green"), 1: ("Drift", "red")}))


def enough_data() -> stat.Panel:
    """Whether the window holds enough rows for any verdict."""
    return stat_panel(
        "Window state",
        "Whether the sliding window holds the minimum rows for a drift verdict. 'Not enough data' means the "
        "drift panels show no verdict yet, not that there is no drift.",
        "none",
        query(f"model:evidently_window_has_enough_rows:bool{{{MODEL}}}", "window"),
    ).mappings(value_text({0: ("Not enough data", "orange"), 1: ("Enough data", "green")}))


def drifted_share_now() -> stat.Panel:
    """The latest share of drifted features."""
    return stat_panel(
        "Drifted features",
        "Share of monitored features (prediction excluded) whose pinned drift test fires in the latest evaluation.",
        "percentunit",
        query(f"evidently_drifted_features_share{{{MODEL}}}", "drifted share"),
    )


def window_rows_now() -> stat.Panel:
    """Rows in the current window."""
    return stat_panel(
        "Window rows",
        "Rows in the metrics service's current window (the minimum needed for a verdict is on the Window panel).",
        "short",
        query(f"evidently_window_rows{{{MODEL}}}", "rows"),
    )


def last_batch_success() -> stat.Panel:
    """When the batch monitoring flow last succeeded for the model."""
    stale = threshold("BatchMonitoringStale", "batch_monitoring_last_success_timestamp_seconds")
    return stat_panel(
        "Last successful batch run",
        "When the last successful run of the batch monitoring flow (hourly reports) ended, as pushed to the "
        f"Pushgateway. Older than {duration_text(stale)} fires BatchMonitoringStale; no value means no run has "
        "pushed a success since the Pushgateway started.",
        "dateTimeFromNow",
        # Grafana's date units take milliseconds.
        query(f"batch_monitoring_last_success_timestamp_seconds{{{MODEL}}} * 1000", "last success"),
    )


def dataset_drift_over_time() -> statetimeline.Panel:
    """Dataset drift verdict over time."""
    return state_timeline_panel(
        "Dataset drift over time",
        "The dataset-level verdict of every evaluation; gaps are periods with too few rows. "
        f"DataDriftDetected fires after {duration_text(for_seconds('DataDriftDetected'))} of drift.",
        query(f"evidently_dataset_drift{{{MODEL}}}", "dataset drift"),
    ).mappings(value_text({0: ("No drift", "green"), 1: ("Drift", "red")}))


def drifted_share_over_time() -> timeseries.Panel:
    """Share of drifted features over time, overall and per segment."""
    return (
        timeseries_panel(
            "Share of drifted features",
            "Share of monitored features that drifted, for the whole window and per segment of the model's "
            "segment rule (a segment once it holds every feature's minimum rows; its flags table shows features "
            "judged before that).",
            "percentunit",
            query(f"evidently_drifted_features_share{{{MODEL}}}", "all segments"),
            query(f"evidently_segment_drifted_features_share{{{MODEL}}}", "{{segment}}", "B"),
        )
        .min(0)
        .max(1)
    )


def flagged_features() -> statetimeline.Panel:
    """Which features the dataset verdict flags."""
    return state_timeline_panel(
        "Features the dataset verdict flags",
        "Per feature, whether the dataset verdict flags it: calibrated tail p-values with Holm's correction at "
        "the dataset's family-wise rate, and a score at or above the feature's effect-size floor. One flagged "
        f"feature is dataset drift; DataDriftDetected fires after {duration_text(for_seconds('DataDriftDetected'))}.",
        query(f"evidently_dataset_drift_flagged{{{MODEL}}}", "{{feature}}"),
    ).mappings(value_text({0: ("Not flagged", "green"), 1: ("Flagged", "red")}))


def joint_drift() -> timeseries.Panel:
    """The joint (multivariate) drift score and its threshold."""
    return dashed_series(
        timeseries_panel(
            "Joint drift (correlations)",
            "Largest change of a correlation between two features, window vs reference (categories as their "
            "values' shares and per-value means of the numbers): it rises when relations between features change "
            "even where each feature alone looks like the reference. Dashed: the calibrated threshold; "
            f"MultivariateDriftDetected fires after {duration_text(for_seconds('MultivariateDriftDetected'))} "
            "above it.",
            "none",
            query(f"evidently_multivariate_drift_score{{{MODEL}}}", "score"),
            query(f"evidently_multivariate_drift_threshold{{{MODEL}}}", "threshold", "B"),
        ),
        "B",
    )


def segment_flags() -> table.Panel:
    """The (segment, feature) pairs flagged now."""
    return table_panel(
        "Segment x feature flags",
        "Per segment and feature, 1 when the feature drifted within the segment (against the same segment's "
        "reference rows), under one Holm correction over every segment x feature; each feature from its own "
        "minimum of the segment's rows. SegmentDriftDetected fires "
        f"after {duration_text(for_seconds('SegmentDriftDetected'))} of a flag.",
        query(f"max by (segment, feature) (evidently_segment_drift_flagged{{{MODEL}}})", "{{segment}} {{feature}}"),
    )


def feature_drift_score() -> timeseries.Panel:
    """Per-feature drift score with its threshold, one panel per feature."""
    return (
        dashed_series(
            timeseries_panel(
                "Drift score: $feature",
                "Score of the pinned stat test of this feature (normed Wasserstein distance for numbers, "
                "total variation distance for categories: the share of rows whose category moved) and the "
                "threshold it is compared with now (dashed): drift at or above the line. The threshold is "
                "calibrated from the reference for the window's size (sampling noise shrinks as rows grow), "
                "so it falls while the window fills and never goes below the pinned effect-size floor (for a "
                "number, the score a shift of the floor's size reaches in 95% of windows of this size: a "
                "little under the floor). A categorical feature also drifts when the share of its values the "
                "reference never saw reaches its own calibrated threshold (second pair of lines, also a share "
                "of rows; none for numbers). A numerical feature also drifts when its histogram over the "
                "reference's quantile bins (Jensen-Shannon distance) reaches its calibrated threshold while "
                "the score is at or above its floor (third pair: it sees whole atoms such as round values or "
                "zeros move; none for categories). No line while the feature has too few rows for a verdict.",
                "none",
                query(f"evidently_feature_drift_score{{{MODEL}, {FEATURE}}}", "{{feature}} ({{stattest}})"),
                query(f"evidently_feature_drift_threshold{{{MODEL}, {FEATURE}}}", "threshold", "B"),
                query(f"evidently_feature_drift_unseen_share{{{MODEL}, {FEATURE}}}", "unseen share", "C"),
                query(f"evidently_feature_drift_unseen_threshold{{{MODEL}, {FEATURE}}}", "unseen threshold", "D"),
                query(f"evidently_feature_drift_histogram_distance{{{MODEL}, {FEATURE}}}", "histogram", "E"),
                query(
                    f"evidently_feature_drift_histogram_threshold{{{MODEL}, {FEATURE}}}",
                    "histogram threshold",
                    "F",
                ),
            ),
            "B",
            "D",
            "F",
        )
        .repeat("feature")
        .repeat_direction("h")
        .span(8)
        .min(0)
    )


def feature_drift_detected() -> statetimeline.Panel:
    """Drift verdict of every feature over time."""
    return state_timeline_panel(
        "Drift detected per feature",
        "The 0/1 verdict of each feature's drift test over time. FeatureDriftDetected fires after "
        f"{duration_text(for_seconds('FeatureDriftDetected'))}.",
        query(f"evidently_feature_drift_detected{{{MODEL}}}", "{{feature}}"),
    ).mappings(value_text({0: ("ok", "green"), 1: ("drift", "red")}))


def window_rows() -> timeseries.Panel:
    """Rows in the window against the minimum for a verdict."""
    return dashed_series(
        timeseries_panel(
            "Window",
            "Rows in the current window and the minimum (dashed) below which no drift or quality verdict is exported.",
            "short",
            query(f"evidently_window_rows{{{MODEL}}}", "rows in window"),
            query(f"evidently_window_min_rows{{{MODEL}}}", "minimum rows", "B"),
        ),
        "B",
    )


def false_alarm_rate_now() -> stat.Panel:
    """The false-alarm rates the thresholds are calibrated for."""
    return stat_panel(
        "False-alarm rate",
        "Per-evaluation false-alarm rate on clean data the drift thresholds are calibrated for: per feature "
        "verdict, and the bound on the dataset verdict. At one evaluation every few seconds, 0.5% is one "
        "flagged evaluation in 200; the alerts' `for:` asks for minutes of consecutive verdicts (see the runbook). "
        "'at this size': the rate the verdicts hold at the window's current size, lower once the effect-size "
        "floors bind (large windows; there an upper bound).",
        "percentunit",
        query(f"evidently_drift_false_alarm_rate{{{MODEL}}}", "{{scope}} configured"),
        query(f"evidently_dataset_drift_false_alarm_rate{{{MODEL}}}", "dataset at this size", "B"),
        query(f"max(evidently_feature_drift_false_alarm_rate{{{MODEL}}})", "feature at this size (largest)", "C"),
    )


def calibration() -> timeseries.Panel:
    """The size each feature's threshold was calibrated for, and the rows it needs for a verdict."""
    return dashed_series(
        timeseries_panel(
            "Threshold calibration",
            "The size bucket (rows) each feature's threshold was calibrated for, and (dashed) the usable values "
            "it needs for a verdict: derived from the reference as the size at which a shift of 2.5 times the floor "
            "is caught at least half the time. Below it the feature reports 'not enough data'.",
            "short",
            query(f"evidently_drift_calibrated_rows{{{MODEL}, {FEATURE}}}", "{{feature}} calibrated for"),
            query(f"evidently_feature_drift_min_rows{{{MODEL}, {FEATURE}}}", "{{feature}} minimum", "B"),
        ),
        "B",
    )


def reference_info() -> table.Panel:
    """Which reference dataset the drift is measured against."""
    return table_panel(
        "Reference",
        "The reference dataset the drift tests compare with: content hash, the model version it was built "
        "with, and its size.",
        query(f"evidently_reference_info{{{MODEL}}}", "reference"),
        query(f"evidently_reference_rows{{{MODEL}}}", "rows", "B"),
    )


def feature_variable() -> dashboard.QueryVariable:
    """The `feature` variable: every monitored column of the model, prediction included."""
    return (
        dashboard.QueryVariable("feature")
        .label("Feature")
        .description("The monitored features (and the prediction) to show a drift score panel for.")
        .datasource(DATASOURCE)
        .query(f"label_values(evidently_feature_drift_score{{{MODEL}}}, feature)")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
    )


def build() -> dashboard.Dashboard:
    """Return the data drift dashboard."""
    return (
        new_dashboard(
            UID,
            "Data drift",
            "Has the distribution of the inputs (or of the predictions) moved away from the reference, and which "
            "features moved?",
            ["drift"],
        )
        .with_variable(model_variable("evidently_window_rows"))
        .with_variable(feature_variable())
        .with_row(row("Now"))
        .with_panel(dataset_drift_now())
        .with_panel(enough_data())
        .with_panel(drifted_share_now())
        .with_panel(window_rows_now())
        .with_panel(last_batch_success())
        .with_panel(false_alarm_rate_now())
        .with_row(row("Over time"))
        .with_panel(dataset_drift_over_time())
        .with_panel(drifted_share_over_time())
        .with_panel(feature_drift_detected())
        .with_panel(flagged_features())
        .with_panel(joint_drift())
        .with_panel(window_rows())
        .with_row(row("Per feature"))
        .with_panel(feature_drift_score())
        .with_panel(calibration())
        .with_row(row("Per segment"))
        .with_panel(segment_flags())
        .with_row(row("Reference"))
        .with_panel(reference_info())
    )
