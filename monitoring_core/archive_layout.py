"""The prediction archive's layout: where an hour's partition lives, its columns, and reading a period back.

The archive flow (`prefect_flows/archive.py`) writes one Parquet file per model and closed hour; the batch
flow and the benchmarks' generator read and write the same files through this module only:

    <root>/model=<name>/date=YYYY-MM-DD/hour=HH/part-0.parquet      (hive layout, zstd, UTC hours)

`root` is any fsspec URL: a local folder (the default), or `s3://bucket/prefix`, `gs://...`, `abfs://...`
with that store's fsspec package installed (s3fs, gcsfs, adlfs; not a dependency of the stack).

A partition's columns are the logged MongoDB document flattened (docs/contract.md "MongoDB"): `request_id`,
`timestamp`, `model_name`, `model_version`, every feature of the description, the prediction and class
probability columns, `target`, `target_timestamp`, and `extra_fields` as JSON text. A partition is first
written under a dot-prefixed temporary name in its folder (which readers here, pyarrow's dataset discovery
and Spark/DuckDB hive readers all skip) and renamed into place once complete.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.cached import CachingFileSystem
from fsspec.implementations.dirfs import DirFileSystem

from monitoring_core.description import REQUEST_ID, TIMESTAMP, Kind, ModelDescription
from monitoring_core.documents import MODEL_NAME, MODEL_VERSION, TARGET, TARGET_TIMESTAMP, label_time
from monitoring_core.unknown_fields import EXTRA_FIELDS

PART_FILE = "part-0.parquet"
COMPRESSION = "zstd"
HOUR = timedelta(hours=1)
TEMP_PREFIX = "."  # temporary files start with a dot: hidden from every hive reader
_TIME = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[type, pa.DataType] = {float: pa.float64(), int: pa.int64(), str: pa.string(), bool: pa.bool_()}


class CorruptPartition(RuntimeError):
    """A partition that cannot be read as Parquet (cut short, overwritten): the message names it and the remedy."""


def unreadable(path: str, error: Exception) -> CorruptPartition:
    """Return the error for a partition that failed to read."""
    return CorruptPartition(
        f"{path} is not a readable Parquet partition ({error}); run the archive flow for that hour again: "
        "it sets the file aside (kept, hidden from readers) and rewrites the hour from what MongoDB holds"
    )


def set_aside(path: str) -> str:
    """Rename an unreadable partition to `_part-0.parquet.corrupt-<UTC time>` beside it; return its new path.

    The underscore hides it from hive readers (pyarrow, Spark, DuckDB skip `_` and `.` names) and from
    `clear_temps`; the file is kept for whoever wants to recover rows from it.
    """
    folder, _, name = path.rpartition("/")
    aside = f"{folder}/_{name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    fs, local = _fs(path)
    fs.mv(local, _fs(aside)[1])
    return aside


def utc(moment: datetime) -> datetime:
    """Return a datetime as aware UTC (a naive one is taken as UTC already, as MongoDB returns them)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def hour_floor(moment: datetime) -> datetime:
    """Return the start (UTC) of the hour holding `moment`."""
    return utc(moment).replace(minute=0, second=0, microsecond=0)


def hours(start: datetime, end: datetime) -> list[datetime]:
    """Return the starts of the hour partitions that overlap [start, end)."""
    start, end = utc(start), utc(end)
    hour, found = hour_floor(start), []
    while hour < end:
        found.append(hour)
        hour += HOUR
    return found


def model_path(root: str, model: str) -> str:
    """Return the folder of one model's partitions."""
    return f"{str(root).rstrip('/')}/model={model}"


def partition_path(root: str, model: str, hour_start: datetime) -> str:
    """Return the Parquet file of the model's hour that holds `hour_start` (UTC)."""
    hour = hour_floor(hour_start)
    return f"{model_path(root, model)}/date={hour:%Y-%m-%d}/hour={hour:%H}/{PART_FILE}"


def temp_path(path: str) -> str:
    """Return a fresh temporary name beside a partition's file (hidden from readers until renamed)."""
    folder, _, name = path.rpartition("/")
    return f"{folder}/{TEMP_PREFIX}{name}.{uuid.uuid4().hex}.tmp"


