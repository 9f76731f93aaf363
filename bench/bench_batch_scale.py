"""The batch flow over one day of 1 and 10 million logged predictions: Dask with 1 and 2 workers, and one frame.

`python -m bench batch_scale` (`--quick`: 200,000 rows; `--rows 1000000,10000000`, `--workers 1,2`,
`--frame-rows N`: the single-frame flow runs for sizes up to N, from nx-27017). For each size the generator
writes the day's archive partitions directly (Parquet, the archive's layout and schema, rows drawn from the
taxi example's reference with 70% labelled and 2% of `passenger_count` missing; not timed), then the real
flow runs over the day in its own process (`python -m prefect_flows.batch_monitoring --engine dask`). A
sampler reads the resident memory of that process and every process under it (Dask nanny and workers,
Prefect's temporary server) every 0.2 s. The summary's exact numbers are then checked against plain pandas
over every partition (row count, labelled rows, missing shares, RMSE/MAE/mean error). Wall times include
the process start, Prefect's temporary server and the Dask cluster; `scan` is the hour-by-hour pass alone.
The machine is shared: figures are "under load", the load average is printed beside each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAY = datetime(2026, 6, 1, tzinfo=UTC)
DB = "prediction_service"
MODEL = "ride_duration"
LABEL_SHARE, MISSING_SHARE = 0.7, 0.02
GIB = 1024**3


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


def generate(root: Path, description, reference, rows: int, seed: int) -> None:
    """Write one day of `rows` logged predictions as 24 hourly archive partitions (vectorised, no MongoDB)."""
    import numpy as np
    import pyarrow as pa

    from monitoring_core import archive_layout

    rng = np.random.default_rng(seed)
    schema = archive_layout.arrow_schema(description)
    per_hour = np.full(24, rows // 24)
    per_hour[: rows % 24] += 1
    for hour, n in enumerate(per_hour):
        start = DAY + timedelta(hours=int(hour))
        picked = reference.iloc[rng.integers(0, len(reference), size=n)].reset_index(drop=True)
        offsets = np.sort(rng.integers(0, 3_600_000_000, size=n))
        stamps = pa.array(np.datetime64(start.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]"))
        columns: dict[str, pa.Array] = {
            "request_id": pa.array([f"g{rows}-{hour}-{i}" for i in range(n)]),
            "timestamp": stamps.cast(pa.timestamp("us", tz="UTC")),
            "model_name": pa.array([MODEL] * n),
            "model_version": pa.array(["bench"] * n),
        }
        for field in schema:
            if field.name in columns or field.name in ("target", "target_timestamp", "extra_fields"):
                continue
            values = picked[field.name] if field.name in picked.columns else None
            if values is None:
                columns[field.name] = pa.nulls(n, field.type)
            elif pa.types.is_string(field.type):
                columns[field.name] = pa.array(values.dt.strftime("%Y-%m-%dT%H:%M:%S").to_numpy(dtype=object))
            else:
                array = values.to_numpy(dtype=float)
                if field.name == "passenger_count":
                    array = np.where(rng.random(n) < MISSING_SHARE, np.nan, array)
                columns[field.name] = pa.array(array, from_pandas=True).cast(field.type)
        labelled = rng.random(n) < LABEL_SHARE
        target = np.where(labelled, picked[description.target_column].to_numpy(dtype=float), np.nan)
        columns["target"] = pa.array(target, from_pandas=True)
        label_times = np.where(labelled, offsets + 60_000_000, 0).astype("timedelta64[us]")
        times = pa.array(np.datetime64(start.replace(tzinfo=None), "us") + label_times, mask=~labelled)
        columns["target_timestamp"] = times.cast(pa.timestamp("us", tz="UTC"))
        columns["extra_fields"] = pa.nulls(n, pa.string())
        table = pa.table([columns[f.name] for f in schema], schema=schema)
        archive_layout.write_partition(str(root), MODEL, start, table)


def pandas_check(root: Path, description) -> dict:
    """Return row count, labelled rows, missing shares and regression quality with plain pandas, hour by hour."""
    import numpy as np
    import pandas as pd

    from monitoring_core import archive_layout

    rows = labelled = 0
    missing: dict[str, int] = {}
    sums = np.zeros(3)
    for path in archive_layout.list_partitions(str(root), MODEL, DAY, DAY + timedelta(days=1)):
        frame = pd.read_parquet(path)
        rows += len(frame)
        labelled += int(frame["target"].notna().sum())
        for column in ("passenger_count", "trip_distance"):
            missing[column] = missing.get(column, 0) + int(frame[column].isna().sum())
        both = frame.dropna(subset=["target", "prediction"])
        errors = both["prediction"] - both["target"]
        sums += [len(errors), errors.abs().sum(), (errors**2).sum()]
        sums_error = errors.sum()
        missing["_error_sum"] = missing.get("_error_sum", 0) + sums_error
    n, absolute, squared = sums
    return {
        "rows": rows,
        "labelled": labelled,
        "missing_share": {c: v / rows for c, v in missing.items() if not c.startswith("_")},
        "rmse": math.sqrt(squared / n),
        "mae": absolute / n,
        "mean_error": missing["_error_sum"] / n,
    }


class TreeSampler(threading.Thread):
    """Sample the resident memory of a process and all its descendants; keep each process's peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.stop = pid, interval, threading.Event()
        self.peaks: dict[int, tuple[int, str]] = {}

    def _role(self, process) -> str:
        if process.pid == self.pid:
            return "flow"
        try:
            line = " ".join(process.cmdline())
        except Exception:
            return "other"
        if "uvicorn" in line or "prefect" in line and "server" in line:
            return "prefect server"
        if "multiprocessing" in line or "distributed" in line or "dask" in line:
            return "dask worker"
        return "other"

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.stop.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for process in processes:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                peak, role = self.peaks.get(process.pid, (0, ""))
                if rss > peak:
                    self.peaks[process.pid] = (rss, role or self._role(process))
            self.stop.wait(self.interval)

    def by_role(self) -> dict[str, float]:
        """Return the largest peak (GiB) per role."""
        roles: dict[str, float] = {}
        for rss, role in self.peaks.values():
            roles[role] = max(roles.get(role, 0.0), rss / GIB)
        return roles


