"""The hot store's TTL index and the archive flow against nx-27017: read back equal, re-runs, a kill halfway.

One nx-27017 and one set of logged predictions per module (a scikit-learn classifier and the taxi example,
three closed hours each); every test archives to its own root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from batch_sklearn_models import wine_classifier
from pymongo import MongoClient

from local_stack.components import start_mongo
from local_stack.logged_predictions import insert_documents, logged_documents
from local_stack.processes import wait_until
from monitoring_core import archive_layout
from monitoring_core.archive_layout import arrow_schema, list_partitions, partition_path, read_period, to_table
from monitoring_core.description import parse_description
from monitoring_core.documents import (
    EXPIRE_AT,
    INDEXES,
    ensure_indexes,
    missing_indexes,
    prediction_document,
    predictions_collection,
)
from monitoring_core.model_folder import discover_models
from prefect_flows.period import Period

pytestmark = pytest.mark.integration

DB = "archive_test"
START = datetime(2026, 3, 1, 10, tzinfo=UTC)
END = START + timedelta(hours=3)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, taxi_models_dir, reference, prefect_env):
    """nx-27017 holding three hours of two models' logged predictions (some labelled, some with extra fields)."""
    work = tmp_path_factory.mktemp("archive")
    models = work / "models"  # its own MODELS_DIR: the session's holds the taxi folder alone for other modules
    shutil.copytree(taxi_models_dir, models)
    wine = wine_classifier(models)
    folders = discover_models(models)
    taxi = folders["ride_duration"].description
    docs = logged_documents(wine.folder.description, wine.held_out, START, END, label_share=0.6, seed=1, id_prefix="w")
    docs += logged_documents(taxi, reference.head(150), START, END, label_share=0.5, seed=2, id_prefix="t")
    for doc in docs[::7]:
        doc["extra_fields"] = {"store_and_fwd_flag": "N", "fare": 7.5}
    proc, uri = start_mongo(work / "mongo")
    insert_documents(uri, DB, docs)
    env = {"MONGODB_URI": uri, "MONGODB_DATABASE": DB, "MODELS_DIR": str(models), "ARCHIVE_ROOT": str(work / "x")}
    try:
        with pytest.MonkeyPatch.context() as patch, MongoClient(uri, tz_aware=True) as client:
            for key, value in env.items():
                patch.setenv(key, value)
            from prefect_flows.archive import archive_predictions

            yield {
                "work": work,
                "uri": uri,
                "env": env,
                "folders": folders,
                "collection": predictions_collection(client, DB),
                "flow": archive_predictions,
            }
    finally:
        proc.stop()


def _stored(stack, name: str) -> pa.Table:
    """Return MongoDB's documents of a model in the partition schema, ordered as partitions are."""
    description = stack["folders"][name].description
    fields = {"_id": 0, **dict.fromkeys(arrow_schema(description).names, 1)}
    docs = list(stack["collection"].find({"model_name": name}, fields))
    docs.sort(key=lambda d: (d["timestamp"], d["request_id"]))
    return to_table(docs, arrow_schema(description))


def _archived(root: Path, name: str) -> pa.Table:
    return pa.concat_tables(read_period(str(root), name, START, END))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_the_services_ensure_indexes_creates_the_ttl_index_and_nx_27017_expires(stack) -> None:
    collection = stack["collection"].database["ttl_check"]
    collection.create_index("request_id", unique=True)
    assert "expire_at_ttl" in missing_indexes(collection)
    ensure_indexes(collection)  # what the prediction service's writer runs (prediction_service/mongo_sink.py)
    assert missing_indexes(collection) == []
    ttl = [i for i in collection.index_information().values() if dict(i["key"]) == {EXPIRE_AT: 1}]
    assert len(ttl) == 1 and ttl[0]["expireAfterSeconds"] == 0
    assert ([(EXPIRE_AT, 1)], {"expireAfterSeconds": 0, "name": "expire_at_ttl"}) in INDEXES

    description = parse_description(
        {**stack["folders"]["wine"].description.model_dump(mode="json", exclude_defaults=True), "retention_days": 2}
    )
    assert description.retention == timedelta(days=2)
    assert stack["folders"]["wine"].description.retention == timedelta(days=7)  # the default
    now = datetime.now(UTC)
    fresh = prediction_document("fresh", now, "wine", "v1", {}, {"prediction": "1"}, retention=description.retention)
    assert fresh[EXPIRE_AT] == now + timedelta(days=2)
    expired = prediction_document("old", now - timedelta(days=3), "wine", "v1", {}, {}, retention=description.retention)
    unlimited = prediction_document("seeded", now - timedelta(days=30), "wine", "v1", {}, {})  # no retention given
    collection.insert_many([fresh, expired, unlimited])
    # nx-27017 honours TTL indexes: it purges expired documents on the next operation (mongod: within a minute).
    assert sorted(d["request_id"] for d in collection.find({}, {"_id": 0})) == ["fresh", "seeded"]


