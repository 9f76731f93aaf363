"""Model quality: how good are the predictions where ground truth has arrived?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, timeseries

from grafana.alert_rules import percent_text, threshold
from grafana.common import (
    MODEL,
    model_variable,
    new_dashboard,
    query,
    row,
    stat_panel,
    threshold_line,
    timeseries_panel,
)

UID = "ride-model-quality"
# The thresholds ModelQualityDegraded compares with (prometheus/rules/alerts.yml).
QUALITY_ALERT = "ModelQualityDegraded"


def rmse_threshold() -> float:
    """The RMSE (minutes) above which ModelQualityDegraded fires."""
    return threshold(QUALITY_ALERT, 'evidently_model_quality{metric="rmse"}')


def coverage_threshold() -> float:
    """The label coverage the quality alert needs."""
    return threshold(QUALITY_ALERT, "evidently_label_coverage")


def rmse_now() -> stat.Panel:
    """The latest RMSE."""
    return stat_panel(
        "RMSE",
        "Root mean squared error (minutes) over the labelled rows of the window; "
        f"{QUALITY_ALERT} fires above {rmse_threshold():g} minutes.",
        "m",
        query(f'evidently_model_quality{{{MODEL}, metric="rmse"}}', "rmse"),
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
    """RMSE, MAE and mean error over time."""
    return threshold_line(
        timeseries_panel(
            "RMSE, MAE and mean error",
            "Quality over the labelled rows of the window, in minutes. Mean error is prediction minus truth: "
            "below zero the model under-predicts. The dashed line is the RMSE alert threshold.",
            "m",
            query(f"evidently_model_quality{{{MODEL}}}", "{{metric}}"),
        ),
        rmse_threshold(),
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


def segment_rmse() -> timeseries.Panel:
    """RMSE per pickup borough."""
    return timeseries_panel(
        "RMSE per pickup borough",
        "RMSE (minutes) per pickup borough with enough labels: shows whether one borough drives a degradation.",
        "m",
        query(f'evidently_segment_model_quality{{{MODEL}, metric="rmse"}}', "{{segment}}"),
    )


def segment_bias() -> timeseries.Panel:
    """Mean error per pickup borough."""
    return timeseries_panel(
        "Mean error per pickup borough",
        "Mean error (prediction minus truth, minutes) per pickup borough: a borough-local slowdown shows as a "
        "negative bias in that borough only.",
        "m",
        query(f'evidently_segment_model_quality{{{MODEL}, metric="mean_error"}}', "{{segment}}"),
    )


def predicted_duration() -> timeseries.Panel:
    """Distribution of predicted durations."""
    return timeseries_panel(
        "Predicted duration",
        "Median and 90th percentile of the predicted ride duration served: moves with prediction drift, before "
        "any label arrives.",
        "s",
        query(
            f"histogram_quantile(0.5, sum by (le) (rate(prediction_predicted_duration_seconds_bucket{{{MODEL}}}[5m])))",
            "p50",
        ),
        query(
            f"histogram_quantile(0.9, sum by (le) (rate(prediction_predicted_duration_seconds_bucket{{{MODEL}}}[5m])))",
            "p90",
            "B",
        ),
    )


def build() -> dashboard.Dashboard:
    """Return the model quality dashboard."""
    return (
        new_dashboard(
            UID,
            "Ride duration: model quality",
            "How good are the predictions where ground truth has arrived, how much ground truth is there, and "
            "where does the error come from?",
            ["model"],
        )
        .with_variable(model_variable("evidently_window_rows"))
        .with_row(row("Now"))
        .with_panel(rmse_now())
        .with_panel(label_coverage_now())
        .with_panel(labelled_rows_now())
        .with_panel(feedback_rate())
        .with_row(row("Over time"))
        .with_panel(quality_over_time())
        .with_panel(label_coverage())
        .with_panel(label_delay())
        .with_panel(predicted_duration())
        .with_panel(labels_joined())
        .with_row(row("Per segment"))
        .with_panel(segment_rmse())
        .with_panel(segment_bias())
    )