def hour_of(path: str) -> datetime:
    """Return the hour (UTC) a partition's path stands for."""
    parts = dict(p.split("=", 1) for p in path.split("/") if "=" in p)
    day = date.fromisoformat(parts["date"])
    return datetime(day.year, day.month, day.day, int(parts["hour"]), tzinfo=UTC)


def arrow_schema(description: ModelDescription) -> pa.Schema:
    """Return the columns and types of the model's partitions (the logged document, flattened)."""
    fields = [
        pa.field(REQUEST_ID, pa.string(), nullable=False),
        pa.field(TIMESTAMP, _TIME, nullable=False),
        pa.field(MODEL_NAME, pa.string()),
        pa.field(MODEL_VERSION, pa.string()),
    ]
    for feature in description.features:
        # Datetime features are logged as ISO text in the feature's local time.
        kind = pa.string() if feature.kind is Kind.DATETIME else _ARROW_TYPES[feature.python_type]
        fields.append(pa.field(feature.name, kind))
    answer = pa.string() if description.is_classification else pa.float64()
    fields.append(pa.field(description.prediction_column, answer))
    fields.extend(pa.field(column, pa.float64()) for column in description.probability_columns.values())
    fields += [pa.field(TARGET, answer), pa.field(TARGET_TIMESTAMP, _TIME), pa.field(EXTRA_FIELDS, pa.string())]
    return pa.schema(fields)


