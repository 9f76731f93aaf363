"""The batch monitoring flow: a period's logged predictions of each model -> Evidently reports, history and index.

`python -m prefect_flows.batch_monitoring [--start ISO] [--end ISO | --last-minutes N] [--model NAME]` runs it
once over every model folder of MODELS_DIR, or one (default: the previous full hour); `python -m
prefect_flows.serve` runs it on a schedule. Importing `prefect_flows` first sets Prefect's defaults
(prefect_flows/__init__.py).
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
from monitoring_core.description import ModelDescription
from monitoring_core.estimation import PerformanceEstimator
from monitoring_core.model_folder import ModelFolder, discover_models
from monitoring_core.monitoring_config import DriftSettings, drift_settings
from monitoring_core.prepare import load_prepared
from monitoring_core.reference import read_reference
from prefect_flows import estimation, estimation_page, io_mongo, publish, run_metrics, scale
from prefect_flows.aggregates import SAMPLE_STRATEGY, PartitionAggregates, period_sample
from prefect_flows.analysis import Analysis, Limits, analyse
from prefect_flows.index_page import write_index
from prefect_flows.period import Period
from prefect_flows.settings import BatchSettings

# Frames are large: hashing them for Prefect's cache would cost more than the work.
_TASK = {"cache_policy": NO_CACHE}


class ModelRunsFailed(RuntimeError):
    """Some models' runs failed (the others ran): the flow run fails, naming them."""


@task(name="find-models", **_TASK)
def find_models(settings: BatchSettings) -> dict[str, ModelFolder]:
    """Return the model folders of MODELS_DIR to monitor: every one, or the one `model_name` names."""
    folders = discover_models(settings.models_dir)
    if settings.model_name is not None:
        if settings.model_name not in folders:
            raise LookupError(
                f"no model folder named {settings.model_name!r} in {settings.models_dir} (models: {sorted(folders)})"
            )
        folders = {settings.model_name: folders[settings.model_name]}
    get_run_logger().info("models: %s", ", ".join(f"{n} ({f.description.task.value})" for n, f in folders.items()))
    return folders


@task(name="load-reference", retries=2, retry_delay_seconds=2, **_TASK)
def load_reference(path: Path) -> pd.DataFrame:
    """Read the model folder's reference dataset."""
    if not Path(path).exists():
        raise FileNotFoundError(f"no reference at {path}: train the model (or write its reference.parquet) first")
    reference = read_reference(path)
    get_run_logger().info("reference: %d rows from %s", len(reference), path)
    return reference


@task(name="load-drift-settings", **_TASK)
def load_drift_settings(settings: BatchSettings, folder: ModelFolder) -> DriftSettings:
    """Read the online service's pinned tests and verdict settings for the model."""
    drift = drift_settings(settings.config_path, folder)
    get_run_logger().info("drift tests: %s", {c: (t.method, t.threshold) for c, t in drift.tests.items()})
    return drift


def load_performance_estimator(folder: ModelFolder) -> tuple[PerformanceEstimator | None, str | None]:
    """Read the folder's prepared performance estimator; without one, say why (the run goes on without it).

    A plain function, not a task: Prefect failed to resolve a ModelFolder as a task input here, and the
    read is one small local file.
    """
    estimator, reason = estimation.load(folder)
    if estimator is None:
        get_run_logger().warning("%s: no quality estimate before labels: %s", folder.name, reason)
    return estimator, reason


@task(name="read-period-predictions", retries=3, retry_delay_seconds=5, **_TASK)
def read_period(settings: BatchSettings, description: ModelDescription, period: Period) -> pd.DataFrame:
    """Read the period's predictions (projected fields, batched cursor) with progress in the log."""
    logger = get_run_logger()
    with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True) as client:
        rows = io_mongo.read_predictions(
            client,
            settings.mongodb_database,
            description,
            period,
            batch_size=settings.read_batch_size,
            progress=lambda n: logger.info("read %d rows so far", n),
        )
    logger.info("%d predictions of %s in %s .. %s", len(rows), description.name, period.start, period.end)
    return rows


@task(name="build-reports", **_TASK)
def build_reports(
    rid: str,
    period: Period,
    reference: pd.DataFrame,
    rows: pd.DataFrame,
    settings: BatchSettings,
    drift: DriftSettings,
    prepared: CalibrationCache | None = None,
    exact: PartitionAggregates | None = None,
    estimator: tuple[PerformanceEstimator | None, str | None] = (None, estimation.NOT_PREPARED),
) -> Analysis:
    """Sample above the row limit, then build the Evidently reports, the verdicts and the quality estimate.

    `prepared`: the folder's calibration. With `exact` (the Dask path), `rows` is already the period's sample
    and the counts and quality come from the aggregates over every row; the estimate is the sample's.
    """
    description = drift.description
    seed = io_mongo.sampling_seed(description.name, period)
    if exact is None:
        analysed, sampling = io_mongo.sample_rows(rows, settings.max_rows, seed)
    else:
        applied = exact.rows > len(rows)
        sampling = io_mongo.Sampling(applied, exact.rows, len(rows), settings.max_rows, seed, SAMPLE_STRATEGY)
        analysed = rows
    if sampling.applied:
        get_run_logger().info("sampling %d of %d rows (seed %d)", sampling.analysed_rows, sampling.period_rows, seed)
    # The folder's prepared calibration (`python -m monitoring_core.prepare`) when it is up to date, else the
    # cache beside the reference: a run reuses the thresholds already simulated (a 50-class model's took
    # 20 minutes here to simulate again, under load).
    cache = None
    if drift.calibration:
        cache = prepared or CalibrationCache(cache_path_for(drift.reference_path))
    limits = Limits(
        settings.min_rows,
        settings.min_labelled_rows,
        drift.dataset_drift_share,
        drift.multiple_testing,
        drift.tests,
        drift.calibration,
        cache,
    )
    return analyse(rid, description, period, reference, rows, analysed, sampling, limits, exact, *estimator)


