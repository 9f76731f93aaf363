"""The batch flow's Dask path: a period read hour by hour on a Dask cluster, exact over every row, bounded memory.

A period is cut into its UTC hours. An hour the archive holds (`monitoring_core.archive_layout`, under
ARCHIVE_ROOT) is read from its Parquet partition; any other hour from MongoDB with its own cursor. While
MongoDB may still hold an archived hour (its end is within the model's retention of now), both are read and
merged, one row per request id, MongoDB's copy winning: a label (or a replayed prediction) that reached
MongoDB after the hour was archived counts, and no row counts twice. Each hour
is one Prefect task on Prefect's `DaskTaskRunner` (prefect-dask): it types its rows and returns their exact
aggregates, quantile sketches and bottom-k sample (`prefect_flows.aggregates`), never the rows themselves.
The flow process merges the hours as they finish, so no process ever holds more than one hour plus the
sample. The cluster is a `LocalCluster` of BATCH_DASK_WORKERS processes, or the scheduler at
BATCH_DASK_ADDRESS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from pymongo import MongoClient

from monitoring_core import archive_layout
from monitoring_core.description import ModelDescription
from prefect_flows import io_mongo
from prefect_flows.aggregates import PartitionAggregates, partition_aggregates
from prefect_flows.columns import REQUEST_ID, TIMESTAMP, logged_fields
from prefect_flows.period import Period
from prefect_flows.settings import BatchSettings

ARCHIVE, MONGODB, BOTH = "archive", "mongodb", "archive+mongodb"
# `engine=auto`: a period longer than this goes to Dask even without archive partitions (an hourly run
# stays one frame, a daily one is read hour by hour).
AUTO_DASK_HOURS = 6
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Slice:
    """One hour of a period (clipped to its bounds) and where its rows are read from."""

    start: datetime
    end: datetime
    source: str  # ARCHIVE, MONGODB or BOTH


def plan(
    settings: BatchSettings, description: ModelDescription, period: Period, now: datetime | None = None
) -> list[Slice]:
    """Return the period's hours and where each is read from.

    An hour without a partition: MongoDB. An archived hour: its partition, merged with what MongoDB holds of
    it (BOTH) while MongoDB may still hold it, i.e. until its end is the model's retention before `now`
    (default: the current time); every document of it has expired by then (`expire_at` = time + retention).
    """
    horizon = (now or datetime.now(UTC)) - description.retention
    archived = {
        archive_layout.hour_of(path)
        for path in archive_layout.list_partitions(settings.archive_root, description.name, period.start, period.end)
    }

    def source(hour: datetime) -> str:
        if hour not in archived:
            return MONGODB
        return BOTH if hour + HOUR > horizon else ARCHIVE

    return [
        Slice(max(hour, period.start), min(hour + HOUR, period.end), source(hour))
        for hour in archive_layout.hours(period.start, period.end)
    ]


def engine_for(settings: BatchSettings, period: Period, slices: list[Slice]) -> str:
    """Return the run's engine: the one set, or for `auto` Dask when the archive or the period's length asks."""
    if settings.engine != "auto":
        return settings.engine
    long = period.end - period.start > timedelta(hours=AUTO_DASK_HOURS)
    return "dask" if long or any(s.source != MONGODB for s in slices) else "frame"


def read_slice(
    part: Slice, description: ModelDescription, archive_root: str, mongodb_uri: str, database: str, batch_size: int
) -> pd.DataFrame:
    """Return one hour's rows, typed as `io_mongo.read_predictions` types them (one row per request id)."""
    fields = list(logged_fields(description))
    frames = []
    if part.source in (ARCHIVE, BOTH):
        tables = list(archive_layout.read_period(archive_root, description.name, part.start, part.end, columns=fields))
        frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True) if tables else pd.DataFrame()
        frames.append(io_mongo.logged_frame(description, frame.reindex(columns=fields)))
    if part.source in (MONGODB, BOTH):
        with MongoClient(mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True) as client:
            frames.append(
                io_mongo.read_predictions(client, database, description, Period(part.start, part.end), batch_size)
            )
    if len(frames) == 1:
        return frames[0]
    archived, stored = frames
    # MongoDB's copy wins (the archive flow's own rule): it has the labels that came after the archive run.
    kept = archived[~archived[REQUEST_ID].isin(stored[REQUEST_ID])]
    merged = pd.concat([kept, stored], ignore_index=True) if len(kept) else stored
    return merged.sort_values([TIMESTAMP, REQUEST_ID], ignore_index=True)


@task(name="aggregate-hour", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def aggregate_slice(
    part: Slice,
    description: ModelDescription,
    archive_root: str,
    mongodb_uri: str,
    database: str,
    batch_size: int,
    sample_rows: int,
    seed: int,
) -> PartitionAggregates:
    """Read one hour and return its exact aggregates, sketches and bottom-k sample (on a Dask worker)."""
    frame = read_slice(part, description, archive_root, mongodb_uri, database, batch_size)
    return partition_aggregates(description, frame, sample_rows, seed)


@flow(name="batch-monitoring-scan")
def scan_period(
    slices: list[Slice],
    description: ModelDescription,
    archive_root: str,
    mongodb_uri: str,
    database: str,
    batch_size: int,
    sample_rows: int,
    seed: int,
) -> PartitionAggregates:
    """Aggregate every hour of the period on the Dask cluster and merge them as they finish."""
    logger = get_run_logger()
    futures = [
        aggregate_slice.submit(part, description, archive_root, mongodb_uri, database, batch_size, sample_rows, seed)
        for part in slices
    ]
    total = PartitionAggregates()
    for done, future in enumerate(as_completed(futures), start=1):
        total = total.merge(future.result(), sample_rows)
        # The worker keeps a task's result while a future points at it: release it once merged, so a
        # worker's memory holds the hours it is working on, not every hour it has finished.
        wrapped = getattr(future, "wrapped_future", None)
        if wrapped is not None and hasattr(wrapped, "release"):
            wrapped.release()
        logger.info("%d of %d hours aggregated: %d rows so far", done, len(slices), total.rows)
    return total


def _api_url() -> str | None:
    """Return the Prefect API this process talks to (the temporary server's, when it started one)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return PREFECT_API_URL.value()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    return server.api_url if server.running else None


def task_runner(settings: BatchSettings) -> Any:
    """Return the DaskTaskRunner for the run: the cluster at BATCH_DASK_ADDRESS, or a new LocalCluster."""
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # Each worker is a process (one hour at a time: threads_per_worker=1 bounds its memory). Without the
    # flow's API address a worker's Prefect would start a temporary server of its own (a minute under load).
    url = _api_url()
    cluster = {
        "n_workers": settings.dask_workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
        "env": {"PREFECT_API_URL": url} if url else {},
    }
    return DaskTaskRunner(cluster_kwargs=cluster)


def scan(
    settings: BatchSettings, description: ModelDescription, period: Period, slices: list[Slice], seed: int
) -> PartitionAggregates:
    """Return the period's merged aggregates and sample, computed on the run's Dask cluster."""
    runner = scan_period.with_options(task_runner=task_runner(settings))
    return runner(
        slices,
        description,
        settings.archive_root,
        settings.mongodb_uri,
        settings.mongodb_database,
        settings.read_batch_size,
        settings.max_rows,
        seed,
    )
