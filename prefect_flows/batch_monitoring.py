"""The batch monitoring flow: a period's logged predictions -> Evidently reports, history and index.

`python -m prefect_flows.batch_monitoring [--start ISO] [--end ISO | --last-minutes N] [--model NAME]` runs
it once (default: the previous full hour); `python -m prefect_flows.serve` runs it on a schedule.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pymongo import MongoClient

from monitoring_core.calibration import CalibrationCache, cache_path_for
from monitoring_core.monitoring_config import DriftSettings, drift_settings
from prefect_flows import io_mongo, publish, run_metrics
from prefect_flows.analysis import Analysis, Limits, analyse
from prefect_flows.index_page import write_index
from prefect_flows.period import Period
from prefect_flows.settings import BatchSettings

# Frames are large: hashing them for Prefect's cache would cost more than the work.
_TASK = {"cache_policy": NO_CACHE}


@task(name="load-reference", retries=2, retry_delay_seconds=2, **_TASK)
def load_reference(path: Path) -> pd.DataFrame:
    """Read the reference dataset written by training."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no reference at {path}: run `python -m ride_duration.train` first")
    reference = pd.read_parquet(path)
    get_run_logger().info("reference: %d rows from %s", len(reference), path)
    return reference


@task(name="load-drift-settings", **_TASK)
def load_drift_settings(settings: BatchSettings, model_name: str) -> DriftSettings:
    """Read the online service's pinned tests and verdict settings for the model."""
    drift = drift_settings(settings.config_path, model_name, settings.reference_path)
    get_run_logger().info("drift tests: %s", {c: (t.method, t.threshold) for c, t in drift.tests.items()})
    return drift


@task(name="read-period-predictions", retries=3, retry_delay_seconds=5, **_TASK)
def read_period(settings: BatchSettings, model_name: str, period: Period) -> pd.DataFrame:
    """Read the period's predictions (projected fields, batched cursor) with progress in the log."""
    logger = get_run_logger()
    with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True) as client:
        rows = io_mongo.read_predictions(
            client,
            settings.mongodb_database,
            model_name,
            period,
            batch_size=settings.read_batch_size,
            progress=lambda n: logger.info("read %d rows so far", n),
        )
    logger.info("%d predictions of %s in %s .. %s", len(rows), model_name, period.start, period.end)
    return rows


@task(name="build-reports", **_TASK)
def build_reports(
    rid: str,
    model_name: str,
    period: Period,
    reference: pd.DataFrame,
    rows: pd.DataFrame,
    settings: BatchSettings,
    drift: DriftSettings,
) -> Analysis:
    """Sample above the row limit, then build the Evidently reports and the verdicts."""
    seed = io_mongo.sampling_seed(model_name, period)
    analysed, sampling = io_mongo.sample_rows(rows, settings.max_rows, seed)
    if sampling.applied:
        get_run_logger().info("sampling %d of %d rows (seed %d)", sampling.analysed_rows, sampling.period_rows, seed)
    # The metrics service's cache beside the reference: a run reuses the thresholds it already simulated.
    cache = CalibrationCache(cache_path_for(drift.reference_path)) if drift.calibration else None
    limits = Limits(
        settings.min_rows,
        settings.min_labelled_rows,
        drift.dataset_drift_share,
        drift.multiple_testing,
        drift.tests,
        drift.calibration,
        cache,
    )
    return analyse(rid, model_name, period, reference, rows, analysed, sampling, limits)


@task(name="write-report-files", retries=1, **_TASK)
def write_report_files(settings: BatchSettings, analysis: Analysis) -> dict[str, dict[str, str]]:
    """Save each report's HTML and JSON under REPORTS_DIR."""
    return publish.write_reports(settings.reports_dir, analysis.summary, analysis.reports)


@task(name="open-workspace", retries=2, retry_delay_seconds=2, **_TASK)
def open_workspace(settings: BatchSettings) -> Any:
    """Open the Evidently UI workspace (prefect_flows.workspace.RunWorkspace) to add this run's snapshots to."""
    from prefect_flows.workspace import open_workspace  # imports Evidently (seconds): only when a run needs it

    return open_workspace(settings.workspace)


@task(name="record-workspace-snapshots", retries=2, retry_delay_seconds=2, **_TASK)
def record_snapshots(settings: BatchSettings, runs: Any, model_name: str, analysis: Analysis) -> dict[str, Any]:
    """Add the run's snapshots to the Evidently UI workspace."""
    earlier = publish.previous_snapshots(settings.reports_dir, analysis.summary["run_id"])
    return publish.record_snapshots(runs, model_name, analysis.reports, replaces=earlier)


@task(name="store-run-summary", retries=3, retry_delay_seconds=5, **_TASK)
def store_summary(settings: BatchSettings, period: Period, summary: dict[str, Any]) -> None:
    """Write the summary JSON file and the `reports` document in MongoDB."""
    publish.write_summary(settings.reports_dir, summary)
    # BSON datetimes beside the ISO strings, so the history can be queried by time.
    document = {**summary, "period_start": period.start, "period_end": period.end}
    with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=10_000) as client:
        io_mongo.store_summary(client, settings.mongodb_database, document)


@task(name="write-index", retries=1, **_TASK)
def update_index(settings: BatchSettings) -> Path:
    """Regenerate REPORTS_DIR/index.html from every run's summary."""
    return write_index(settings.reports_dir)


