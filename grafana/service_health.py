"""Service health: is the prediction service answering, how fast, and is its monitoring keeping up?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, timeseries
from grafana_foundation_sdk.models.common import BigValueTextMode

from grafana.alert_rules import duration_text, for_seconds, percent_text, promql_duration, threshold, window
from grafana.common import (
    MODEL,
    dashed_series,
    model_variable,
    new_dashboard,
    query,
    row,
    stat_panel,
    threshold_line,
    timeseries_panel,
    value_text,
)

UID = "ride-service-health"
# Latency and traffic panels leave out the scrape and probe endpoints.
SERVING = 'endpoint!~".*(metrics|health).*"'
LATENCY = "endpoint_quantile:prediction_http_request_duration_seconds:histogram_quantile"
QUEUES = "queue:prediction_queue_utilisation:ratio"
SPOOL = ":prediction_spool_utilisation:ratio"
ERRORS = "evidently_evaluation_errors_total"


def targets_up() -> stat.Panel:
    """Whether Prometheus can scrape each service."""
    return stat_panel(
        "Services up",
        "1 when Prometheus scraped the service at the last attempt, one value per replica (alerts"
        " PredictionServiceDown, MetricsServiceDown).",
        "none",
        query('up{job=~"prediction_service|evidently_service"}', "{{job}} {{instance}}"),
    ).mappings(value_text({0: ("down", "red"), 1: ("up", "green")}))


def firing_alerts() -> stat.Panel:
    """How many alerts of the stack are firing now."""
    return stat_panel(
        "Firing alerts",
        "Alerts firing now in Prometheus (details in Alertmanager), the always-firing Watchdog left out; 0 is healthy.",
        "none",
        query('count(ALERTS{alertstate="firing", alertname!="Watchdog"}) or on () vector(0)', "firing"),
    )


def model_version_served() -> stat.Panel:
    """The model version the workers serve."""
    return (
        stat_panel(
            "Model version served",
            "The model version loaded by the prediction service workers (prediction_model_info).",
            "none",
            query(f"max by (model_version) (prediction_model_info{{{MODEL}}})", "{{model_version}}"),
        )
        .span(12)
        .text_mode(BigValueTextMode.NAME)
    )  # the version is the series name; the value is always 1


def request_rate() -> timeseries.Panel:
    """Requests per second by endpoint and status."""
    return timeseries_panel(
        "Request rate by endpoint and status",
        "HTTP requests per second answered by the prediction service, split by endpoint and status code.",
        "reqps",
        query(f"endpoint_status:prediction_http_requests:rate5m{{{SERVING}}}", "{{endpoint}} {{status}}"),
    )


def error_ratio() -> timeseries.Panel:
    """Share of requests answered with a server error."""
    return threshold_line(
        timeseries_panel(
            "Server error ratio",
            "Share of requests answered 5xx per endpoint. Client errors (4xx) are bad inputs: see Data quality.",
            "percentunit",
            query(f"endpoint:prediction_http_errors:ratio_rate5m{{{SERVING}}}", "{{endpoint}}"),
        ),
        0.01,
    )


def model_errors() -> timeseries.Panel:
    """Valid rows the model could not answer."""
    seconds = window("ModelAnswersUnusable", "prediction_model_errors_total")
    return timeseries_panel(
        "Unusable model answers",
        f"Valid rows answered 500 in the last {duration_text(seconds)} because the model raised or answered "
        "NaN, infinity, None or a class outside the description (never logged or forwarded); any value fires "
        "ModelAnswersUnusable.",
        "short",
        query(
            f"sum by (reason) (increase(prediction_model_errors_total{{{MODEL}}}[{promql_duration(seconds)}]))",
            "{{reason}}",
        ),
    ).min(0)


def latency_percentiles() -> timeseries.Panel:
    """p50 / p90 / p99 latency per endpoint."""
    latency = threshold("HighPredictionLatency", LATENCY)
    return threshold_line(
        timeseries_panel(
            "Latency percentiles",
            "Server-side request latency per endpoint (p50, p90, p99 over 5 minutes). "
            f"The dashed line is the HighPredictionLatency threshold on p99 ({duration_text(latency)}).",
            "s",
            query(f"{LATENCY}{{{SERVING}}}", "{{endpoint}} p{{quantile}}"),
        ),
        latency,
    )


def predictions_by_version() -> timeseries.Panel:
    """Predictions per second by model version."""
    return timeseries_panel(
        "Predictions by model version",
        "Rows predicted per second by model version (a batch request counts each row). "
        "A flat zero fires NoPredictionTraffic.",
        "ops",
        query(f"model_model_version:prediction_predictions:rate5m{{{MODEL}}}", "{{model_version}}"),
    )


def queue_sizes() -> timeseries.Panel:
    """Records waiting in the in-memory queues and the on-disk spool."""
    return timeseries_panel(
        "Queue and spool sizes",
        "Records waiting in each in-memory queue (mongo, forward, feedback), in the on-disk MongoDB spool, "
        "and labels waiting in the writers for their prediction's document (they overtook it, or name an "
        "unknown id; given up after PREDICTION_LABEL_RETRY_SECONDS).",
        "short",
        query("sum by (queue) (prediction_queue_size)", "queue {{queue}}"),
        query("sum(prediction_spool_records)", "spool", "B"),
        query("sum(prediction_pending_labels)", "labels waiting for their prediction", "C"),
    )


def queue_utilisation() -> timeseries.Panel:
    """How full the queues and the spool are."""
    queues, spool = threshold("MonitoringBacklog", QUEUES), threshold("MonitoringBacklog", SPOOL)
    return (
        threshold_line(
            timeseries_panel(
                "Queue and spool utilisation",
                f"Size over capacity of each queue and of the spool. MonitoringBacklog fires above "
                f"{percent_text(queues)} (queues, dashed) or {percent_text(spool)} (spool) for "
                f"{duration_text(for_seconds('MonitoringBacklog'))}; records are dropped at 100%.",
                "percentunit",
                query(QUEUES, "queue {{queue}}"),
                query(SPOOL, "spool", "B"),
            ),
            queues,
        )
        .min(0)
        .max(1)
    )


def monitoring_throughput() -> timeseries.Panel:
    """Where the prediction records go: MongoDB writes and rows forwarded to the metrics service."""
    return timeseries_panel(
        "Monitoring throughput",
        "Prediction documents written to MongoDB and rows forwarded to the metrics service per second, by result.",
        "ops",
        query("sum(rate(prediction_mongo_written_records_total[5m]))", "written to MongoDB"),
        query("sum by (result) (rate(prediction_forwarded_rows_total[5m]))", "forwarded {{result}}", "B"),
    )


def records_dropped() -> timeseries.Panel:
    """Records lost by the monitoring pipeline."""
    return timeseries_panel(
        "Monitoring records dropped",
        "Records the prediction service dropped in the last hour (full spool, metrics service unreachable); "
        "any value fires MonitoringRecordsDropped. 0 when none were dropped.",
        "short",
        query(
            "sum by (queue, reason) (increase(prediction_records_dropped_total[1h]))"
            " or on () sum(prediction_queue_size) * 0",
            "{{queue}} {{reason}}",
        ),
    )


def metrics_service_evaluation() -> timeseries.Panel:
    """Age and duration of the metrics service's latest evaluation."""
    stale = threshold("MetricsServiceEvaluationStale", "evidently_last_evaluation_timestamp_seconds")
    return dashed_series(
        timeseries_panel(
            "Metrics service evaluation",
            "Seconds since the metrics service last evaluated drift and quality (MetricsServiceEvaluationStale "
            f"fires above {duration_text(stale)}) and how long that evaluation took (dashed).",
            "s",
            query(f"time() - evidently_last_evaluation_timestamp_seconds{{{MODEL}}}", "age"),
            query(f"evidently_evaluation_duration_seconds{{{MODEL}}}", "duration", "B"),
        ),
        "B",
    )


