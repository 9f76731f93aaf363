"""The archive flow's throughput from nx-27017: rows/s per archived hour, against the MongoDB read alone.

`python -m bench archive [--rows 10000,50000] [--repeat 3] [--flow]`. For each size: seed nx-27017 with that
many logged taxi predictions in one hour (synthetic trips, 70% labelled; not timed), then time, alternating,
the read alone (the hour's documents, projected to the partition's fields: the stand-in's per-document cost)
and `archive_hour` (what each task of the flow runs: read, merge with the partition already written, Parquet
zstd to a temporary file, read back and checked against MongoDB's ids (a second, id-only read), rename).
The first archive of an hour writes the partition, the next ones rewrite it (a re-run). `--flow` also times
the Prefect flow over the hour (after a warm-up: the temporary server's start is not counted).

`--memory` also measures each archive's peak memory, in a fresh process per measure (peak RSS, VmHWM reset
before the call, minus the RSS before it): the streaming `archive_hour` against the whole-hour archive it replaced
(`whole_hour_archive` below: every document of the hour in a list, merged in a dict, one table), both
rewriting the same partition, at `--batch-size` rows a batch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

DB = "prediction_service"


def _seed(uri: str, rows: int, start: datetime) -> None:
    from local_stack.logged_predictions import insert_documents, logged_documents
    from ride_duration.schema import DESCRIPTION
    from ride_duration.synthetic import generate_trips

    trips = generate_trips(rows, seed=rows)
    trips = trips.assign(prediction=trips[DESCRIPTION.target_column] * 1.1)
    docs = logged_documents(DESCRIPTION, trips, start, start + timedelta(hours=1), "v1", 0.7, 1, f"a{rows}-")
    insert_documents(uri, DB, docs)


def whole_hour_archive(collection, description, root: str, hour: datetime) -> int:
    """The archive of one hour as it was before streaming (the memory baseline): the whole hour in memory."""
    from monitoring_core.archive_layout import arrow_schema, partition_path, read_partition, to_table, utc
    from monitoring_core.archive_layout import write_partition as write

    fields = {"_id": 0, **dict.fromkeys(arrow_schema(description).names, 1)}
    query = {"model_name": description.name, "timestamp": {"$gte": hour, "$lt": hour + timedelta(hours=1)}}
    documents = list(collection.find(query, fields, batch_size=10_000))
    try:
        archived = read_partition(partition_path(root, description.name, hour)).to_pylist()
    except FileNotFoundError:
        archived = []
    rows = {row["request_id"]: row for row in archived}
    rows.update((d["request_id"], d) for d in documents)
    ordered = sorted(rows.values(), key=lambda row: (utc(row["timestamp"]), row["request_id"]))
    expected = {row["request_id"] for row in ordered}

    def verify(file) -> None:  # the checks it made: the file's ids, then MongoDB's ids read again
        ids = file.read(columns=["request_id"])["request_id"].to_pylist()
        assert len(ids) == len(expected) and set(ids) == expected
        assert not {d["request_id"] for d in collection.find(query, {"_id": 0, "request_id": 1})} - expected

    write(root, description.name, hour, to_table(ordered, arrow_schema(description)), verify=verify)
    return len(ordered)


# Run in a fresh process per measure: the peak RSS of the call (VmHWM, reset just before it through
# /proc/self/clear_refs: the imports' own peak is above what a small archive needs) minus the RSS before it.
_MEASURE = """
import re, sys, time
from datetime import datetime
from pymongo import MongoClient
from monitoring_core.documents import predictions_collection
from ride_duration.schema import DESCRIPTION
from prefect_flows.archive import archive_hour
from bench.bench_archive import whole_hour_archive

def status(key):
    return int(re.search(key + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))

how, uri, db, root, hour, batch = sys.argv[1:]
hour = datetime.fromisoformat(hour)
with MongoClient(uri, tz_aware=True) as client:
    collection = predictions_collection(client, db)
    collection.find_one({})
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")  # resets VmHWM, the peak RSS, to the current RSS
    before, began = status("VmRSS"), time.perf_counter()
    if how == "stream":
        rows = archive_hour(collection, DESCRIPTION, root, hour, batch_size=int(batch)).rows
    else:
        rows = whole_hour_archive(collection, DESCRIPTION, root, hour)
    peak, seconds = status("VmHWM"), time.perf_counter() - began