def _cell(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    if kind == _TIME:
        moment = label_time(value) if isinstance(value, str) else value
        return utc(moment) if isinstance(moment, datetime) else None
    if pa.types.is_string(kind):
        return value if isinstance(value, str) else str(value)
    if pa.types.is_floating(kind):
        return float(value)
    if pa.types.is_integer(kind):
        return int(value)
    if pa.types.is_boolean(kind):
        return bool(value)
    return value


def to_table(documents: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Return logged documents as one table of the partition schema (absent keys are nulls; `_id` dropped)."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for document in documents:
        for field in schema:
            value = document.get(field.name)
            if field.name == EXTRA_FIELDS and not isinstance(value, str):  # a string: already JSON (an archived row)
                columns[field.name].append(json.dumps(value, sort_keys=True, default=str) if value else None)
            else:
                columns[field.name].append(_cell(value, field.type))
    return pa.Table.from_pydict(columns, schema=schema)


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem holding an archive URL and the path in it: the store itself, never a layer over it.

    A caching layer (`simplecache::`, `filecache::`, `blockcache::`) is skipped: it keys its copies by path,
    so a partition rewritten in place would be read back as the copy cached before (a rerun would merge
    with a stale partition and drop the labels the last run added). A `dir::` URL names its root by the whole
    URL, so every path under it would resolve twice over (written where no listing finds it): its target
    filesystem is used, at the URL's path.
    """
    fs, path = fsspec.core.url_to_fs(str(url))
    while True:
        if isinstance(fs, DirFileSystem):
            fs, path = fs.fs, fs.path
        elif isinstance(fs, CachingFileSystem):
            fs = fs.fs
        else:
            return fs, path.rstrip("/")


_fs = filesystem


def write_partition(
    root: str,
    model: str,
    hour_start: datetime,
    tables: pa.Table | Iterable[pa.Table],
    verify: Callable[[pq.ParquetFile], None] | None = None,
    schema: pa.Schema | None = None,
) -> str:
    """Write an hour's partition atomically: a temporary file, `verify(file_read_back)`, then a rename.

    `tables`: one table, or an iterable of tables of one schema (`schema`, else the first table's), each
    written as it comes as one row group: the partition is never whole in memory. `verify` (optional) gets
    the temporary file opened as a `pyarrow.parquet.ParquetFile` (read it by batches) and raises to abandon
    it; the temporary file is removed on any failure, and an existing partition is replaced only by a
    complete one. Returns the partition's path (as given under `root`).
    """
    chunks = iter([tables] if isinstance(tables, pa.Table) else tables)
    first = next(chunks, None)
    schema = schema if schema is not None else first.schema if first is not None else None
    if schema is None:
        raise ValueError("write_partition needs a schema to write no table")
    path = partition_path(root, model, hour_start)
    fs, local = _fs(path)
    temp = temp_path(local)
    fs.makedirs(temp.rpartition("/")[0], exist_ok=True)
    try:
        with fs.open(temp, "wb") as out, pq.ParquetWriter(out, schema, compression=COMPRESSION) as writer:
            for table in itertools.chain([] if first is None else [first], chunks):
                writer.write_table(table)
        if verify is not None:
            with fs.open(temp, "rb") as handle:
                verify(pq.ParquetFile(handle))
        fs.mv(temp, local)  # local: os.rename, atomic; object stores: the object appears whole when copied
    finally:
        if fs.exists(temp):
            fs.rm(temp)
    return path


def clear_temps(root: str, model: str, hour_start: datetime) -> int:
    """Remove the temporary files a killed write left beside an hour's partition; return how many.

    Run before writing the hour again: one archive run per model at a time (a concurrent run's temporary
    file would go too, and its rename then fails and is retried).
    """
    fs, local = _fs(partition_path(root, model, hour_start))
    folder, _, name = local.rpartition("/")
    if not fs.isdir(folder):
        return 0
    stale = [p for p in fs.ls(folder, detail=False) if p.rpartition("/")[2].startswith(f"{TEMP_PREFIX}{name}.")]
    for path in stale:
        fs.rm(path)
    return len(stale)


def list_partitions(root: str, model: str, start: datetime, end: datetime) -> list[str]:
    """Return the paths of the model's written partitions whose hour overlaps [start, end), oldest first."""
    fs, base = _fs(model_path(root, model))
    wanted = {(h.date(), h.hour) for h in hours(start, end)}
    found = []
    for day in sorted({d for d, _ in wanted}):
        folder = f"{base}/date={day:%Y-%m-%d}"
        if not fs.isdir(folder):
            continue
        for hour_folder in fs.ls(folder, detail=False):
            name = hour_folder.rstrip("/").rpartition("/")[2]
            if not name.startswith("hour=") or (day, int(name[5:])) not in wanted:
                continue
            if fs.exists(f"{hour_folder.rstrip('/')}/{PART_FILE}"):
                found.append(partition_path(root, model, datetime(day.year, day.month, day.day, int(name[5:]))))
    return sorted(found, key=hour_of)


def read_partition(path: str, columns: list[str] | None = None) -> pa.Table:
    """Return one partition's table (all columns, or those of `columns` it has).

    A column the file lacks (a feature added to the description after the hour was archived) is left out,
    not an error: the caller adds it as nulls (`frame.reindex(columns=...)`).
    """
    fs, local = _fs(path)
    with fs.open(local, "rb") as handle:
        try:
            file = pq.ParquetFile(handle)
            if columns is not None:
                present = set(file.schema_arrow.names)
                columns = [column for column in columns if column in present]
            return file.read(columns=columns)
        except pa.ArrowException as error:
            raise unreadable(path, error) from error


def read_period(
    root: str, model: str, start: datetime, end: datetime, columns: list[str] | None = None
) -> Iterator[pa.Table]:
    """Yield one table per written partition of [start, end), rows outside the bounds dropped, oldest first.

    `columns` selects columns (the timestamp is read for the bounds either way, and dropped again when not
    asked for; a column a partition lacks is left out of its table). Each table fits in memory on its own
    (`.to_pandas()` gives a frame); the period as a whole need not. Hours without a partition are skipped:
    `list_partitions` says which exist.
    """
    start, end = utc(start), utc(end)
    wanted = None if columns is None else list(dict.fromkeys([*columns, TIMESTAMP]))
    for path in list_partitions(root, model, start, end):
        table = read_partition(path, wanted)
        hour = hour_of(path)
        if hour < start or hour + HOUR > end:
            times = table[TIMESTAMP]
            table = table.filter(pc.and_(pc.greater_equal(times, start), pc.less(times, end)))
        if columns is not None and TIMESTAMP not in columns:
            table = table.drop_columns([TIMESTAMP])
        yield table