def test_archived_hours_read_back_equal_to_mongodb_and_a_rerun_rewrites_them(stack) -> None:
    root = stack["work"] / "equal"
    results = stack["flow"](START, END, archive_root=str(root))
    assert {(r["model"], r["status"]) for r in results} == {("wine", "written"), ("ride_duration", "written")}
    assert len(results) == 6
    for name in ("wine", "ride_duration"):
        paths = list_partitions(str(root), name, START, END)
        assert paths == [partition_path(str(root), name, START + timedelta(hours=h)) for h in range(3)]
        assert f"/model={name}/date=2026-03-01/hour=10/part-0.parquet" in paths[0]
        archived, stored = _archived(root, name), _stored(stack, name)
        assert archived.schema.equals(arrow_schema(stack["folders"][name].description))
        assert archived.equals(stored)
        assert pq_compression(paths[0]) == "ZSTD"
    wine = _archived(root, "wine").to_pandas()
    assert wine["target"].notna().any() and wine["proba_0"].between(0, 1).all()
    assert wine["extra_fields"].dropna().iloc[0] == '{"fare": 7.5, "store_and_fwd_flag": "N"}'

    # A label arrives late; one prediction already expired from MongoDB (the TTL): a rerun keeps both right.
    collection = stack["collection"]
    unlabelled = collection.find_one({"model_name": "wine", "target": {"$exists": False}}, {"_id": 0})
    collection.update_one({"request_id": unlabelled["request_id"]}, {"$set": {"target": "2"}})
    gone = collection.find_one({"model_name": "wine", "request_id": {"$ne": unlabelled["request_id"]}}, {"_id": 0})
    collection.delete_one({"request_id": gone["request_id"]})
    before = _archived(root, "ride_duration")
    stack["flow"](START, END, archive_root=str(root))
    after = _archived(root, "wine").to_pandas().set_index("request_id")
    assert after.index.is_unique and len(after) == len(wine)
    assert after.loc[unlabelled["request_id"], "target"] == "2"
    assert gone["request_id"] in after.index  # archived before it expired: kept
    assert _archived(root, "ride_duration").equals(before)  # an unchanged hour is rewritten identically
    assert not [f for f in _files(root) if ".tmp" in f]


def pq_compression(path: str) -> str:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.row_group(0).column(0).compression


# A subprocess archives the three hours as the flow's tasks do (`archive_hour`, without Prefect's temporary
# server: its start-up would dominate the test), stops for good after the second hour's temporary file is
# written and checked (before its rename), and says so in a marker file: the test then SIGKILLs it there.
STOP_AFTER_SECOND_TEMP = """
import sys, time
from datetime import datetime, timedelta
from pathlib import Path
from pymongo import MongoClient
import prefect_flows.archive as archive
from monitoring_core.model_folder import load_model_folder

marker, uri, database, folder, root, start = sys.argv[1:]
real, calls = archive.write_partition, []

def write_partition(root, model, hour, table, verify=None):
    def stop(written):
        verify(written)
        calls.append(hour)
        if len(calls) == 2:
            Path(marker).write_text(hour.isoformat())
            time.sleep(600)
    return real(root, model, hour, table, verify=stop)

archive.write_partition = write_partition
description = load_model_folder(folder).description
with MongoClient(uri, tz_aware=True) as client:
    for h in range(3):
        hour = datetime.fromisoformat(start) + timedelta(hours=h)
        archive.archive_hour(client[database]["predictions"], description, root, hour)
"""


