"""Model quality: how good are the predictions where ground truth has arrived?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, table, timeseries

from grafana.alert_rules import percent_text, threshold
from grafana.common import (
    MODEL,
    dashed_series,
    model_variable,
    new_dashboard,
    query,
    row,
    stat_panel,
    table_panel,
    threshold_line,
    timeseries_panel,
)

UID = "ride-model-quality"
# The alert that compares each model's quality with the bounds its description sets (prometheus/rules/alerts.yml).
QUALITY_ALERT = "ModelQualityDegraded"


def coverage_threshold() -> float:
    """The label coverage the quality alert needs."""
    return threshold(QUALITY_ALERT, "evidently_label_coverage")


def quality_now() -> stat.Panel:
    """The latest value of every quality metric of the model's task."""
    return stat_panel(
        "Quality now",
        "The model's quality over the labelled rows of the window, per metric of its task (regression: RMSE, MAE, "
        "mean error, in the target's unit; classification: accuracy, macro precision/recall/F1, log loss, Brier). "
        f"{QUALITY_ALERT} fires past the bounds the model's description sets (`alerts:` in model.yaml).",
        "none",
        query(f"evidently_model_quality{{{MODEL}}}", "{{metric}}"),
    )


def label_coverage_now() -> stat.Panel:
    """The latest label coverage."""
    return stat_panel(
        "Label coverage",
        f"Share of window rows whose ground truth has arrived; quality alerts need at least "
        f"{percent_text(coverage_threshold())}.",
        "percentunit",
        query(f"evidently_label_coverage{{{MODEL}}}", "coverage"),
    )


def labelled_rows_now() -> stat.Panel:
    """Rows with ground truth in the window."""
    return stat_panel(
        "Labelled rows",
        "Window rows with ground truth: the sample the quality metrics are computed on.",
        "short",
        query(f"evidently_labelled_rows{{{MODEL}}}", "labelled rows"),
    )


def feedback_rate() -> stat.Panel:
    """Ground truth labels arriving."""
    return stat_panel(
        "Labels received",
        "Ground-truth labels per second that became their prediction's label in MongoDB (the first per "
        "request id; decided by the prediction service's writer after /feedback answered).",
        "ops",
        query('sum(result:prediction_feedback:rate5m{result="accepted"})', "accepted"),
    )


def quality_over_time() -> timeseries.Panel:
    """Every quality metric over time, with the description's bounds as dashed series."""
    return dashed_series(
        timeseries_panel(
            "Quality and its alert bounds",
            "Quality over the labelled rows of the window, per metric (regression in the target's unit: mean error is "
            "prediction minus truth, below zero the model under-predicts). The dashed series are the bounds of the "
            f"model's description that {QUALITY_ALERT} compares with (max for errors, min for accuracy and F1).",
            "none",
            query(f"evidently_model_quality{{{MODEL}}}", "{{metric}}"),
            query(f"evidently_model_quality_threshold{{{MODEL}}}", "{{metric}} bound ({{bound}})", "B"),
        ),
        "B",
    )


def estimated_vs_realised() -> timeseries.Panel:
    """The quality estimated before labels, its band, and the realised quality."""
    return dashed_series(
        timeseries_panel(
            "Estimated vs realised quality",
            "Quality estimated from every window row's inputs and the model's outputs, before any label (direct "
            "loss estimation for regressors, confidence-based for classifiers; prepared from the reference), its "
            "90% band (dashed), and the realised quality over the labelled rows. Realised outside the band for "
            "long is a concept-drift hint (PerformanceEstimateGap); the estimate past the description's bound "
            "fires PerformanceEstimateDegraded before labels arrive. Estimation cannot see pure concept drift.",
            "none",
            query(f"evidently_estimated_model_quality{{{MODEL}}}", "{{metric}} estimated"),
            query(f"evidently_estimated_model_quality_low{{{MODEL}}}", "{{metric}} band low", "B"),
            query(f"evidently_estimated_model_quality_high{{{MODEL}}}", "{{metric}} band high", "C"),
            query(f"evidently_model_quality{{{MODEL}}}", "{{metric}} realised", "D"),
        ),
        "B",
    )


