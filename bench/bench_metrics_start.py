"""Time from launching the metrics service to its first drift verdict: prepared, cold and warm.

`python -m bench metrics_start [--reference-rows N] [--window-rows N] [--repeats N]`

One model folder (the taxi example's description, a reference of N synthetic rows). Each start
launches `python -m evidently_service`, sends a full window as soon as `/health` answers, and stops
the clock at the first `evidently_dataset_drift` sample for the model (a verdict: enough rows).

- prepared: `python -m monitoring_core.prepare` ran first (timed apart); no cache beside the reference
- cold: no prepared/ and no calibration cache: every threshold is simulated after the start
- warm: no prepared/, but the cache beside the reference that the cold start wrote
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from local_stack.processes import ManagedProcess, free_port, http_ok, python_module, wait_until
from monitoring_core.calibration import cache_path_for
from monitoring_core.paths import DEFAULT_MODEL_DIR

MODEL = "ride_duration"


def _folder(workdir: Path, reference_rows: int) -> tuple[Path, list[dict]]:
    """Write models/ride_duration (description + trained reference) and return it with rows to send."""
    from ride_duration.train import train

    artifacts = workdir / "artifacts"
    train(source="synthetic", rows=reference_rows * 4, seed=7, out_dir=artifacts, month="2021-01", data_dir=artifacts)
    folder = workdir / "models" / MODEL
    folder.mkdir(parents=True)
    shutil.copyfile(DEFAULT_MODEL_DIR / "model.yaml", folder / "model.yaml")
    shutil.copyfile(artifacts / "reference.parquet", folder / "reference.parquet")
    return folder, _rows(artifacts / "reference.parquet")


def _rows(reference: Path) -> list[dict]:
    import pandas as pd

    from ride_duration.schema import FIELD_NAMES

    frame = pd.read_parquet(reference)
    rows = []
    for i, record in enumerate(frame.to_dict("records")):
        row = {k: (None if isinstance(v, float) and v != v else v) for k, v in record.items() if k in FIELD_NAMES}
        pickup = row.get("lpep_pickup_datetime")
        row["lpep_pickup_datetime"] = pickup.isoformat() if pickup is not None else None
        row.update(request_id=f"b-{i}", timestamp="2026-12-01T12:00:00Z", prediction=float(record["prediction"]))
        rows.append(row)
    return rows


def _verdict(url: str) -> bool:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return any(line.startswith(f'evidently_dataset_drift{{model="{MODEL}"}}') for line in text.splitlines())


def _start(workdir: Path, config: Path, rows: list[dict], label: str) -> tuple[float, float]:
    """Launch the service, send `rows`; return seconds from launch to /health, and to the first dataset verdict."""
    port = free_port()
    env = {"MODELS_DIR": str(workdir / "models"), "EVIDENTLY_CONFIG": str(config), "PORT": str(port)}
    proc = ManagedProcess("evidently_service", python_module("evidently_service"), workdir / f"{label}.log", env=env)
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc.start()
    try:
        proc.wait_ready(lambda: http_ok(f"{url}/health"), timeout=300)
        ready = time.perf_counter() - started
        body = json.dumps(rows)
        requests.post(
            f"{url}/iterate/{MODEL}", data=body, headers={"Content-Type": "application/json"}, timeout=60
        ).raise_for_status()
        wait_until(lambda: _verdict(url), timeout=600, what="first drift verdict", interval=0.1)
        return ready, time.perf_counter() - started
    finally:
        proc.stop()


def main(argv: list[str]) -> int:
    """Print launch-to-verdict times of a prepared, a cold and a warm start, and their ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench metrics_start", description=__doc__)
    parser.add_argument("--reference-rows", type=int, default=2_000, help="rows in the reference")
    parser.add_argument("--window-rows", type=int, default=2_000, help="window size (the rows sent)")
    parser.add_argument("--repeats", type=int, default=1, help="starts per scenario (the median is printed)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-start-"))
    folder, rows = _folder(workdir, args.reference_rows)
    rows = (rows * (args.window_rows // max(len(rows), 1) + 1))[: args.window_rows]
    for i, row in enumerate(rows):
        row["request_id"] = f"b-{i}"
    config = workdir / "config.yaml"
    config.write_text(json.dumps({"defaults": {"window_size": args.window_rows, "evaluation_period_seconds": 0.5}}))
    cache = cache_path_for(folder / "reference.parquet")
    times: dict[str, list[tuple[float, float]]] = {"prepared": [], "cold": [], "warm": []}

    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "monitoring_core.prepare", str(folder), "--config", str(config)],
        capture_output=True,
        text=True,
    )
    prepare_seconds = time.perf_counter() - started
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    prepared = folder / "prepared"
    kept = workdir / "prepared.kept"
    shutil.copytree(prepared, kept)
    for _ in range(args.repeats):
        cache.unlink(missing_ok=True)
        shutil.rmtree(prepared, ignore_errors=True)
        shutil.copytree(kept, prepared)
        times["prepared"].append(_start(workdir, config, rows, "prepared"))
        shutil.rmtree(prepared)
        cache.unlink(missing_ok=True)
        times["cold"].append(_start(workdir, config, rows, "cold"))
        times["warm"].append(_start(workdir, config, rows, "warm"))  # the cold start's cache is beside the reference

    median = {name: statistics.median(v[1] for v in values) for name, values in times.items()}
    ready = {name: statistics.median(v[0] for v in values) for name, values in times.items()}
    print(f"reference {args.reference_rows} rows, window {args.window_rows} rows, {args.repeats} start(s) each")
    print(f"prepare command: {prepare_seconds:.1f} s")
    for name, seconds in median.items():
        print(f"launch -> first verdict, {name:8s}: {seconds:6.1f} s (of which launch -> /health {ready[name]:.1f} s)")
    print(
        f"cold / prepared: {median['cold'] / median['prepared']:.1f}x; warm / prepared: "
        f"{median['warm'] / median['prepared']:.1f}x"
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return 0