def metrics_service_errors() -> timeseries.Panel:
    """Failed evaluations of the metrics service."""
    # The alert's own window, so the panel shows the number the alert compares with 0.
    seconds = window("MetricsServiceEvaluationFailing", ERRORS)
    return timeseries_panel(
        "Metrics service evaluation errors",
        f"Evaluations of the metrics service that raised in the last {duration_text(seconds)} (the exported "
        "result then stays the last good one); any value fires MetricsServiceEvaluationFailing.",
        "short",
        query(f"increase({ERRORS}{{{MODEL}}}[{promql_duration(seconds)}])", "failed evaluations"),
    ).min(0)


def build() -> dashboard.Dashboard:
    """Return the service health dashboard."""
    return (
        new_dashboard(
            UID,
            "Service health",
            "Is the prediction service up, how fast does it answer, and does its monitoring keep up?",
            ["service"],
        )
        .with_variable(model_variable("prediction_predictions_total"))
        .with_row(row("Overview"))
        .with_panel(targets_up())
        .with_panel(firing_alerts())
        .with_panel(model_version_served())
        .with_row(row("Requests"))
        .with_panel(request_rate())
        .with_panel(error_ratio())
        .with_panel(model_errors())
        .with_panel(latency_percentiles())
        .with_panel(predictions_by_version())
        .with_row(row("Monitoring pipeline"))
        .with_panel(queue_sizes())
        .with_panel(queue_utilisation())
        .with_panel(monitoring_throughput())
        .with_panel(records_dropped())
        .with_panel(metrics_service_evaluation())
        .with_panel(metrics_service_errors())
    )
