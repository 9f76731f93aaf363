"""Repeated looks: clean traffic for a long run against the real stack; how many drift alerts fire?

`python -m bench repeated_looks [--minutes M] [--rps R]`

The metrics service evaluates every few seconds on overlapping windows, so a per-evaluation
false-alarm rate turns into alerts over time. This starts nx-27017, the metrics service (the demo's
config: 800-row window, evaluated every 2 s), the prediction service and a real Prometheus with the
project's rules and their production `for:` (10 min for DataDriftDetected and MultivariateDriftDetected,
15 min for FeatureDriftDetected and SegmentDriftDetected), sends the simulator's `baseline` scenario
(reference-like rides only) at the demo rate, and counts from Prometheus: scrapes with a drift verdict,
scrapes that flagged the dataset, a feature, a segment or the joint detector, and the drift alerts that
went pending or fired. Goal: no alert fires. Prints the load average and the CPU the stack used.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from local_stack.components import prometheus_query
from local_stack.demo import DEMO_EVIDENTLY_CONFIG, start_stack
from local_stack.processes import wait_until

ALERTS = ("DataDriftDetected", "FeatureDriftDetected", "SegmentDriftDetected", "MultivariateDriftDetected")


def _train(out: Path) -> Path:
    from ride_duration.train import train

    train(source="synthetic", rows=8_000, seed=7, out_dir=out, month="2021-01", data_dir=out)
    return out


def _value(url: str, promql: str) -> float:
    result = prometheus_query(url, promql)
    return float(result[0]["value"][1]) if result else 0.0


def _report(url: str, minutes: float) -> dict[str, object]:
    """Return the counts over the last `minutes` of the run, from Prometheus."""
    window = f"[{int(minutes * 60)}s]"
    features = {
        r["metric"]["feature"]: float(r["value"][1])
        for r in prometheus_query(url, f"sum by (feature) (sum_over_time(evidently_feature_drift_detected{window}))")
    }
    alerts = {}
    for state in ("pending", "firing"):
        for alert in ALERTS:
            series = prometheus_query(
                url, f'max_over_time(ALERTS{{alertname="{alert}", alertstate="{state}"}}{window})'
            )
            alerts[f"{alert} {state}"] = len(series)
    return {
        "verdict scrapes": _value(url, f"sum(count_over_time(evidently_dataset_drift{window}))"),
        "dataset drift scrapes": _value(url, f"sum(sum_over_time(evidently_dataset_drift{window}))"),
        "feature drift scrapes": features,
        "segment flag scrapes": _value(url, f"sum(sum_over_time(evidently_segment_drift_flagged{window}))"),
        "joint drift scrapes": _value(url, f"sum(sum_over_time(evidently_multivariate_drift_detected{window}))"),
        "window rows (last)": _value(url, "max(evidently_window_rows)"),
        "min rows (last)": _value(url, "max(evidently_window_min_rows)"),
        **alerts,
    }


def main(argv: list[str]) -> int:
    """Run the clean traffic and print the counts; fail when a drift alert fired."""
    from monitoring_core.paths import DEFAULT_MODEL_DIR, REFERENCE_FILE
    from usage_simulation.rows import PhaseFeed, RowSource
    from usage_simulation.runner import RunConfig, Runner
    from usage_simulation.scenario import load_scenario

    parser = argparse.ArgumentParser(prog="python -m bench repeated_looks", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the clean run")
    parser.add_argument("--rps", type=float, default=20.0, help="rides per second (the demo's rate)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated rides")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, Prometheus data)")
    args = parser.parse_args(argv)

    print(f"[repeated_looks] load average before: {os.getloadavg()[0]:.1f}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench_repeated_looks_"))
    print(f"[repeated_looks] training a model in {workdir}", flush=True)
    artifacts = _train(workdir / "artifacts")
    stack = start_stack(workdir, artifacts, evidently_config=DEMO_EVIDENTLY_CONFIG, alert_for=None, default_ports=False)
    try:
        url = stack.urls["prometheus"]
        wait_until(lambda: prometheus_query(url, 'up{job="evidently_service"} == 1'), timeout=60, what="first scrape")
        config = RunConfig(
            url=stack.urls["prediction_service"],
            rps=args.rps,
            duration_seconds=args.minutes * 60,
            feedback_delay_seconds=3,
            token=stack.token,
            progress=False,
            seed=args.seed,
        )
        started = time.time()
        print(f"[repeated_looks] baseline scenario: {args.minutes:g} min at {args.rps:g} rides/s", flush=True)
        source = RowSource.from_model_dir(DEFAULT_MODEL_DIR, artifacts / REFERENCE_FILE, seed=args.seed)
        run = Runner(config, load_scenario("baseline"), PhaseFeed(source)).run()
        time.sleep(5)  # the last evaluation and scrape
        minutes = (time.time() - started) / 60
        counts = _report(url, minutes)
        print(f"[repeated_looks] {run.totals().sent} rides sent in {minutes:.1f} min, errors {run.totals().errors}")
        for name, value in counts.items():
            print(f"  {name:28s} {value}")
        fired = sum(v for k, v in counts.items() if k.endswith("firing"))
        print(f"[repeated_looks] drift alerts fired: {fired} (goal: 0); load average {os.getloadavg()[0]:.1f}")
        return 0 if fired == 0 else 1
    finally:
        stack.stop()
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = resource.getrusage(resource.RUSAGE_SELF)
        print(
            f"[repeated_looks] CPU: stack processes {used.ru_utime + used.ru_stime:.0f} s, "
            f"this process (simulator) {mine.ru_utime + mine.ru_stime:.0f} s",
            flush=True,
        )
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
