"""The archive flow: each closed hour of logged predictions, per model, from MongoDB to one Parquet partition.

`python -m prefect_flows.archive [--start ISO] [--end ISO | --last-hours N] [--model NAME] [--root URL]`
archives every hour overlapping the period (default: the previous full hour) of every model folder of
MODELS_DIR, or one, under ARCHIVE_ROOT in the layout of `monitoring_core.archive_layout`. MongoDB keeps
the recent predictions (the TTL index, docs/archive.md); the archive keeps the history.

Idempotent and safe to kill: an hour's rows (what MongoDB holds, merged with what the partition already
holds, MongoDB's copy winning per request id) stream batch by batch to a temporary file beside the
partition, which is read back and checked against MongoDB (every stored request id present, no row twice)
before it is renamed over the partition. Memory holds a few batches, whatever the hour's size. Nothing is
deleted from MongoDB (its TTL index does that); re-running an hour picks up the labels and the late
predictions that arrived since, and never drops a row archived before.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection

from monitoring_core.archive_layout import (
    HOUR,
    CorruptPartition,
    arrow_schema,
    clear_temps,
    filesystem,
    hours,
    partition_path,
    set_aside,
    to_table,
    unreadable,
    utc,
    write_partition,
)
from monitoring_core.description import REQUEST_ID, TIMESTAMP, ModelDescription
from monitoring_core.documents import MODEL_NAME, TARGET, predictions_collection
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
    # An unreadable partition found there, renamed aside (`archive_layout.set_aside`); the hour was rewritten
    # from MongoDB alone: rows only that file held are not in the new partition (the file is kept).
    set_aside: str | None = None
    # Rows labelled in MongoDB since the partition was written without their label (late labels picked up).
    labelled_since: int = 0


def hour_filter(model: str, hour: datetime) -> dict[str, Any]:
    """Return the query selecting one model's predictions served within the hour."""
    return {MODEL_NAME: model, TIMESTAMP: {"$gte": hour, "$lt": hour + HOUR}}


def _key(row: Mapping[str, Any]) -> tuple[datetime, str]:
    return utc(row[TIMESTAMP]), row[REQUEST_ID]


def read_hour(
    collection: Collection,
    description: ModelDescription,
    hour: datetime,
    batch_size: int,
    columns: Iterable[str] | None = None,
) -> Iterator[dict]:
    """Yield the hour's logged documents (only the partition's fields), ordered by time then id, `batch_size` a batch.

    MongoDB sorts by time (its `timestamp` index: no in-memory sort on a real mongod); documents served in the
    same instant are ordered by id here, so memory holds one cursor batch and one instant's documents.
    `columns`: the fields to read (default: the description's partition schema).
    """
    names = arrow_schema(description).names if columns is None else list(columns)
    fields = fields_projection(names)  # to_table keeps the partition's columns
    cursor = collection.find(hour_filter(description.name, hour), fields, batch_size=batch_size)
    instant: list[dict] = []
    for document in cursor.sort(TIMESTAMP, ASCENDING):
        if instant and document[TIMESTAMP] != instant[0][TIMESTAMP]:
            yield from sorted(instant, key=_key) if len(instant) > 1 else instant
            instant = []
        instant.append(document)
    yield from sorted(instant, key=_key)


class _Unordered(Exception):
    """An archived partition whose rows are not ordered by time then id (not written by this flow)."""


def archived_rows(path: str, schema: pa.Schema, batch_size: int, ordered: bool = True) -> Iterator[dict]:
    """Yield the partition's rows ordered by time then id, in the current schema, `batch_size` rows at a time.

    A column the description no longer has is dropped, a new one is null. `ordered=False` sorts the whole
    partition first (a partition written by another tool); otherwise rows out of order raise `_Unordered`.
    """
    fs, local = filesystem(path)
    with fs.open(local, "rb") as handle:
        try:
            if ordered:
                batches = pq.ParquetFile(handle).iter_batches(batch_size=batch_size)
            else:
                table = pq.read_table(handle).sort_by([(TIMESTAMP, "ascending"), (REQUEST_ID, "ascending")])
                batches = iter(table.to_batches(max_chunksize=batch_size))
            previous = None
            for batch in batches:
                for row in _conformed(batch, schema).to_pylist():
                    key = _key(row)
                    if previous is not None and key < previous:
                        raise _Unordered(path)
                    previous = key
                    yield row
        except pa.ArrowException as error:  # cut short, or a page unreadable: seen only when that batch is read
            raise unreadable(path, error) from error


