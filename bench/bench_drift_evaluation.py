"""One window evaluation through the drift adapter vs Evidently's `Report.run`, and ingestion rows/s.

`python -m bench drift_evaluation [--reference-rows N] [--window-rows N] [--repeats N] [--no-http]`

Same data for both: 5,000 reference rows and 1,000 window rows from the generator, with
every monitored feature plus the model's prediction. The baseline (`Report.run` with the
equivalent pinned `ValueDrift` metrics) is measured in the same run; the scores must match.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ride_duration.schema import DESCRIPTION, FIELD_NAMES, PREDICTION, TARGET, drift_tests
from ride_duration.synthetic import DriftParams, generate_trips

SCORE_TOLERANCE = 1e-9


def _timed(call: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Return the median wall time of `repeats` calls (after one warm-up) and the last result."""
    result = call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _data(reference_rows: int, window_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from ride_duration.train import fit

    model = fit(generate_trips(20_000, seed=1))
    from ride_duration.features import frame_features

    reference = generate_trips(reference_rows, seed=2)
    window = generate_trips(window_rows, seed=3, drift=DriftParams(distance_scale=1.3, missing_share=0.1))
    for frame in (reference, window):
        frame[PREDICTION] = model.predict(frame_features(frame))
    return reference, window


def _report_scores(reference: pd.DataFrame, window: pd.DataFrame) -> Callable[[], dict[str, float]]:
    from evidently import Dataset, Report
    from evidently.metrics import ValueDrift

    from monitoring_core.drift import data_definition

    tests = drift_tests()
    definition = data_definition(tests)
    columns = list(tests)

    def run() -> dict[str, float]:
        report = Report([ValueDrift(column=c, method=t.method, threshold=t.threshold) for c, t in tests.items()])
        snapshot = report.run(
            Dataset.from_pandas(window[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        return {m["config"]["column"]: float(m["value"]) for m in snapshot.dict()["metrics"]}

    return run


def _contract_rows(window: pd.DataFrame, prefix: str) -> list[dict]:
    rows = []
    for i, record in enumerate(window[[*FIELD_NAMES, PREDICTION]].to_dict("records")):
        row = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in record.items()}
        row["lpep_pickup_datetime"] = row["lpep_pickup_datetime"].isoformat()
        row.update(request_id=f"{prefix}-{i}", timestamp="2026-11-26T12:00:00+00:00", model_version="bench")
        rows.append(row)
    return rows


def _ingestion_in_process(window: pd.DataFrame, size: int) -> tuple[float, float]:
    """Return rows/s through Window.append alone, and through validation plus append."""
    from evidently_service.rows import validate_rows
    from evidently_service.window import Window

    rows = _contract_rows(pd.concat([window] * 20, ignore_index=True), "p")
    good, bad = validate_rows(DESCRIPTION, rows[:10])
    assert not bad, bad
    prepared = validate_rows(DESCRIPTION, rows)[0]
    target = Window(DESCRIPTION, size)
    started = time.perf_counter()
    for start in range(0, len(prepared), 500):
        target.append(prepared[start : start + 500])
    append_rate = len(prepared) / (time.perf_counter() - started)
    target = Window(DESCRIPTION, size)
    started = time.perf_counter()
    for start in range(0, len(rows), 500):
        target.append(validate_rows(DESCRIPTION, rows[start : start + 500])[0])
    validated_rate = len(rows) / (time.perf_counter() - started)
    return append_rate, validated_rate


def _ingestion_http(reference: pd.DataFrame, window: pd.DataFrame, rounds: int = 3, batch: int = 500) -> list[float]:
    """Return rows/s of each round through POST /iterate of the real service process (gunicorn)."""
    import requests

    from local_stack.components import start_service

    workdir = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    reference[[*FIELD_NAMES, TARGET, PREDICTION]].to_parquet(workdir / "reference.parquet", index=False)
    (workdir / "config.yaml").write_text(
        "defaults: {window_size: 5000, min_rows: 1000, evaluation_period_seconds: 1}\n"
    )
    env = {"REFERENCE_PATH": str(workdir / "reference.parquet"), "EVIDENTLY_CONFIG": str(workdir / "config.yaml")}
    proc, url = start_service("evidently_service", workdir, env, timeout=120)
    headers = {"Content-Type": "application/json"}

    def send(bodies: list[str]) -> None:
        with requests.Session() as session:
            for body in bodies:
                session.post(f"{url}/iterate/ride_duration", data=body, headers=headers, timeout=30).raise_for_status()

    try:
        send([json.dumps(_contract_rows(window.head(batch), "warm"))])
        rates = []
        for round_ in range(rounds):
            rows = _contract_rows(pd.concat([window] * 20, ignore_index=True), f"h{round_}")
            bodies = [json.dumps(rows[s : s + batch]) for s in range(0, len(rows), batch)]
            threads = [threading.Thread(target=send, args=(bodies[k::2],)) for k in range(2)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rates.append(len(rows) / (time.perf_counter() - started))
        return rates
    finally:
        proc.stop()


def _service_evaluation(reference: pd.DataFrame, window: pd.DataFrame, repeats: int) -> float:
    """Return the median time of one full ModelMonitor.evaluate() on the window (labels on half the rows)."""
    from evidently_service.evaluator import ModelMonitor
    from evidently_service.rows import validate_rows
    from monitoring_core.calibration import CalibrationSettings
    from monitoring_core.monitoring_config import BUILTIN, ModelConfig

    settings = {key: getattr(BUILTIN, key) for key in ModelConfig.__dataclass_fields__ if hasattr(BUILTIN, key)}
    settings.update(
        name="bench",
        reference_path=Path("reference.parquet"),
        description=DESCRIPTION,
        calibration_path=None,
        tests=drift_tests(),
        min_rows=1,
        window_size=len(window),
        min_labelled_rows=1,
        segment_min_rows=50,
        calibration=CalibrationSettings(),  # as shipped; the timed evaluations reuse the simulated thresholds
    )
    settings.pop("features", None)
    monitor = ModelMonitor(ModelConfig(**settings), reference, model_version="bench")
    rows, bad = validate_rows(DESCRIPTION, _contract_rows(window, "s"))
    assert not bad, bad[:1]
    monitor.window.append(rows)
    monitor.window.add_labels([(r["request_id"], 10.0, r["timestamp"] + 600) for r in rows[::2]])
    return _timed(monitor.evaluate, repeats)[0]  # the warm-up call simulates the calibration once


def main(argv: list[str]) -> int:
    """Print evaluation times (adapter vs Report.run), their ratio, score parity and ingestion rates."""
    parser = argparse.ArgumentParser(prog="python -m bench drift_evaluation", description=__doc__)
    parser.add_argument("--reference-rows", type=int, default=5_000, help="rows in the reference")
    parser.add_argument("--window-rows", type=int, default=1_000, help="rows in the evaluated window")
    parser.add_argument("--repeats", type=int, default=15, help="timed repetitions (median reported)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP ingestion measurement")
    args = parser.parse_args(argv)

    print(f"data: {args.reference_rows} reference rows, {args.window_rows} window rows, columns {list(drift_tests())}")
    reference, window = _data(args.reference_rows, args.window_rows)
    started = time.perf_counter()
    import evidently  # noqa: F401 - timed apart: paid once per process

    imported = time.perf_counter() - started
    from monitoring_core.calibration import CalibrationSettings
    from monitoring_core.drift import DriftEvaluator

    started = time.perf_counter()
    evaluator = DriftEvaluator(reference)
    prepare = time.perf_counter() - started
    adapter_time, result = _timed(lambda: evaluator.evaluate(window), args.repeats)
    calibrated = DriftEvaluator(reference, calibration=CalibrationSettings())
    started = time.perf_counter()
    calibrated.evaluate(window)
    calibrate = time.perf_counter() - started
    calibrated_time, _ = _timed(lambda: calibrated.evaluate(window), args.repeats)
    report_time, report_scores = _timed(_report_scores(reference, window), max(3, args.repeats // 3))
    service_time = _service_evaluation(reference, window, args.repeats)

    worst = max(abs(result.columns[c].score - s) for c, s in report_scores.items())
    identical = set(report_scores) == set(result.columns) and worst <= SCORE_TOLERANCE
    ratio = report_time / adapter_time
    print(f"import evidently (once per process):      {imported * 1000:9.1f} ms")
    print(f"prepare the reference (once per model):   {prepare * 1000:9.2f} ms")
    print(f"DriftEvaluator.evaluate (one window):     {adapter_time * 1000:9.2f} ms")
    print(f"  calibrated, first call (simulates):     {calibrate * 1000:9.1f} ms")
    print(f"  calibrated, warm:                       {calibrated_time * 1000:9.2f} ms")
    print(f"Report.run, {len(report_scores)} pinned ValueDrift metrics: {report_time * 1000:9.2f} ms  (baseline)")
    print(f"speed-up: {ratio:.1f}x (target >= 20x: {'met' if ratio >= 20 else 'NOT met'})")
    print(f"scores identical to Report: {identical} (largest difference {worst:.1e}, tolerance {SCORE_TOLERANCE:g})")
    print(f"whole service evaluation (drift, data and model quality, 7 segments): {service_time * 1000:.2f} ms")

    append_rate, validated_rate = _ingestion_in_process(window, size=5_000)
    print(f"ingestion, Window.append only:      {append_rate:12,.0f} rows/s")
    print(f"ingestion, validation + append:     {validated_rate:12,.0f} rows/s")
    if not args.no_http:
        rates = _ingestion_http(reference, window)
        best, median = max(rates), statistics.median(rates)
        verdict = "met" if median >= 20_000 else "NOT met"
        print(
            f"ingestion, HTTP /iterate (batches of 500, 2 client threads, 1 gunicorn worker), {len(rates)} rounds: "
            f"median {median:,.0f} rows/s, best {best:,.0f} (target >= 20,000: {verdict})"
        )
    return 0 if identical else 1