def run_flow(work: Path, env: dict[str, str], engine: str, workers: int) -> dict:
    """Run the flow over the day in its own process; return wall time, peak memory per role and the summary."""
    reports = work / f"reports-{engine}-{workers}"
    env = {**env, "REPORTS_DIR": str(reports), "BATCH_DASK_WORKERS": str(workers)}
    command = [
        sys.executable,
        "-m",
        "prefect_flows.batch_monitoring",
        "--start",
        DAY.isoformat(),
        "--end",
        (DAY + timedelta(days=1)).isoformat(),
        "--model",
        MODEL,
        "--engine",
        engine,
    ]
    log = work / f"flow-{engine}-{workers}.log"
    began = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(process.pid)
        sampler.start()
        code = process.wait()
        sampler.stop.set()
    wall = time.perf_counter() - began
    if code != 0:
        raise RuntimeError(f"flow failed ({code}); see {log}:\n" + log.read_text()[-3000:])
    summary = json.loads(next(reports.glob("*/summary.json")).read_text())
    shutil.rmtree(reports, ignore_errors=True)
    return {"wall": wall, "memory": sampler.by_role(), "summary": summary, "load": _load()}


def check(summary: dict, expected: dict) -> list[str]:
    """Return the differences between the run's exact numbers and pandas' (empty: all equal)."""
    exact, quality = summary.get("exact") or {}, summary["quality"]
    found = {
        "rows": summary["rows"]["period"],
        "labelled": summary["rows"]["labelled"],
        **{f"missing {c}": (exact.get("missing_share") or {}).get(c) for c in expected["missing_share"]},
        **{m: quality.get(m) for m in ("rmse", "mae", "mean_error")},
    }
    wanted = {
        "rows": expected["rows"],
        "labelled": expected["labelled"],
        **{f"missing {c}": v for c, v in expected["missing_share"].items()},
        **{m: expected[m] for m in ("rmse", "mae", "mean_error")},
    }
    if not exact:  # the single-frame flow: counts over every row, quality on its sample above BATCH_MAX_ROWS
        wanted = {k: wanted[k] for k in ("rows", "labelled")}
    return [
        f"{k}: flow {found[k]} pandas {v}"
        for k, v in wanted.items()
        if found[k] is None or not math.isclose(found[k], v, rel_tol=1e-9, abs_tol=1e-12)
    ]


def _exactness(result: dict) -> str:
    """Return the table's word on the run's numbers against pandas."""
    if result["differences"]:
        return "NO"
    return "yes, = pandas" if result["summary"].get("exact") else "counts = pandas; quality on a sample"


