"""The batch flow's wall time for 10,000 and 100,000 logged rows against the Evidently reports alone.

`python -m bench batch_flow` (or `python -m bench.bench_batch_flow --rows 10000,100000`). For each
size: seed nx-27017 with that many logged predictions in one hour (not timed), run the real flow
over the hour (timed), then build and save the same Evidently reports on the same frame already
in memory (the baseline). The ratio shows what the flow adds: the MongoDB read, Prefect's
orchestration, the summary, workspace and index. A warm-up run first starts Prefect's temporary
server (a one-off per process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_OVERHEAD = 0.5  # the target: the flow adds at most 50% on top of the report time
DB = "prediction_service"


def _seed(uri: str, model, rows: int, start: datetime) -> None:
    from local_stack.logged_predictions import insert_documents, prediction_documents
    from ride_duration.schema import DESCRIPTION
    from ride_duration.synthetic import generate_trips

    rides = generate_trips(rows, seed=rows)
    docs = prediction_documents(
        rides,
        model,
        start,
        start + timedelta(hours=1),
        label_share=0.7,
        seed=1,
        id_prefix=f"b{rows}-",
        description=DESCRIPTION,
    )
    insert_documents(uri, DB, docs)


def _reports_alone(uri: str, start: datetime, models_dir: Path, out: Path) -> tuple[float, float]:
    """Time the three Evidently reports on the period's frame, read beforehand: run, verdicts, HTML and JSON files.

    Exactly the reports and report files the flow produces, as a user would save them by hand.
    """
    import pandas as pd
    from pymongo import MongoClient

    from monitoring_core.model_folder import load_model_folder
    from monitoring_core.monitoring_config import drift_settings
    from prefect_flows.analysis import Limits, analyse
    from prefect_flows.io_mongo import read_predictions, sample_rows
    from prefect_flows.period import Period

    period = Period(start, start + timedelta(hours=1))
    folder = load_model_folder(models_dir / "ride_duration")
    began = time.perf_counter()
    with MongoClient(uri, tz_aware=True) as client:
        rows = read_predictions(client, DB, folder.description, period)
    read_s = time.perf_counter() - began  # not part of the baseline: shown as the read's own floor
    reference = pd.read_parquet(folder.reference_path)
    drift = drift_settings(None, folder)
    limits = Limits(
        dataset_drift_share=drift.dataset_drift_share, multiple_testing=drift.multiple_testing, tests=drift.tests
    )
    analysed, sampling = sample_rows(rows, len(rows), 0)
    began = time.perf_counter()
    analysis = analyse("baseline", folder.description, period, reference, rows, analysed, sampling, limits)
    out.mkdir(parents=True, exist_ok=True)
    for report in analysis.reports:
        report.snapshot.save_html(str(out / f"{report.kind}.html"))
        report.snapshot.save_json(str(out / f"{report.kind}.json"))
    return time.perf_counter() - began, read_s


def main(argv: list[str]) -> int:
    """Run the benchmark and print flow time, report time and the overhead ratio per size."""
    parser = argparse.ArgumentParser(prog="python -m bench batch_flow", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000", help="comma-separated logged-row counts")
    parser.add_argument("--repeat", type=int, default=4, help="timed runs per size; the fastest of each counts")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.rows.split(",")]

    from local_stack.components import start_mongo
    from monitoring_core.paths import DEFAULT_MODEL_DIR
    from ride_duration.model import load_model
    from ride_duration.train import train

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    print(f"[bench] workdir {work}; training a small model", flush=True)
    # A MODELS_DIR with the taxi example's folder: its committed description, a freshly trained model.
    folder = work / "models" / "ride_duration"
    train(source="synthetic", rows=8_000, seed=7, out_dir=folder, month="2021-01", data_dir=work)
    shutil.copy(DEFAULT_MODEL_DIR / "model.yaml", folder / "model.yaml")
    model = load_model(folder / "model.pkl")
    (work / "prefect").mkdir()
    proc, uri = start_mongo(work / "mongo")
    os.environ.update(
        MONGODB_URI=uri,
        MONGODB_DATABASE=DB,
        MODELS_DIR=str(work / "models"),
        REPORTS_DIR=str(work / "reports"),
        BATCH_MAX_ROWS=str(max(sizes)),
        # Before Prefect is first imported (it reads its settings then); prefect_flows sets the start-up
        # timeout and the analytics opt-out itself.
        PREFECT_HOME=str(work / "prefect"),
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    try:
        from prefect_flows.batch_monitoring import batch_monitoring

        day = datetime(2026, 2, 1, tzinfo=UTC)
        _seed(uri, model, 500, day - timedelta(hours=1))
        began = time.perf_counter()
        batch_monitoring(day - timedelta(hours=1), day)  # warm-up: Prefect server, Evidently import, first use
        print(f"[bench] warm-up run on 500 rows (Prefect server start, imports): {time.perf_counter() - began:.0f}s")
        results = []
        for i, rows in enumerate(sizes):
            start = day + timedelta(hours=i)
            print(f"[bench] seeding {rows:,} logged predictions (not timed)", flush=True)
            _seed(uri, model, rows, start)
            flow_runs, report_runs, read_runs = [], [], []
            for _ in range(args.repeat):  # alternate, so load from other processes hits both alike
                began = time.perf_counter()
                summary = batch_monitoring(start, start + timedelta(hours=1))["ride_duration"]
                flow_runs.append((time.perf_counter() - began, summary["timings_seconds"]))
                report_s, read_s = _reports_alone(uri, start, work / "models", work / "baseline" / str(rows))
                report_runs.append(report_s)
                read_runs.append(read_s)
            flow_s, stages = min(flow_runs, key=lambda run: run[0])
            results.append((rows, flow_s, min(report_runs), stages, min(read_runs)))
            print(
                f"[bench] {rows:,} rows: flow {[round(f, 2) for f, _ in flow_runs]} s, "
                f"reports alone {[round(r, 2) for r in report_runs]} s, "
                f"MongoDB read alone {[round(r, 2) for r in read_runs]} s",
                flush=True,
            )
        print("\nfastest of each (seconds):")
        print(
            "rows      flow_s  reports_alone_s  read_alone_s  flow/reports  overhead"
            "  (stages: load read reports publish store)"
        )
        for rows, flow_s, report_s, stages, read_s in results:
            overhead = flow_s / report_s - 1
            stage_text = " ".join(f"{stages.get(k, 0):.2f}" for k in ("load", "read", "reports", "publish", "store"))
            ratio = flow_s / report_s
            print(
                f"{rows:<9,} {flow_s:6.2f}  {report_s:15.2f}  {read_s:12.2f}  {ratio:12.2f}  {overhead:+8.0%}"
                f"  ({stage_text})"
            )
        rows, flow_s, report_s, stages, read_s = results[-1]
        without_read = (flow_s - stages["read"]) / report_s - 1
        print(
            f"\nat {rows:,} rows the flow adds {flow_s / report_s - 1:+.0%} on top of the reports "
            f"(target <= {TARGET_OVERHEAD:+.0%}); without the MongoDB read {without_read:+.0%}; "
            f"the read alone is {read_s / report_s:.0%} of the report time (budget {TARGET_OVERHEAD:.0%})"
        )
    finally:
        proc.stop()
        # The reports (~11 MB a run) and data go; Prefect's home stays until its server exits with us.
        for folder in ("reports", "baseline", "mongo", "artifacts"):
            shutil.rmtree(work / folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
