"""The archive flow: each closed hour of logged predictions, per model, from MongoDB to one Parquet partition.

`python -m prefect_flows.archive [--start ISO] [--end ISO | --last-hours N] [--model NAME] [--root URL]`
archives every hour overlapping the period (default: the previous full hour) of every model folder of
MODELS_DIR, or one, under ARCHIVE_ROOT in the layout of `monitoring_core.archive_layout`. MongoDB keeps
the recent predictions (the TTL index, docs/archive.md); the archive keeps the history.

Idempotent and safe to kill: an hour's rows (what MongoDB holds, merged with what the partition already
holds, MongoDB's copy winning per request id) go to a temporary file beside the partition, which is read
back and checked against MongoDB (every stored request id present, no row twice) before it is renamed
over the partition. Nothing is deleted from MongoDB (its TTL index does that); re-running an hour picks
up the labels and the late predictions that arrived since, and never drops a row archived before.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pymongo import MongoClient
from pymongo.collection import Collection

from monitoring_core.archive_layout import (
    HOUR,
    arrow_schema,
    clear_temps,
    hours,
    partition_path,
    read_partition,
    to_table,
    utc,
    write_partition,
)
from monitoring_core.description import REQUEST_ID, TIMESTAMP, ModelDescription
from monitoring_core.documents import MODEL_NAME, predictions_collection
from monitoring_core.model_folder import discover_models
from prefect_flows.io_mongo import fields_projection
from prefect_flows.period import Period
from prefect_flows.settings import ArchiveSettings


class PartitionMismatch(RuntimeError):
    """The written file does not hold exactly the hour's rows: it is not renamed into place (the task retries)."""


@dataclass(frozen=True)
class HourResult:
    """What archiving one model's hour did."""

    model: str
    hour: str
    status: str  # written | empty (nothing stored, no partition) | open (the hour has not ended yet)
    path: str | None = None
    rows: int = 0  # rows in the partition
    from_mongodb: int = 0  # of which MongoDB still holds (the rest were archived before and have expired since)
    stale_temps_removed: int = 0


def hour_filter(model: str, hour: datetime) -> dict[str, Any]:
    """Return the query selecting one model's predictions served within the hour."""
    return {MODEL_NAME: model, TIMESTAMP: {"$gte": hour, "$lt": hour + HOUR}}


def read_hour(collection: Collection, description: ModelDescription, hour: datetime, batch_size: int) -> list[dict]:
    """Return the hour's logged documents, only the partition's fields."""
    fields = fields_projection(arrow_schema(description).names)  # to_table keeps the partition's columns
    return list(collection.find(hour_filter(description.name, hour), fields, batch_size=batch_size))


def merged_rows(archived: pa.Table | None, documents: list[dict]) -> list[dict]:
    """Return one row per request id, MongoDB's copy over the archived one, ordered by time then id."""
    rows = {row[REQUEST_ID]: row for row in (archived.to_pylist() if archived is not None else [])}
    rows.update((document[REQUEST_ID], document) for document in documents)
    return sorted(rows.values(), key=lambda row: (utc(row[TIMESTAMP]), row[REQUEST_ID]))


def _checker(collection: Collection, model: str, hour: datetime, expected: set[str]) -> Callable[[pa.Table], None]:
    def verify(written: pa.Table) -> None:
        ids = written[REQUEST_ID].to_pylist()
        if len(ids) != len(expected) or set(ids) != expected:
            raise PartitionMismatch(f"{model} {hour:%Y-%m-%dT%H}: the file holds {len(ids)} rows, not {len(expected)}")
        # Checked against MongoDB again after the write: a prediction that arrived meanwhile (a spool replay)
        # would otherwise be missing from the partition until the hour is archived again.
        stored = {d[REQUEST_ID] for d in collection.find(hour_filter(model, hour), {"_id": 0, REQUEST_ID: 1})}
        missing = stored - expected
        if missing:
            raise PartitionMismatch(f"{model} {hour:%Y-%m-%dT%H}: {len(missing)} stored predictions not in the file")

    return verify