def _conformed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """Return an archived batch in `schema`: its columns cast, the ones it lacks as nulls, the others dropped."""
    try:
        columns = [
            batch.column(f.name).cast(f.type) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
            for f in schema
        ]
        return pa.Table.from_arrays(columns, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a type the description changed: converted per value
        return to_table(batch.to_pylist(), schema)


ARCHIVED, STORED, LABELLED_SINCE = 0, 1, 2  # where a merged row comes from (see merged_rows)


def merged_rows(archived: Iterable[dict], documents: Iterable[dict]) -> Iterator[tuple[int, dict]]:
    """Yield (origin, row): one row per (time, id), MongoDB's copy over the archived one, ordered by time then id.

    Both inputs are ordered by time then id: a merge, so memory holds one row of each. `origin`: ARCHIVED
    (the partition alone has it), STORED (MongoDB's copy), LABELLED_SINCE (MongoDB's copy, labelled where
    the archived one was not: a label that came after the hour was last archived).
    """
    tagged = heapq.merge(
        ((_key(row), ARCHIVED, row) for row in archived),
        ((_key(row), STORED, row) for row in documents),
        key=lambda t: t[:2],
    )
    pending = None
    for key, origin, row in tagged:
        if pending is not None and pending[0] == key:  # MongoDB's copy comes after the archived one
            if pending[1] == ARCHIVED and pending[2].get(TARGET) is None and row.get(TARGET) is not None:
                origin = LABELLED_SINCE
        elif pending is not None:
            yield pending[1], pending[2]
        pending = (key, origin, row)
    if pending is not None:
        yield pending[1], pending[2]


def id_hashes(ids: Iterable[str]) -> np.ndarray:
    """Return 64-bit hashes of request ids (8 bytes a row: the partition's checks hold them, never the rows)."""
    return pd.util.hash_array(np.asarray(list(ids), dtype=object)).astype(np.uint64)


@dataclass
class _Written:
    rows: int = 0
    from_mongodb: int = 0
    labelled_since: int = 0
    hashes: list[np.ndarray] = field(default_factory=list)


def _chunks(rows: Iterator[tuple[int, dict]], schema: pa.Schema, size: int, written: _Written) -> Iterator[pa.Table]:
    """Yield the rows as tables of `size` rows (at least one table, empty when there is no row: the file's schema)."""
    first = True
    while (chunk := list(itertools.islice(rows, size))) or first:
        first = False
        table = to_table((row for _, row in chunk), schema)
        written.rows += table.num_rows
        written.from_mongodb += sum(origin != ARCHIVED for origin, _ in chunk)
        written.labelled_since += sum(origin == LABELLED_SINCE for origin, _ in chunk)
        written.hashes.append(id_hashes(table[REQUEST_ID].to_pylist()))
        yield table
        # Arrow's allocator (jemalloc) keeps freed batches for reuse: handed back, or a long hour's RSS grows with it.
        pa.default_memory_pool().release_unused()


def _checker(
    collection: Collection, model: str, hour: datetime, written: _Written, batch_size: int
) -> Callable[[pq.ParquetFile], None]:
    def verify(file: pq.ParquetFile) -> None:
        expected = np.sort(np.concatenate([*written.hashes, np.empty(0, np.uint64)]))
        found = [id_hashes(b[REQUEST_ID].to_pylist()) for b in file.iter_batches(batch_size, columns=[REQUEST_ID])]
        ids = np.sort(np.concatenate([*found, np.empty(0, np.uint64)]))
        if len(ids) != len(expected) or not np.array_equal(ids, expected):
            raise PartitionMismatch(f"{model} {hour:%Y-%m-%dT%H}: the file holds {len(ids)} rows, not {len(expected)}")
        if len(np.unique(ids)) != len(ids):  # one id at two times (its timestamp changed since it was archived)
            raise PartitionMismatch(f"{model} {hour:%Y-%m-%dT%H}: {len(ids) - len(np.unique(ids))} ids twice")
        # Checked against MongoDB again after the write: a prediction that arrived meanwhile (a spool replay)
        # would otherwise be missing from the partition until the hour is archived again.
        cursor = collection.find(hour_filter(model, hour), {"_id": 0, REQUEST_ID: 1}, batch_size=batch_size)
        stored = id_hashes(d[REQUEST_ID] for d in cursor)
        missing = np.setdiff1d(stored, ids)
        if len(missing):
            raise PartitionMismatch(f"{model} {hour:%Y-%m-%dT%H}: {len(missing)} stored predictions not in the file")

    return verify


def kept_columns(fs: Any, path: str, schema: pa.Schema) -> pa.Schema:
    """Return the schema with the columns the written partition has and the description no longer names.

    A feature removed from model.yaml since the hour was archived keeps its archived values (MongoDB's
    documents still hold it too): a description's change never deletes history.
    """
    with fs.open(path, "rb") as handle:
        try:
            written = pq.ParquetFile(handle).schema_arrow
        except pa.ArrowException as error:
            raise unreadable(path, error) from error
    return pa.schema([*schema, *(f for f in written if f.name not in schema.names)])


def _set_aside_if_unreadable(fs: Any, local: str, path: str) -> str:
    """Set an unreadable partition aside once a second, whole read fails too; else raise (the task retries).

    A read that failed once may be the store's (a connection dropped mid-read): a good partition set aside
    would lose, from the readable archive, the rows MongoDB no longer holds.
    """
    try:
        with fs.open(local, "rb") as handle:
            for _ in pq.ParquetFile(handle).iter_batches():
                pass
    except pa.ArrowException:
        return set_aside(path)
    raise CorruptPartition(f"{path}: a read failed, a second read did not: left in place (the task retries)")


def archive_hour(
    collection: Collection, description: ModelDescription, root: str, hour: datetime, batch_size: int = 10_000
) -> HourResult:
    """Write (or rewrite) one closed hour's partition of the model, verified before it replaces the old one.

    Streams: MongoDB's documents and the partition already written are merged `batch_size` rows at a time
    into the new file, so memory holds a few batches and 8 bytes per row (the ids' hashes for the checks),
    whatever the hour's size.
    """
    hour = utc(hour)
    name = description.name
    removed = clear_temps(root, name, hour)
    path = partition_path(root, name, hour)
    schema = arrow_schema(description)
    fs, local = filesystem(path)
    exists, aside = fs.exists(local), None
    if exists:
        try:
            schema = kept_columns(fs, local, schema)
        except CorruptPartition:
            exists, aside = False, _set_aside_if_unreadable(fs, local, path)
    if not exists and collection.find_one(hour_filter(name, hour), {"_id": 0, REQUEST_ID: 1}) is None:
        return HourResult(name, hour.isoformat(), "empty", stale_temps_removed=removed, set_aside=aside)
    ordered = True
    while True:
        written = _Written()
        archived = archived_rows(path, schema, batch_size, ordered) if exists else iter(())
        rows = merged_rows(archived, read_hour(collection, description, hour, batch_size, schema.names))
        verify = _checker(collection, name, hour, written, batch_size)
        try:
            write_partition(root, name, hour, _chunks(rows, schema, batch_size, written), verify=verify)
            break
        except _Unordered:  # an archived partition not ordered by time then id: merged again, sorted first
            ordered = False
        except CorruptPartition:  # a page past the footer unreadable: set aside, the hour from MongoDB alone
            if not exists:
                raise
            exists, aside = False, _set_aside_if_unreadable(fs, local, path)
    return HourResult(
        name,
        hour.isoformat(),
        "written",
        path,
        written.rows,
        written.from_mongodb,
        stale_temps_removed=removed,
        set_aside=aside,
        labelled_since=written.labelled_since,
    )


@task(name="archive-hour", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def archive_hour_task(settings: ArchiveSettings, description: ModelDescription, hour: datetime) -> dict:
    """Archive one model's closed hour (a task: retried on MongoDB or storage errors)."""
    with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=10_000, tz_aware=True) as client:
        collection = predictions_collection(client, settings.mongodb_database)
        result = archive_hour(collection, description, settings.archive_root, hour)
    logger = get_run_logger()
    logger.info(
        "%s %s: %s, %d rows (%d labelled since last archived)",
        result.model,
        result.hour,
        result.status,
        result.rows,
        result.labelled_since,
    )
    if result.set_aside:
        logger.warning("%s %s: unreadable partition set aside as %s", result.model, result.hour, result.set_aside)
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
        aside = f" (unreadable partition set aside as {result['set_aside']})" if result.get("set_aside") else ""
        late = f", {result['labelled_since']} labelled since" if result.get("labelled_since") else ""
        print(f"{result['model']} {result['hour']}: {result['status']}, {result['rows']} rows{late}{where}{aside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