@task(name="push-run-metrics", retries=2, retry_delay_seconds=1, **_TASK)
def push_run_metrics(url: str, model_name: str, summary: dict | None, started: float, finished: float) -> None:
    """Push the run's outcome (a summary, or None for a failed run) to the Pushgateway."""
    if summary is None:
        run_metrics.push_run(url, model_name, run_metrics.failure_registry(finished), success=False)
    else:
        run_metrics.push_run(url, model_name, run_metrics.success_registry(summary, started, finished), success=True)


def report_run(settings: BatchSettings, model_name: str, summary: dict | None, started: float) -> None:
    """Push the run's metrics when PUSHGATEWAY_URL is set; a failed push only logs a warning."""
    if not settings.pushgateway_url:
        return
    state = push_run_metrics(settings.pushgateway_url, model_name, summary, started, time.time(), return_state=True)
    if state.is_failed():
        # Monitoring of the monitoring must never fail the run it reports on: the alert on a
        # stale success timestamp catches a Pushgateway that stays unreachable.
        get_run_logger().warning("could not push the run's metrics to %s: %s", settings.pushgateway_url, state.message)


class _Clock:
    """Seconds spent per stage of a run, for the summary and the benchmark."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = round(now - self._last, 4)
        self._last = now


@flow(name="batch-monitoring")
def batch_monitoring(
    start: datetime | None = None,
    end: datetime | None = None,
    model_name: str | None = None,
    min_rows: int | None = None,
    min_labelled_rows: int | None = None,
    max_rows: int | None = None,
    read_batch_size: int | None = None,
    reports_dir: Path | None = None,
    workspace: Path | None = None,
    drift_config: Path | None = None,
    reference_path: Path | None = None,
) -> dict:
    """Build the drift, data and quality reports of one model over one period; None takes the env setting."""
    started = time.time()
    settings = BatchSettings.from_env()
    parameters = {
        "model_name": model_name,
        "min_rows": min_rows,
        "min_labelled_rows": min_labelled_rows,
        "max_rows": max_rows,
        "read_batch_size": read_batch_size,
        "reports_dir": reports_dir,
        "workspace": workspace,
        "drift_config": drift_config,
        "reference_path": reference_path,
    }
    try:
        settings = settings.with_run_parameters(**parameters)
        get_run_logger().info("parameters: %s", settings.run_parameters())
        summary = _run(settings, settings.model_name, start, end)
    except Exception:
        report_run(settings, model_name or settings.model_name, None, started)
        raise
    report_run(settings, settings.model_name, summary, started)
    return summary


def _run(settings: BatchSettings, model_name: str, start: datetime | None, end: datetime | None) -> dict:
    """Run the flow's stages; return the run's summary."""
    logger = get_run_logger()
    period = Period.resolve(start, end)
    rid = publish.run_id(model_name, period.slug)
    logger.info("batch run %s", rid)

    clock = _Clock()
    # The read mostly waits on the database: the local loading runs meanwhile in this thread.
    reading = read_period.submit(settings, model_name, period)
    drift = load_drift_settings(settings, model_name)
    reference = load_reference(drift.reference_path)
    runs = open_workspace(settings)
    clock.lap("load")
    rows = reading.result()
    clock.lap("read")  # what the read took beyond the overlapped loading
    analysis = build_reports(rid, model_name, period, reference, rows, settings, drift)
    clock.lap("reports")
    summary = analysis.summary
    if analysis.reports:
        summary["reports"] = write_report_files(settings, analysis)
        summary["workspace"] = record_snapshots(settings, runs, model_name, analysis)
    clock.lap("publish")
    summary["timings_seconds"] = clock.laps  # before storing, so the history shows how long runs take
    store_summary(settings, period, summary)
    summary["index"] = str(update_index(settings))
    clock.lap("store")
    logger.info("%s: %s", rid, summary["message"])
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the flow once over the given period and print its verdict."""
    parser = argparse.ArgumentParser(description="Run the batch monitoring flow once over one period.")
    parser.add_argument("--start", help="period start, ISO-8601 (UTC if no offset); default: the previous full hour")
    parser.add_argument("--end", help="period end (exclusive), ISO-8601; default: one hour after --start")
    parser.add_argument(
        "--last-minutes",
        type=float,
        metavar="N",
        help="the N minutes up to now instead of --start/--end (run the flow now, e.g. right after traffic)",
    )
    parser.add_argument("--model", help="model name (default: $MODEL_NAME or ride_duration)")
    args = parser.parse_args(argv)
    if args.last_minutes is not None and (args.start or args.end):
        parser.error("give --last-minutes or --start/--end, not both")
    try:
        period = (
            Period.last_minutes(args.last_minutes)
            if args.last_minutes is not None
            else Period.resolve(args.start, args.end)
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        settings = BatchSettings.from_env()
    except ValueError as exc:
        print(f"prefect_flows.batch_monitoring: {exc}", file=sys.stderr)
        return 2
    # No telemetry from a monitoring job; the user's own setting wins.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Without PREFECT_API_URL a temporary server starts first: give a busy machine time for it.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    if os.environ.get("PREFECT_HOME"):  # the temporary server dies silently when its home is missing
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    # Every knob passed explicitly, so the run in the Prefect UI shows the values it used.
    parameters = {**settings.run_parameters(), **({"model_name": args.model} if args.model else {})}
    summary = batch_monitoring(start=period.start, end=period.end, **parameters)
    print(f"{summary['run_id']}: {summary['message']}")
    print(f"index: {summary['index']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