def seed_mongo(uri: str, root: Path) -> float:
    """Copy the archive's documents into nx-27017 for the single-frame flow; return the seconds it took."""
    from pymongo import MongoClient

    from monitoring_core import archive_layout
    from monitoring_core.documents import ensure_indexes, predictions_collection

    began = time.perf_counter()
    with MongoClient(uri) as client:
        collection = predictions_collection(client, DB)
        ensure_indexes(collection)
        for table in archive_layout.read_period(str(root), MODEL, DAY, DAY + timedelta(days=1)):
            docs = [{k: v for k, v in d.items() if v is not None} for d in table.to_pylist()]
            for i in range(0, len(docs), 10_000):
                collection.insert_many(docs[i : i + 10_000], ordered=False)
    return time.perf_counter() - began


def main(argv: list[str]) -> int:
    """Generate the days, run the flow per size and worker count, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench batch_scale", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated rows per day")
    parser.add_argument("--workers", default="1,2", help="comma-separated Dask worker counts")
    parser.add_argument("--frame-rows", type=int, default=1_000_000, help="run the single-frame flow up to this size")
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 2 workers and the frame flow: a fast check")
    parser.add_argument("--seed", type=int, default=1, help="the generator's seed")
    args = parser.parse_args(argv)
    sizes = [200_000] if args.quick else [int(n) for n in args.rows.split(",")]
    workers = [2] if args.quick else [int(n) for n in args.workers.split(",")]

    import pandas as pd

    from local_stack.components import start_mongo
    from monitoring_core.model_folder import load_model_folder
    from monitoring_core.paths import DEFAULT_MODEL_DIR
    from ride_duration.train import train

    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    print(f"[bench] workdir {work}; training a small model ({_load()})", flush=True)
    folder = work / "models" / MODEL
    train(source="synthetic", rows=20_000, seed=7, out_dir=folder, month="2021-01", data_dir=work)
    shutil.copy(DEFAULT_MODEL_DIR / "model.yaml", folder / "model.yaml")
    description = load_model_folder(folder).description
    reference = pd.read_parquet(folder / "reference.parquet")
    mongo, uri = start_mongo(work / "mongo")
    (work / "prefect").mkdir()
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "MONGODB_DATABASE": DB,
        "MODELS_DIR": str(work / "models"),
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PUSHGATEWAY_URL": "",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    results = []
    try:
        for rows in sizes:
            root = work / f"archive-{rows}"
            began = time.perf_counter()
            generate(root, description, reference, rows, args.seed)
            print(f"[bench] generated {rows:,} rows in {time.perf_counter() - began:.0f}s (not timed)", flush=True)
            expected = pandas_check(root, description)
            runs = [("dask", n) for n in workers]
            if rows <= args.frame_rows:
                seconds = seed_mongo(uri, root)
                print(f"[bench] copied {rows:,} documents into nx-27017 in {seconds:.0f}s (not timed)", flush=True)
                runs.append(("frame", 1))
            for engine, n in runs:
                env_run = {**env, "ARCHIVE_ROOT": str(root) if engine == "dask" else str(work / "no-archive")}
                result = run_flow(work, env_run, engine, n)
                differences = check(result["summary"], expected)
                result.update(rows=rows, engine=engine, workers=n, differences=differences)
                results.append(result)
                timings = result["summary"].get("timings_seconds", {})
                memory = ", ".join(f"{k} {v:.2f}" for k, v in sorted(result["memory"].items()))
                verdict = differences or "equal"
                print(
                    f"[bench] {rows:,} rows {engine} x{n}: wall {result['wall']:.0f}s, "
                    f"read {timings.get('read', 0):.0f}s, reports {timings.get('reports', 0):.0f}s; "
                    f"peak GiB {memory}; exact vs pandas: {verdict} ({result['load']})",
                    flush=True,
                )
            shutil.rmtree(root, ignore_errors=True)
            with __import__("pymongo").MongoClient(uri) as client:
                client[DB]["predictions"].delete_many({})
    finally:
        mongo.stop()
    print("\n| rows/day | engine | workers | wall s | read s | rows/s (read) | largest process GiB | exact | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    failed = False
    for r in results:
        timings = r["summary"].get("timings_seconds", {})
        scan = timings.get("read", 0) or float("nan")
        largest = max(r["memory"].values())
        failed |= bool(r["differences"]) or (r["engine"] == "dask" and largest >= 2)  # the frame: for comparison
        print(
            f"| {r['rows']:,} | {r['engine']} | {r['workers']} | {r['wall']:.0f} | {scan:.0f} | "
            f"{r['rows'] / scan:,.0f} | {largest:.2f} | {_exactness(r)} | {r['load']} |"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
