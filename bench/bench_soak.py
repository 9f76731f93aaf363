"""Soak: steady traffic through both services for a long run; their memory (RSS) must stay flat.

`python -m bench soak [--minutes M] [--rps R] [--workers N]`

Starts nx-27017, the metrics service (packaged config: a bounded window) and the prediction
service (gunicorn, logging to MongoDB and forwarding, token on), sends reference-like rides at a
steady rate with labels for a fifth of them, and samples the resident memory of the prediction
service (master + workers) and of the metrics service. The baseline is the RSS after a warm-up
(imports done, window filled, first evaluations run); the end is the RSS after the full run.
Target: end / start <= 1.15 for both, every accepted prediction in MongoDB exactly once.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from local_stack.reliability import Stack, SteadyTraffic, rss_kib, tree_rss_kib

TARGET_RATIO = 1.15


def _train(out: Path) -> Path:
    from ride_duration.train import train

    train(source="synthetic", rows=8_000, seed=7, out_dir=out, month="2021-01", data_dir=out)
    return out


def _sample(stack: Stack) -> tuple[int, int]:
    """Return (prediction service master+workers, metrics service) RSS in KiB."""
    return tree_rss_kib(stack.prediction.pid), tree_rss_kib(stack.metrics.pid)


def main(argv: list[str]) -> int:
    """Run the soak and print RSS at start and end with their ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the measured run")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of traffic before the start sample")
    parser.add_argument("--rps", type=float, default=40.0, help="predictions per second (steady)")
    parser.add_argument("--workers", type=int, default=2, help="prediction service gunicorn workers")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between progress samples")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_soak_"))
    print(f"[soak] training a model in {workdir}", flush=True)
    artifacts = _train(workdir / "artifacts")
    stack = Stack(
        workdir,
        artifacts,
        token="soak-token",
        workers=args.workers,
        evidently_config=Path("monitoring_core/monitoring.yaml").resolve(),
    )
    status = 1
    try:
        stack.start()
        with SteadyTraffic(stack.prediction_url, args.rps, "soak", token=stack.token) as traffic:
            print(f"[soak] warm-up {args.warmup:.0f} s at {args.rps:.0f} rides/s", flush=True)
            time.sleep(args.warmup)  # a benchmark's measured interval, not a readiness wait
            start = _sample(stack)
            sent_at_start = traffic.sent
            t0 = time.monotonic()
            end_at = t0 + args.minutes * 60
            while (now := time.monotonic()) < end_at:
                time.sleep(min(args.every, end_at - now))
                pred, metr = _sample(stack)
                print(
                    f"[soak] {time.monotonic() - t0:5.0f} s: sent {traffic.sent}, failed {len(traffic.failures)}, "
                    f"RSS prediction {pred / 1024:.1f} MiB, metrics {metr / 1024:.1f} MiB, "
                    f"backlog {stack.prediction_backlog():.0f}",
                    flush=True,
                )
            end = _sample(stack)
            measured = traffic.sent - sent_at_start
        stack.wait_drained()
        accepted = set(traffic.accepted)
        ids = [d["request_id"] for d in stack.predictions().find({}, {"request_id": 1, "_id": 0})]
        lost = len(accepted - set(ids))
        duplicates = len(ids) - len(set(ids))
        mongo_rss = rss_kib(stack.mongo.pid)
        print(f"\nsoak: {args.minutes:g} min measured at {args.rps:g} rides/s after {args.warmup:.0f} s warm-up")
        print(
            f"requests sent {traffic.sent} ({measured} measured), failed {len(traffic.failures)}, "
            f"labels sent {traffic.labels_sent} (failed calls {len(traffic.label_failures)}), "
            f"documents {len(ids)}, lost {lost}, duplicates {duplicates}"
        )
        print(f"{'process':<34} {'start MiB':>10} {'end MiB':>10} {'end/start':>10}")
        ok = not traffic.failures and lost == 0 and duplicates == 0
        for name, a, b in (
            (f"prediction_service (1+{args.workers} procs)", start[0], end[0]),
            ("evidently_service", start[1], end[1]),
        ):
            ratio = b / a
            ok &= ratio <= TARGET_RATIO
            print(f"{name:<34} {a / 1024:>10.1f} {b / 1024:>10.1f} {ratio:>10.3f}  (target <= {TARGET_RATIO})")
        print(f"(nx-27017, the MongoDB stand-in, holds every document in SQLite: {mongo_rss / 1024:.1f} MiB at end)")
        for failure in traffic.failures[:5]:
            print(f"  failed: {failure}")
        status = 0 if ok else 1
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
