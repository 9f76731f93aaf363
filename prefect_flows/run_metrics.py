"""Push each batch run's outcome to a Prometheus Pushgateway, the standard way to monitor batch jobs.

A batch run is over before Prometheus could scrape it, so at the end of each run the flow pushes
its timestamps and verdict to the Pushgateway (job `batch_monitoring`, grouped by `model`), which
Prometheus scrapes. The `BatchMonitoringStale` alert fires when the success timestamp stops moving.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, pushadd_to_gateway

from prefect_flows.reports import NO_VERDICT, drift_state

JOB = "batch_monitoring"
PUSH_TIMEOUT_SECONDS = 5.0


def _gauge(registry: CollectorRegistry, name: str, documentation: str, value: float) -> None:
    Gauge(name, documentation, registry=registry).set(value)


def success_registry(summary: dict[str, Any], started: float, finished: float) -> CollectorRegistry:
    """Return the metrics of a run that finished: timestamps, rows, drift verdict and duration."""
    registry = CollectorRegistry()
    _gauge(
        registry,
        "batch_monitoring_last_success_timestamp_seconds",
        "Unix time the last successful run ended.",
        finished,
    )
    _gauge(
        registry,
        "batch_monitoring_last_run_timestamp_seconds",
        "Unix time the last run ended, success or not.",
        finished,
    )
    _gauge(
        registry,
        "batch_monitoring_last_run_rows",
        "Logged predictions in the last successful run's period.",
        summary["rows"]["period"],
    )
    _gauge(
        registry,
        "batch_monitoring_last_run_duration_seconds",
        "Wall time of the last successful run.",
        finished - started,
    )
    drift = summary.get("drift")
    # Absent, not 0, when the period had too few rows for a verdict, or no feature could be judged.
    if drift is not None and drift_state(drift) != NO_VERDICT:
        _gauge(
            registry,
            "batch_monitoring_last_run_dataset_drift",
            "1 when the last successful run found dataset drift, else 0; absent without enough data.",
            1.0 if drift["dataset_drift"] else 0.0,
        )
    return registry


def failure_registry(finished: float) -> CollectorRegistry:
    """Return the metrics of a run that failed: only its timestamps (the last success's stay as they were)."""
    registry = CollectorRegistry()
    _gauge(
        registry,
        "batch_monitoring_last_run_timestamp_seconds",
        "Unix time the last run ended, success or not.",
        finished,
    )
    _gauge(
        registry, "batch_monitoring_last_failure_timestamp_seconds", "Unix time the last failed run ended.", finished
    )
    return registry


def push_run(url: str, model_name: str, registry: CollectorRegistry, *, success: bool) -> None:
    """Push a run's metrics to the Pushgateway at `url`, grouped by model; raise on any error.

    A success replaces the model's whole group (PUT), so a drift verdict of an earlier run never
    lingers and an earlier failure is cleared; a failure only adds its timestamps (POST), keeping
    the last success's metrics that `BatchMonitoringStale` watches.
    """
    push = push_to_gateway if success else pushadd_to_gateway
    push(url, job=JOB, registry=registry, grouping_key={"model": model_name}, timeout=PUSH_TIMEOUT_SECONDS)