def test_a_run_killed_halfway_loses_nothing_and_duplicates_nothing_when_rerun(stack, capsys) -> None:
    from prefect_flows.archive import main

    root = stack["work"] / "killed"
    marker = stack["work"] / "second-temp-written"
    folder = stack["folders"]["wine"].path
    args = [str(marker), stack["uri"], DB, str(folder), str(root), START.isoformat()]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", STOP_AFTER_SECOND_TEMP, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: marker.exists() or proc.poll() is not None, timeout=60, what="the second hour's temp file")
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    second = START + timedelta(hours=1)
    temps = [f for f in _files(root) if ".tmp" in f]
    assert len(temps) == 1 and "hour=11/.part-0.parquet." in temps[0]  # the killed write, hidden
    # Readers see the first hour only, whole: neither this module's reader nor pyarrow's hive discovery sees the temp.
    assert list_partitions(str(root), "wine", START, END) == [partition_path(str(root), "wine", START)]
    first = _archived(root, "wine")
    assert first.equals(_stored(stack, "wine").filter(pc.less(pc.field("timestamp"), second)))
    assert ds.dataset(root, format="parquet", partitioning="hive").count_rows() == first.num_rows

    # The rerun: the command as an operator types it (in this process: its Prefect server is up already).
    argv = ["--start", START.isoformat(), "--end", END.isoformat(), "--model", "wine", "--root", str(root)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count(": written, ") == 3 and "hour=12/part-0.parquet" in printed
    archived = _archived(root, "wine")
    assert archived.equals(_stored(stack, "wine"))
    assert len(set(archived["request_id"].to_pylist())) == archived.num_rows
    assert not [f for f in _files(root) if ".tmp" in f]
    assert ds.dataset(root, format="parquet", partitioning="hive").count_rows() == archived.num_rows


def test_an_hour_not_yet_over_is_not_archived(stack) -> None:
    now = datetime.now(UTC)
    results = stack["flow"](now - timedelta(minutes=1), now + timedelta(minutes=1), archive_root=str(stack["work"]))
    assert {r["status"] for r in results} == {"open"} or {r["status"] for r in results} == {"open", "empty"}
    assert archive_layout.hours(now, now + timedelta(seconds=1)) == [archive_layout.hour_floor(now)]


@pytest.mark.parametrize(
    "protocol",
    ["memory://", "file://", "dir::memory://", "dir::file://", "simplecache::memory://", "filecache::file://"],
)
def test_an_fsspec_url_root_archives_rewrites_and_reads_back_what_mongodb_holds(stack, protocol, tmp_path) -> None:
    # Hostile probe: only local folders were tested. `dir::` wrote every partition where no listing found it
    # (its root is the whole URL: each path resolved twice over), and a caching layer read a rewritten partition
    # back as the copy it cached before: a rerun merged with it and dropped the label the last run had added.
    from prefect_flows.archive import archive_hour
    from prefect_flows.scale import ARCHIVE, plan, read_slice
    from prefect_flows.settings import BatchSettings

    collection = stack["collection"].database[f"fsspec_{abs(hash(protocol))}"]
    collection.insert_many(list(stack["collection"].find({"model_name": "wine"}, {"_id": 0})))
    description = stack["folders"]["wine"].description
    root = f"{protocol}{tmp_path}/a" if "file://" in protocol else f"{protocol}archive-{tmp_path.name}"
    hours = [START + timedelta(hours=h) for h in range(3)]
    for hour in hours:
        assert archive_hour(collection, description, root, hour, batch_size=7).status == "written"
    assert list_partitions(root, "wine", START, END) == [partition_path(root, "wine", h) for h in hours]

    def stored() -> pa.Table:
        docs = sorted(collection.find({}, {"_id": 0}), key=lambda d: (d["timestamp"], d["request_id"]))
        return to_table(docs, arrow_schema(description))

    assert pa.concat_tables(read_period(root, "wine", START, END)).equals(stored())

    # A label arrives, the hour is archived again, then the prediction expires from MongoDB: the next rerun
    # keeps the label (it merges with the partition as now written, not with a cached copy of it).
    unlabelled = collection.find_one({"target": {"$exists": False}}, {"_id": 0})
    hour = archive_layout.hour_floor(unlabelled["timestamp"])
    collection.update_one({"request_id": unlabelled["request_id"]}, {"$set": {"target": "2"}})
    assert archive_hour(collection, description, root, hour).labelled_since == 1  # counted: a late label
    collection.delete_one({"request_id": unlabelled["request_id"]})
    result = archive_hour(collection, description, root, hour)
    assert result.rows == result.from_mongodb + 1
    kept = pa.concat_tables(read_period(root, "wine", hour, hour + timedelta(hours=1))).to_pylist()
    assert [r["target"] for r in kept if r["request_id"] == unlabelled["request_id"]] == ["2"]

    # The batch flow's Dask path plans the archived hours from the same URL and reads them from it.
    settings = BatchSettings(archive_root=root, mongodb_uri=stack["uri"], mongodb_database=DB)
    slices = plan(settings, description, Period(START, END))
    assert [s.source for s in slices] == [ARCHIVE] * 3
    frame = read_slice(slices[0], description, root, stack["uri"], DB, 100)
    first = pa.concat_tables(read_period(root, "wine", START, START + timedelta(hours=1)))
    assert sorted(frame["request_id"]) == sorted(first["request_id"].to_pylist()) and frame["request_id"].is_unique


def test_a_period_across_the_archived_hours_counts_each_row_once_and_keeps_a_label_that_came_after(
    stack, tmp_path
) -> None:
    # Hostile probe: the batch flow read an archived hour from its partition alone, so a label that reached
    # MongoDB after the hour was archived was lost to every run until the archive rewrote that hour.
    from monitoring_core.documents import label_fields
    from prefect_flows.archive import archive_hour
    from prefect_flows.scale import ARCHIVE, BOTH, MONGODB, plan, read_slice
    from prefect_flows.settings import BatchSettings

    database = "boundary"
    collection = predictions_collection(stack["collection"].database.client, database)
    collection.insert_many(list(stack["collection"].find({"model_name": "wine"}, {"_id": 0})))
    description = stack["folders"]["wine"].description
    root = str(tmp_path / "archive")
    for hour in (START, START + timedelta(hours=1)):  # 10:00 and 11:00 archived, 12:00 in MongoDB only
        archive_hour(collection, description, root, hour)
    late = collection.find_one({"target": {"$exists": False}, "timestamp": {"$gte": START + timedelta(minutes=30)}})
    collection.update_one({"request_id": late["request_id"]}, {"$set": label_fields("1", END, order=1)})
    period = Period(START + timedelta(minutes=30), END - timedelta(minutes=30))
    query = {"timestamp": {"$gte": period.start, "$lt": period.end}}
    expected = sorted(d["request_id"] for d in collection.find(query, {"_id": 0, "request_id": 1}))
    settings = BatchSettings(archive_root=root, mongodb_uri=stack["uri"], mongodb_database=database)

    def read(now: datetime):
        slices = plan(settings, description, period, now=now)
        frames = [read_slice(s, description, root, stack["uri"], database, 50) for s in slices]
        return [s.source for s in slices], pd.concat(frames, ignore_index=True)

    # Within the retention MongoDB may hold a label the partition lacks: both are read, one row per id.
    sources, frame = read(END + timedelta(days=1))
    assert sources == [BOTH, BOTH, MONGODB]
    assert sorted(frame["request_id"]) == expected and frame["request_id"].is_unique
    assert frame.set_index("request_id").loc[late["request_id"], description.target_column] == "1"
    # Past the retention MongoDB has deleted the archived hours: their partitions alone are read.
    sources, frame = read(END + description.retention + timedelta(hours=1))
    assert sources == [ARCHIVE, ARCHIVE, MONGODB]
    assert sorted(frame["request_id"]) == expected and frame["request_id"].is_unique


def test_a_description_changed_since_the_hour_was_archived_reads_and_rewrites_it_without_loss(stack, tmp_path) -> None:
    # Hostile probe: a feature added to model.yaml after an hour was archived made the batch flow's read of that
    # partition fail (no such column), and rewriting the hour under the new description dropped the archived
    # values of a feature the description no longer names.
    from prefect_flows.archive import archive_hour
    from prefect_flows.scale import ARCHIVE, Slice, read_slice

    database = "described"
    collection = predictions_collection(stack["collection"].database.client, database)
    collection.insert_many(list(stack["collection"].find({"model_name": "wine"}, {"_id": 0})))
    before = stack["folders"]["wine"].description
    root = str(tmp_path / "archive")
    archive_hour(collection, before, root, START)
    dump = before.model_dump(mode="json", exclude_defaults=True)
    removed = dump["features"][0]["name"]
    dump["features"] = [*dump["features"][1:], {"name": "added", "kind": "numerical"}]
    after = parse_description(dump)
    hour = Slice(START, START + timedelta(hours=1), ARCHIVE)

    frame = read_slice(hour, after, root, stack["uri"], database, 100)
    original = next(read_period(root, "wine", START, START + timedelta(hours=1)))
    assert len(frame) == original.num_rows and frame["added"].isna().all() and removed not in frame.columns

    collection.delete_many({})  # expired from MongoDB: the partition alone holds the hour
    result = archive_hour(collection, after, root, START)
    rewritten = next(read_period(root, "wine", START, START + timedelta(hours=1)))
    assert result.rows == original.num_rows
    assert rewritten[removed].equals(original[removed])  # kept, not dropped with the description's change
    assert rewritten["added"].null_count == rewritten.num_rows
    assert rewritten.select(original.column_names).equals(original)


def test_a_truncated_partition_is_set_aside_and_rewritten_and_a_reader_names_it(stack, tmp_path) -> None:
    # Hostile probe: a partition cut short (a disk full, a copy killed outside the flow) failed every rerun of
    # its hour for good (each read it to merge), and the batch flow's error did not say which file.
    from monitoring_core.archive_layout import CorruptPartition
    from prefect_flows.archive import archive_hour
    from prefect_flows.scale import ARCHIVE, MONGODB, Slice, read_slice

    database = "truncated"
    collection = predictions_collection(stack["collection"].database.client, database)
    collection.insert_many(list(stack["collection"].find({"model_name": "wine"}, {"_id": 0})))
    description = stack["folders"]["wine"].description
    root = tmp_path / "archive"
    path = Path(archive_hour(collection, description, str(root), START).path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    hour = Slice(START, START + timedelta(hours=1), ARCHIVE)
    with pytest.raises(CorruptPartition, match=r"hour=10/part-0\.parquet.*archive flow"):
        read_slice(hour, description, str(root), stack["uri"], database, 100)

    # A read error that does not repeat (a store's dropped connection) sets nothing aside: the task retries.
    good = Path(archive_hour(collection, description, str(root), START + timedelta(hours=1)).path)
    with pytest.MonkeyPatch.context() as patch:
        import prefect_flows.archive as archive

        def flaky(fs, path, schema):
            raise archive_layout.unreadable(path, OSError("connection reset"))

        patch.setattr(archive, "kept_columns", flaky)
        with pytest.raises(CorruptPartition):
            archive_hour(collection, description, str(root), START + timedelta(hours=1))
    assert good.exists() and not list(good.parent.glob("_*"))

    result = archive_hour(collection, description, str(root), START)
    assert result.status == "written" and result.set_aside and "corrupt" in result.set_aside
    assert Path(result.set_aside).exists()  # kept for whoever wants to recover it, hidden from readers
    stored = collection.count_documents({"timestamp": {"$gte": START, "$lt": START + timedelta(hours=1)}})
    assert result.rows == result.from_mongodb == stored
    assert len(read_slice(hour, description, str(root), stack["uri"], database, 100)) == stored
    assert ds.dataset(path.parent, format="parquet").count_rows() == stored  # the file set aside is skipped
    assert archive_hour(collection, description, str(root), START).set_aside is None  # a rerun: nothing to set aside

    # A period with no row: no partition is written, and its read is an empty frame of the logged columns.
    before = START - timedelta(hours=1)
    assert archive_hour(collection, description, str(root), before).status == "empty"
    assert list_partitions(str(root), "wine", before, START) == []
    empty = read_slice(Slice(before, START, MONGODB), description, str(root), stack["uri"], database, 100)
    assert empty.empty and description.target_column in empty.columns


def test_a_partition_written_by_another_tool_out_of_order_is_merged_in_order(stack, tmp_path) -> None:
    # The streaming merge reads a partition in order: one whose rows are not ordered by time then id is sorted.
    from prefect_flows.archive import archive_hour

    database = "unordered"
    collection = predictions_collection(stack["collection"].database.client, database)
    collection.insert_many(list(stack["collection"].find({"model_name": "wine"}, {"_id": 0})))
    description = stack["folders"]["wine"].description
    root = str(tmp_path / "archive")
    docs = sorted(collection.find({}, {"_id": 0}), key=lambda d: (d["timestamp"], d["request_id"]))
    hour_docs = [d for d in docs if d["timestamp"] < START + timedelta(hours=1)]
    archive_layout.write_partition(root, "wine", START, to_table(hour_docs[::-1], arrow_schema(description)))
    collection.delete_one({"request_id": hour_docs[0]["request_id"]})  # expired: the partition alone has it
    result = archive_hour(collection, description, root, START, batch_size=4)
    archived = next(read_period(root, "wine", START, START + timedelta(hours=1)))
    assert result.rows == len(hour_docs) and archived.equals(to_table(hour_docs, arrow_schema(description)))