print(rows, max(peak - before, 0) / 1024, seconds)
"""


def _peak_mb(how: str, uri: str, root: str, hour: datetime, batch: int) -> tuple[int, float, float]:
    import subprocess
    import sys

    args = [sys.executable, "-c", _MEASURE, how, uri, DB, root, hour.isoformat(), str(batch)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
    return int(out[-3]), float(out[-2]), float(out[-1])


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str]) -> int:
    """Run the benchmark and print rows/s of the archive and of the read alone, per size."""
    parser = argparse.ArgumentParser(prog="python -m bench archive", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,50000", help="comma-separated logged-row counts (one hour each)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size; the fastest counts")
    parser.add_argument("--flow", action="store_true", help="also time the Prefect flow over each hour")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory: streaming vs whole hour")
    parser.add_argument("--batch-size", type=int, default=10_000, help="archive_hour's rows per batch")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.rows.split(",")]

    from pymongo import MongoClient

    from local_stack.components import start_mongo
    from monitoring_core.archive_layout import arrow_schema
    from monitoring_core.documents import predictions_collection
    from ride_duration.schema import DESCRIPTION

    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    proc, uri = start_mongo(work / "mongo")
    os.environ.update(PREFECT_HOME=str(work / "prefect"), PREFECT_LOGGING_LEVEL="WARNING")
    print(f"[bench] workdir {work}; load average before {_load()} (1/5/15 min, 2 cores)", flush=True)
    fields = {"_id": 0, **dict.fromkeys(arrow_schema(DESCRIPTION).names, 1)}
    results, memory = [], []
    try:
        from prefect_flows.archive import archive_hour

        flow = None
        if args.flow:
            (work / "models" / DESCRIPTION.name).mkdir(parents=True)
            shutil.copy(Path("models") / DESCRIPTION.name / "model.yaml", work / "models" / DESCRIPTION.name)
            os.environ.update(MONGODB_URI=uri, MONGODB_DATABASE=DB, MODELS_DIR=str(work / "models"))
            from prefect_flows.archive import archive_predictions as flow

            began = time.perf_counter()
            flow(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC), archive_root=str(work / "w"))
            print(f"[bench] warm-up flow (Prefect's temporary server start): {time.perf_counter() - began:.0f}s")
        with MongoClient(uri, tz_aware=True) as client:
            collection = predictions_collection(client, DB)
            for i, rows in enumerate(sizes):
                hour = datetime(2026, 2, 1, i, tzinfo=UTC)
                print(f"[bench] seeding {rows:,} logged predictions (not timed)", flush=True)
                _seed(uri, rows, hour)
                query = {"model_name": DESCRIPTION.name, "timestamp": {"$gte": hour, "$lt": hour + timedelta(hours=1)}}
                reads, archives, flows = [], [], []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    assert len(list(collection.find(query, fields, batch_size=10_000))) == rows
                    reads.append(time.perf_counter() - began)
                    began = time.perf_counter()
                    result = archive_hour(collection, DESCRIPTION, str(work / "archive"), hour, args.batch_size)
                    archives.append(time.perf_counter() - began)
                    assert result.rows == rows, result
                    if flow is not None:
                        began = time.perf_counter()
                        flow(hour, hour + timedelta(hours=1), archive_root=str(work / "archive"))
                        flows.append(time.perf_counter() - began)
                size = Path(result.path).stat().st_size
                results.append((rows, min(reads), min(archives), min(flows) if flows else None, size))
                if args.memory:
                    measured = {}
                    for how in ("stream", "whole"):  # each rewrites the partition the timed runs wrote
                        count, peak, seconds = _peak_mb(how, uri, str(work / "archive"), hour, args.batch_size)
                        assert count == rows, (how, count)
                        measured[how] = peak, seconds
                    memory.append((rows, *measured["whole"], *measured["stream"], _load()))
                    print(f"[bench] {rows:,} rows: peak memory {measured} MB; load {_load()}", flush=True)
                print(
                    f"[bench] {rows:,} rows: read alone {[round(r, 2) for r in reads]} s, "
                    f"archive_hour {[round(a, 2) for a in archives]} s"
                    + (f", flow {[round(f, 2) for f in flows]} s" if flows else "")
                    + f"; load {_load()}",
                    flush=True,
                )
        print("\nfastest of each:")
        print("rows      read_s  us/doc  archive_s  rows/s    archive/read  flow_s  partition_MB")
        for rows, read_s, archive_s, flow_s, size in results:
            flow_text = f"{flow_s:6.2f}" if flow_s is not None else "     -"
            print(
                f"{rows:<9,} {read_s:6.2f}  {read_s / rows * 1e6:6.0f}  {archive_s:9.2f}  {rows / archive_s:8,.0f}"
                f"  {archive_s / read_s:12.2f}  {flow_text}  {size / 1e6:12.2f}"
            )
        if memory:
            print(f"\npeak memory of one archive_hour (RSS above that before the call; {args.batch_size:,} a batch):")
            print("rows      whole_hour_MB  streaming_MB  whole/streaming  whole_s  streaming_s  load (1/5/15)")
            for rows, whole, whole_s, stream, stream_s, load in memory:
                print(
                    f"{rows:<9,} {whole:13.1f}  {stream:12.1f}  {whole / max(stream, 0.1):15.1f}"
                    f"  {whole_s:7.2f}  {stream_s:11.2f}  {load}"
                )
        print(f"load average after {_load()}: figures are under this load (shared machine)")
    finally:
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