@task(name="write-report-files", retries=1, **_TASK)
def write_report_files(settings: BatchSettings, analysis: Analysis) -> dict[str, dict[str, str]]:
    """Save each report's HTML and JSON under REPORTS_DIR."""
    return publish.write_reports(settings.reports_dir, analysis.summary, analysis.reports)


@task(name="write-estimation-page", retries=1, **_TASK)
def write_estimation_page(settings: BatchSettings, summary: dict[str, Any]) -> str:
    """Save the page of estimated vs realised quality per period and segment; return its path under REPORTS_DIR."""
    return estimation_page.write(settings.reports_dir, summary)


@task(name="open-workspace", retries=2, retry_delay_seconds=2, **_TASK)
def open_workspace(settings: BatchSettings) -> Any:
    """Open the Evidently UI workspace (prefect_flows.workspace.RunWorkspace) to add this run's snapshots to."""
    from prefect_flows.workspace import open_workspace  # imports Evidently (seconds): only when a run needs it

    return open_workspace(settings.workspace)


@task(name="record-workspace-snapshots", retries=2, retry_delay_seconds=2, **_TASK)
def record_snapshots(
    settings: BatchSettings, runs: Any, description: ModelDescription, analysis: Analysis
) -> dict[str, Any]:
    """Add the run's snapshots to the model's project in the Evidently UI workspace."""
    earlier = publish.previous_snapshots(settings.reports_dir, analysis.summary["run_id"])
    return publish.record_snapshots(runs, description, analysis.reports, replaces=earlier)


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
    models_dir: Path | None = None,
    model_name: str | None = None,
    min_rows: int | None = None,
    min_labelled_rows: int | None = None,
    max_rows: int | None = None,
    read_batch_size: int | None = None,
    reports_dir: Path | None = None,
    workspace: Path | None = None,
    drift_config: Path | None = None,
    engine: str | None = None,
    archive_root: str | None = None,
    dask_workers: int | None = None,
) -> dict[str, dict]:
    """Build the drift, data and quality reports of every model (or `model_name`) over one period.

    None takes the env setting. Returns each model's run summary by model name; a model whose run
    fails does not stop the others, and the flow run then fails naming it.
    """
    started = time.time()
    settings = BatchSettings.from_env()
    parameters = {
        "models_dir": models_dir,
        "model_name": model_name,
        "min_rows": min_rows,
        "min_labelled_rows": min_labelled_rows,
        "max_rows": max_rows,
        "read_batch_size": read_batch_size,
        "reports_dir": reports_dir,
        "workspace": workspace,
        "drift_config": drift_config,
        "engine": engine,
        "archive_root": archive_root,
        "dask_workers": dask_workers,
    }
    try:
        settings = settings.with_run_parameters(**parameters)
        get_run_logger().info("parameters: %s", settings.run_parameters())
        period = Period.resolve(start, end)
        folders = find_models(settings)
    except Exception:
        if model_name or settings.model_name:  # a failure before any model ran: push it for the one named
            report_run(settings, model_name or settings.model_name, None, started)
        raise
    summaries: dict[str, dict] = {}
    failed: dict[str, str] = {}
    runs = None
    for name, folder in folders.items():
        started = time.time()
        try:
            if runs is None:  # opened once per flow run, by the first model that needs it
                runs = open_workspace(settings)
            summaries[name] = _run(settings, folder, period, runs)
        except Exception as exc:
            get_run_logger().error("%s: run failed: %s", name, exc)
            failed[name] = f"{type(exc).__name__}: {exc}"
            report_run(settings, name, None, started)
            continue
        report_run(settings, name, summaries[name], started)
    index = str(update_index(settings))
    for summary in summaries.values():
        summary["index"] = index
    if failed:
        raise ModelRunsFailed("; ".join(f"{name}: {reason}" for name, reason in failed.items()))
    return summaries