def class_quality() -> timeseries.Panel:
    """Per-class precision, recall and F1 of a classifier."""
    return timeseries_panel(
        "Per-class precision, recall, F1 (classifiers)",
        "For a classifier: precision, recall and F1 of each class over the labelled rows of the window. A class whose "
        "recall drops while the others hold is a local failure that accuracy hides. Empty for regression models.",
        "percentunit",
        query(f"evidently_class_quality{{{MODEL}}}", "{{class}} {{metric}}"),
    )


def confusion() -> table.Panel:
    """The confusion counts of a classifier."""
    return table_panel(
        "Confusion counts (classifiers)",
        "For a classifier: labelled window rows per actual and predicted class (the diagonal is right). Empty for "
        "regression models.",
        query(f"sum by (actual, predicted) (evidently_confusion_rows{{{MODEL}}})", "{{actual}} -> {{predicted}}"),
    )


def label_coverage() -> timeseries.Panel:
    """Label coverage over time."""
    return (
        threshold_line(
            timeseries_panel(
                "Label coverage",
                f"Share of window rows with ground truth. Below the dashed line ({percent_text(coverage_threshold())}) "
                "quality alerts are held back.",
                "percentunit",
                query(f"evidently_label_coverage{{{MODEL}}}", "coverage"),
            ),
            coverage_threshold(),
            "orange",
        )
        .min(0)
        .max(1)
    )


def label_delay() -> timeseries.Panel:
    """How long ground truth takes to arrive."""
    return timeseries_panel(
        "Label delay",
        "Time between a prediction and its ground truth (median and 90th percentile) over labelled window rows.",
        "s",
        query(f"evidently_label_delay_seconds{{{MODEL}}}", "p{{quantile}}"),
    )


def labels_joined() -> timeseries.Panel:
    """Labels reaching the metrics service, by how they joined the window."""
    return timeseries_panel(
        "Labels at the metrics service",
        "Ground-truth labels per second reaching the metrics service, by result: matched to a window row, "
        "pending (arrived before their row), duplicates, dropped or invalid. Few matched labels mean low coverage.",
        "ops",
        query(
            f"sum by (result) (rate(evidently_labels_received_total{{{MODEL}}}[5m]))",
            "{{result}}",
        ),
    )


def segment_quality() -> timeseries.Panel:
    """Quality per segment."""
    return timeseries_panel(
        "Quality per segment",
        "Each quality metric per segment of the model's segment rule (segments with enough labels): shows whether "
        "one segment drives a degradation.",
        "none",
        query(f"evidently_segment_model_quality{{{MODEL}}}", "{{segment}} {{metric}}"),
    )


def predictions_served() -> timeseries.Panel:
    """Predictions served per second by the prediction service."""
    return timeseries_panel(
        "Predictions served",
        "Predictions per second the prediction service answered for this model, by model version: the traffic the "
        "quality above is a sample of.",
        "ops",
        query(f"sum by (model_version) (rate(prediction_predictions_total{{{MODEL}}}[5m]))", "{{model_version}}"),
    )


def build() -> dashboard.Dashboard:
    """Return the model quality dashboard."""
    return (
        new_dashboard(
            UID,
            "Model quality",
            "How good are the predictions where ground truth has arrived, how much ground truth is there, and "
            "where does the error come from?",
            ["model"],
        )
        .with_variable(model_variable("evidently_window_rows"))
        .with_row(row("Now"))
        .with_panel(quality_now())
        .with_panel(label_coverage_now())
        .with_panel(labelled_rows_now())
        .with_panel(feedback_rate())
        .with_row(row("Over time"))
        .with_panel(quality_over_time())
        .with_panel(estimated_vs_realised())
        .with_panel(label_coverage())
        .with_panel(label_delay())
        .with_panel(predictions_served())
        .with_panel(labels_joined())
        .with_row(row("Classifiers"))
        .with_panel(class_quality())
        .with_panel(confusion())
        .with_row(row("Per segment"))
        .with_panel(segment_quality())
    )
