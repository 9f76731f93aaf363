"""The archive layout on an fsspec URL other than a folder (memory://): paths, schema, atomic writes, reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitoring_core.archive_layout import (
    arrow_schema,
    clear_temps,
    hour_of,
    hours,
    list_partitions,
    partition_path,
    read_period,
    to_table,
    write_partition,
)
from monitoring_core.description import parse_description

DESCRIPTION = parse_description(
    {
        "name": "iris",
        "task": "classification",
        "classes": ["setosa", "versicolor"],
        "target": {"name": "species"},
        "prediction": {"probabilities": {"setosa": "p_setosa", "versicolor": "p_versicolor"}},
        "features": [
            {"name": "petal", "kind": "numerical"},
            {"name": "count", "kind": "numerical", "type": "int"},
            {"name": "colour", "kind": "categorical"},
            {"name": "seen", "kind": "datetime"},
        ],
    }
)
HOUR = datetime(2026, 5, 1, 22, tzinfo=UTC)


def _docs(hour: datetime, n: int) -> list[dict]:
    return [
        {
            "request_id": f"{hour:%H}-{i}",
            "timestamp": (hour + timedelta(minutes=10 * i)).replace(tzinfo=None),  # naive UTC, as pymongo gives
            "model_name": "iris",
            "model_version": "v1",
            "petal": 1 + i,  # an int where a float is described
            "count": 2,
            "colour": 3,  # a category sent as a number
            "seen": "2026-05-01T22:00:00",
            "prediction": "setosa",
            "p_setosa": 0.9,
            "p_versicolor": 0.1,
            "extra_fields": {"b": 1, "a": [1, 2]},
            **({"target": "versicolor", "target_timestamp": "2026-05-02 01:00:00.5"} if i == 0 else {}),
        }
        for i in range(n)
    ]


@pytest.fixture
def root() -> str:
    return f"memory://archive-{uuid.uuid4().hex}"


def test_a_partition_is_named_by_model_date_and_utc_hour() -> None:
    path = partition_path("s3://bucket/x/", "iris", datetime(2026, 5, 1, 22, 59, tzinfo=UTC))
    assert path == "s3://bucket/x/model=iris/date=2026-05-01/hour=22/part-0.parquet"
    assert hour_of(path) == HOUR
    names = arrow_schema(DESCRIPTION).names
    assert names[:4] == ["request_id", "timestamp", "model_name", "model_version"]
    assert names[4:] == [
        *("petal", "count", "colour", "seen", "prediction", "p_setosa", "p_versicolor"),
        *("target", "target_timestamp", "extra_fields"),
    ]


def test_written_partitions_read_back_typed_and_bounded(root: str) -> None:
    schema = arrow_schema(DESCRIPTION)
    for hour in (HOUR, HOUR + timedelta(hours=1), HOUR + timedelta(hours=3)):  # across midnight, one hour missing
        write_partition(root, "iris", hour, to_table(_docs(hour, 6), schema))
    listed = list_partitions(root, "iris", HOUR, HOUR + timedelta(hours=4))
    assert [hour_of(p) for p in listed] == [HOUR + timedelta(hours=h) for h in (0, 1, 3)]
    assert "date=2026-05-02/hour=01" in listed[-1]
    tables = list(read_period(root, "iris", HOUR + timedelta(minutes=30), HOUR + timedelta(hours=1, minutes=20)))
    assert [t.num_rows for t in tables] == [3, 2]  # minutes 30, 40, 50; then 0, 10
    row = tables[1].to_pylist()[0]
    assert row["timestamp"] == HOUR + timedelta(hours=1) and row["petal"] == 1.0 and row["colour"] == "3"
    assert row["target"] == "versicolor" and row["target_timestamp"] == datetime(2026, 5, 2, 1, 0, 0, 500000, UTC)
    assert row["extra_fields"] == '{"a": [1, 2], "b": 1}'
    only = next(read_period(root, "iris", HOUR, HOUR + timedelta(hours=1), columns=["request_id"]))
    assert only.column_names == ["request_id"]


def test_a_failed_check_leaves_the_old_partition_and_no_temporary_file(root: str) -> None:
    schema = arrow_schema(DESCRIPTION)
    path = write_partition(root, "iris", HOUR, to_table(_docs(HOUR, 2), schema))

    def refuse(table) -> None:
        raise RuntimeError("mismatch")

    with pytest.raises(RuntimeError, match="mismatch"):
        write_partition(root, "iris", HOUR, to_table(_docs(HOUR, 5), schema), verify=refuse)
    fs, folder = fsspec.core.url_to_fs(path.rpartition("/")[0])
    assert [p.rpartition("/")[2] for p in fs.ls(folder, detail=False)] == ["part-0.parquet"]
    assert next(read_period(root, "iris", HOUR, HOUR + timedelta(hours=1))).num_rows == 2
    fs.pipe(f"{folder}/.part-0.parquet.dead.tmp", b"half")  # what a killed write leaves
    assert clear_temps(root, "iris", HOUR) == 1 and len(fs.ls(folder)) == 1


def test_a_local_period_across_a_dst_change_is_cut_into_its_utc_hours() -> None:
    # Hostile probe: the night summer time ends in Paris has 25 local hours; bounds given with their offsets.
    from zoneinfo import ZoneInfo

    from prefect_flows.period import Period

    paris = ZoneInfo("Europe/Paris")
    start, end = datetime(2026, 10, 25, 0, tzinfo=paris), datetime(2026, 10, 25, 4, tzinfo=paris)  # +02:00, +01:00
    found = hours(start, end)
    assert len(found) == 5 and found[0] == datetime(2026, 10, 24, 22, tzinfo=UTC) and found[-1].hour == 2
    assert len({partition_path("memory://x", "iris", h) for h in found}) == 5  # 02:00-03:00 local twice, two files
    period = Period.resolve("2026-10-25T00:00+02:00", "2026-10-25T04:00+01:00")
    assert hours(period.start, period.end) == found
    spring = hours(datetime(2026, 3, 29, 0, tzinfo=paris), datetime(2026, 3, 29, 4, tzinfo=paris))
    assert len(spring) == 3  # the 23-hour night: 02:00-03:00 local does not exist


def test_a_partition_streams_in_as_row_groups_and_the_check_reads_the_file(root: str) -> None:
    schema = arrow_schema(DESCRIPTION)
    chunks = [to_table(_docs(HOUR + timedelta(minutes=m), 2), schema) for m in (0, 1, 2)]
    seen = []
    path = write_partition(root, "iris", HOUR, iter(chunks), verify=lambda file: seen.append(file.metadata.num_rows))
    fs, local = fsspec.core.url_to_fs(path)
    with fs.open(local, "rb") as handle:
        assert pq.ParquetFile(handle).num_row_groups == 3
    assert seen == [6] and next(read_period(root, "iris", HOUR, HOUR + timedelta(hours=1))).equals(
        pa.concat_tables(chunks)
    )
    write_partition(root, "iris", HOUR, iter([]), schema=schema)  # nothing to write: an empty partition
    assert next(read_period(root, "iris", HOUR, HOUR + timedelta(hours=1))).num_rows == 0