def _run(settings: BatchSettings, folder: ModelFolder, period: Period, runs: Any) -> dict:
    """Run one model's stages over the period; return its run summary."""
    logger = get_run_logger()
    description = folder.description
    rid = publish.run_id(description.name, period.slug)
    logger.info("batch run %s", rid)

    clock = _Clock()
    slices = scale.plan(settings, description, period) if settings.engine != "frame" else []
    if scale.engine_for(settings, period, slices) == "dask":
        drift = load_drift_settings(settings, folder)
        reference = load_reference(drift.reference_path)
        estimator = load_performance_estimator(folder)
        clock.lap("load")
        archived = sum(s.source == scale.ARCHIVE for s in slices)
        both = sum(s.source == scale.BOTH for s in slices)
        logger.info(
            "Dask: %d hours, %d from the archive, %d from the archive and MongoDB (within the retention), "
            "the others from MongoDB",
            len(slices),
            archived,
            both,
        )
        total = scale.scan(settings, description, period, slices, io_mongo.sampling_seed(description.name, period))
        clock.lap("read")
        prepared = load_prepared(folder) if drift.calibration else None
        sample = period_sample(total)
        analysis = build_reports(rid, period, reference, sample, settings, drift, prepared, total, estimator)
        return _publish(settings, description, period, rid, analysis, runs, clock)
    # The read mostly waits on the database: the local loading runs meanwhile in this thread.
    reading = read_period.submit(settings, description, period)
    drift = load_drift_settings(settings, folder)
    reference = load_reference(drift.reference_path)
    estimator = load_performance_estimator(folder)
    clock.lap("load")
    rows = reading.result()
    clock.lap("read")  # what the read took beyond the overlapped loading
    prepared = load_prepared(folder) if drift.calibration else None
    analysis = build_reports(rid, period, reference, rows, settings, drift, prepared, estimator=estimator)
    return _publish(settings, description, period, rid, analysis, runs, clock)


def _publish(
    settings: BatchSettings,
    description: ModelDescription,
    period: Period,
    rid: str,
    analysis: Analysis,
    runs: Any,
    clock: _Clock,
) -> dict:
    """Write the run's reports, snapshots and summary; return the summary."""
    logger = get_run_logger()
    clock.lap("reports")
    summary = analysis.summary
    if analysis.reports:
        summary["reports"] = write_report_files(settings, analysis)
        summary["workspace"] = record_snapshots(settings, runs, description, analysis)
        summary["estimation"]["html"] = write_estimation_page(settings, summary)
    clock.lap("publish")
    summary["timings_seconds"] = clock.laps  # before storing, so the history shows how long runs take
    store_summary(settings, period, summary)
    clock.lap("store")
    logger.info("%s: %s", rid, summary["message"])
    return summary


def prefect_settings_line() -> str:
    """Return the Prefect settings this process runs with that prefect_flows sets (read back from Prefect)."""
    from prefect.settings import get_current_settings

    current = get_current_settings()
    server = current.server
    api = current.api.url or f"a temporary server (start-up timeout {server.ephemeral.startup_timeout_seconds} s)"
    return f"prefect: API {api}; server analytics {'on' if server.analytics_enabled else 'off'}"


def main(argv: list[str] | None = None) -> int:
    """Run the flow once over the given period and print each model's verdict."""
    parser = argparse.ArgumentParser(description="Run the batch monitoring flow once over one period.")
    parser.add_argument("--start", help="period start, ISO-8601 (UTC if no offset); default: the previous full hour")
    parser.add_argument("--end", help="period end (exclusive), ISO-8601; default: one hour after --start")
    parser.add_argument(
        "--last-minutes",
        type=float,
        metavar="N",
        help="the N minutes up to now instead of --start/--end (run the flow now, e.g. right after traffic)",
    )
    parser.add_argument("--model", help="one model folder's name (default: every model folder of $MODELS_DIR)")
    parser.add_argument(
        "--engine",
        choices=("auto", "frame", "dask"),
        help="frame: one pandas frame; dask: hour by hour on Dask, exact over every row; default $BATCH_ENGINE (auto)",
    )
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
    if args.model:  # a misspelt name: one line now, not a flow run's traceback after the server's start-up
        try:
            names = sorted(discover_models(settings.models_dir))
        except (OSError, ValueError) as exc:  # DescriptionError is a ValueError: the bad file and key
            print(f"prefect_flows.batch_monitoring: {exc}", file=sys.stderr)
            return 2
        if args.model not in names:
            print(
                f"prefect_flows.batch_monitoring: --model {args.model}: no model folder of that name in "
                f"{settings.models_dir} (models: {', '.join(names) or 'none'})",
                file=sys.stderr,
            )
            return 2
    if os.environ.get("PREFECT_HOME"):  # the temporary server dies silently when its home is missing
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    print(prefect_settings_line(), flush=True)
    # Every knob passed explicitly, so the run in the Prefect UI shows the values it used.
    parameters = {**settings.run_parameters(), **({"model_name": args.model} if args.model else {})}
    if args.engine:
        parameters["engine"] = args.engine
    summaries = batch_monitoring(start=period.start, end=period.end, **parameters)
    for summary in summaries.values():
        print(f"{summary['run_id']}: {summary['message']}")
    if summaries:
        print(f"index: {next(iter(summaries.values()))['index']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