def archive_hour(
    collection: Collection, description: ModelDescription, root: str, hour: datetime, batch_size: int = 10_000
) -> HourResult:
    """Write (or rewrite) one closed hour's partition of the model, verified before it replaces the old one."""
    hour = utc(hour)
    name = description.name
    removed = clear_temps(root, name, hour)
    documents = read_hour(collection, description, hour, batch_size)
    path = partition_path(root, name, hour)
    try:
        archived = read_partition(path)
    except FileNotFoundError:
        archived = None
    if not documents and archived is None:
        return HourResult(name, hour.isoformat(), "empty", stale_temps_removed=removed)
    rows = merged_rows(archived, documents)
    table = to_table(rows, arrow_schema(description))
    expected = {row[REQUEST_ID] for row in rows}
    write_partition(root, name, hour, table, verify=_checker(collection, name, hour, expected))
    return HourResult(name, hour.isoformat(), "written", path, len(rows), len(documents), removed)


@task(name="archive-hour", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def archive_hour_task(settings: ArchiveSettings, description: ModelDescription, hour: datetime) -> dict:
    """Archive one model's closed hour (a task: retried on MongoDB or storage errors)."""
    with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True) as client:
        collection = predictions_collection(client, settings.mongodb_database)
        result = archive_hour(collection, description, settings.archive_root, hour)
    get_run_logger().info("%s %s: %s, %d rows", result.model, result.hour, result.status, result.rows)
    return asdict(result)


@flow(name="archive-predictions")
def archive_predictions(
    start: datetime | None = None,
    end: datetime | None = None,
    models_dir: Path | None = None,
    model_name: str | None = None,
    archive_root: str | None = None,
    last_hours: int | None = None,
) -> list[dict]:
    """Archive every closed hour overlapping [start, end) of every model (or `model_name`); None takes the env.

    `last_hours` (instead of start/end) takes the N full hours before now: what the scheduled runs use, so
    each run also rewrites the hours whose labels may have arrived since they were first archived.
    """
    settings = ArchiveSettings.from_env()
    changes = {"models_dir": models_dir, "archive_root": archive_root}
    settings = settings.replace(**{k: v for k, v in changes.items() if v is not None})
    period = _last_hours(last_hours) if last_hours is not None else Period.resolve(start, end)
    folders = discover_models(settings.models_dir)
    if model_name is not None:
        if model_name not in folders:
            raise LookupError(
                f"no model folder named {model_name!r} in {settings.models_dir} (models: {sorted(folders)})"
            )
        folders = {model_name: folders[model_name]}
    logger = get_run_logger()
    logger.info("archiving %s to %s: %s", sorted(folders), settings.archive_root, period.slug)
    now = datetime.now(UTC)
    results = []
    for name, folder in folders.items():
        for hour in hours(period.start, period.end):
            if hour + HOUR > now:  # still open: predictions of it are still being served
                results.append(asdict(HourResult(name, hour.isoformat(), "open")))
                continue
            results.append(archive_hour_task(settings, folder.description, hour))
    return results


def _last_hours(count: int) -> Period:
    if count < 1:
        raise ValueError(f"last hours must be >= 1, got {count}")
    end = Period.previous_hour().end
    return Period(end - timedelta(hours=count), end)


def main(argv: list[str] | None = None) -> int:
    """Run the archive flow once and print one line per model and hour."""
    parser = argparse.ArgumentParser(description="Archive closed hours of logged predictions to Parquet.")
    parser.add_argument("--start", help="period start, ISO-8601 (UTC if no offset); default: the previous full hour")
    parser.add_argument("--end", help="period end (exclusive), ISO-8601; default: one hour after --start")
    parser.add_argument("--last-hours", type=int, metavar="N", help="the N full hours before now (catch up)")
    parser.add_argument("--model", help="one model folder's name (default: every model folder of $MODELS_DIR)")
    parser.add_argument("--root", help="the archive's fsspec URL (default: $ARCHIVE_ROOT, else ./archive)")
    args = parser.parse_args(argv)
    if args.last_hours is not None and (args.start or args.end):
        parser.error("give --last-hours or --start/--end, not both")
    try:
        period = _last_hours(args.last_hours) if args.last_hours is not None else Period.resolve(args.start, args.end)
    except ValueError as exc:
        parser.error(str(exc))
    results = archive_predictions(start=period.start, end=period.end, model_name=args.model, archive_root=args.root)
    for result in results:
        where = f" -> {result['path']}" if result["path"] else ""
        print(f"{result['model']} {result['hour']}: {result['status']}, {result['rows']} rows{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
