"""`python -m bench reliability [--case all|faults|label_flood|slow_clients] [options]`: reliability, measured.

Each case runs on a fresh stack (nx-27017 persisted on disk, the metrics service with re-warming,
the prediction service with 2 gunicorn workers, token on).
- faults: local_stack.faults.run_scenario: MongoDB stops for `--outage` seconds and restarts on its
  port, the metrics service restarts, one worker gets SIGTERM and another SIGKILL, then the whole
  service is SIGKILLed at once and restarted, all while rides and labels flow at a steady rate; then
  MongoDB comes back empty and ids are sent 5 times each. Also times the write-ahead log's append
  (the cost each answered request pays). Targets: no failed prediction outside the kills, no answered
  prediction lost anywhere (SIGKILLs included), no duplicate (wiped database included), drift metrics
  back within one evaluation period of the metrics service answering.
- label_flood: bench/label_flood.py: /predict latency alone, then while `--flood-clients` clients post
  /feedback with unknown ids as fast as they can. Target: no failed prediction, no 5xx other than a
  503 back-pressure answer on /feedback.
- slow_clients: local_stack.slow_clients: runs a fresh stack per worker class, in the same run:
  /predict and the metrics service's /iterate probed one request at a time on new connections, first
  without, then during an attack of `--idle` idle and `--slow-header` slow-header connections on each
  service (reopened whenever the server closes them). Target: /predict p99 under 100 ms during the
  attack, nothing failed, no forwarded row dropped (checked for the first worker class, the default).
  With nginx installed, each stack is then probed through the compose proxy's config (local_stack.proxy)
  too: without an attack, with the attack through nginx, and with it on gunicorn's own port.
Prints a table per case.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.label_flood import format_flood, run_label_flood
from local_stack.faults import format_table, run_scenario, run_wiped_database
from local_stack.proxy import nginx_binary, start_proxy
from local_stack.reliability import Stack
from local_stack.slow_clients import proxy_figures, slow_client_figures


def time_wal_append(directory: Path, fsync: bool, n: int = 20_000) -> dict[str, float]:
    """Return median and p99 microseconds of one WriteAheadLog.append of a typical /predict record."""
    import time
    from datetime import UTC, datetime

    from monitoring_core.documents import prediction_document
    from prediction_service.wal import WriteAheadLog

    wal = WriteAheadLog(directory, fsync=fsync)
    values = {
        "PULocationID": 74,
        "DOLocationID": 75,
        "trip_distance": 1.2,
        "lpep_pickup_datetime": "2021-01-05T08:30:00",
    }
    record = {
        "op": "insert",
        "doc": prediction_document("x" * 32, datetime.now(UTC), "ride_duration", "v1", values, {"prediction": 12.5}),
    }
    samples = []
    for i in range(n):
        started = time.perf_counter()
        path = wal.append([record])
        samples.append((time.perf_counter() - started) * 1e6)
        if i % 100 == 99:
            wal.ack(path, 100)  # as the writer does after each batch
    wal.close(handled=True)
    samples.sort()
    return {"median_us": samples[n // 2], "p99_us": samples[int(n * 0.99)]}


def _fmt(summary: dict) -> str:
    failed = f"failed {summary['failed']}/{summary['requests']}"
    return f"p50 {summary['p50_ms']:.0f} ms, p99 {summary['p99_ms']:.0f} ms, {failed}"


def slow_clients_table(results: dict[str, dict]) -> str:
    """Return the slow-client figures, one block per worker class."""
    lines = []
    for worker_class, fig in results.items():
        lines += [
            f"{worker_class}: {fig['idle']} idle + {fig['slow_header']} slow-header connections on each service",
            f"  /predict  without: {_fmt(fig['predict_baseline'])}; during: {_fmt(fig['predict_attacked'])}",
            f"  /iterate  without: {_fmt(fig['iterate_baseline'])}; during: {_fmt(fig['iterate_attacked'])}",
            f"  forwarded rows dropped: {fig['forwarded_rows_dropped']:.0f}; "
            f"attack connections closed by the servers: {fig['attack_connections_closed_by_server']}",
        ]
        if "behind_nginx" in fig:
            nginx = fig["behind_nginx"]
            lines += [
                f"  behind nginx, /predict without: {_fmt(nginx['predict_baseline'])}; "
                f"attack through nginx: {_fmt(nginx['attack_through_proxy'])}; "
                f"attack on gunicorn's port: {_fmt(nginx['attack_on_gunicorn'])}",
            ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the chosen cases once and print their figures."""
    parser = argparse.ArgumentParser(prog="python -m bench reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=float, default=50.0, help="predictions per second (steady)")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds MongoDB stays down")
    parser.add_argument("--phase-requests", type=int, default=1000, help="requests between faults")
    parser.add_argument(
        "--case", choices=["all", "faults", "label_flood", "slow_clients"], default="all", help="which case to run"
    )
    parser.add_argument("--flood-clients", type=int, default=16, help="label-flood case: clients posting /feedback")
    parser.add_argument("--flood-seconds", type=float, default=20.0, help="label-flood case: seconds per phase")
    parser.add_argument("--wiped-ids", type=int, default=100, help="ids sent after MongoDB comes back empty")
    parser.add_argument("--idle", type=int, default=200, help="slow clients: idle connections per service")
    parser.add_argument("--slow-header", type=int, default=50, help="slow clients: slow-header connections per service")
    parser.add_argument("--attack-seconds", type=float, default=20.0, help="slow clients: seconds probed under attack")
    parser.add_argument(
        "--worker-classes",
        default="buffered,gthread,gevent",
        help="slow clients: WORKER_CLASS values, each a fresh stack",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from ride_duration.train import train

    workdir = Path(tempfile.mkdtemp(prefix="bench_reliability_"))
    results: dict = {}
    ok = True
    try:
        train(
            source="synthetic",
            rows=8_000,
            seed=7,
            out_dir=workdir / "artifacts",
            month="2021-01",
            data_dir=workdir / "artifacts",
        )
        if args.case in ("all", "label_flood"):
            stack = Stack(workdir / "flood", workdir / "artifacts", token="bench-token", workers=2)
            try:
                stack.start()
                flood = run_label_flood(
                    stack.prediction_url, stack.token, clients=args.flood_clients, seconds=args.flood_seconds
                )
            finally:
                stack.stop()
            print("\n" + format_flood(flood), flush=True)
            results["label_flood"] = flood.as_dict()
            errors = {k for k in flood.feedback_calls if k not in ("202", "503")}
            ok &= not errors and all(f["failed"] == 0 for f in (flood.alone, flood.control, flood.flooded))
        if args.case in ("all", "faults"):
            stack = Stack(workdir / "stack", workdir / "artifacts", token="bench-token", workers=2)
            try:
                stack.start()
                figures = run_scenario(
                    stack, rps=args.rps, outage_seconds=args.outage, phase_requests=args.phase_requests, progress=True
                )
                run_wiped_database(stack, figures, ids=args.wiped_ids, sends_per_id=5)
            finally:
                stack.stop()
            wal = {
                "plain write": time_wal_append(workdir / "wal-plain", fsync=False),
                "write + fdatasync": time_wal_append(workdir / "wal-fsync", fsync=True, n=2_000),
            }
            print("\n" + format_table(figures), flush=True)
            for mode, cost in wal.items():
                print(f"write-ahead log append, {mode}: median {cost['median_us']:.1f} us, p99 {cost['p99_us']:.1f} us")
            results["faults"] = {**figures.as_dict(), "wal_append": wal}
            calm = [p for name, p in figures.phases.items() if name not in ("worker_sigkill", "group_sigkill")]
            ok &= (
                all(p["failed"] == 0 for p in calm)
                and all(p["lost"] == 0 for p in figures.phases.values())
                and figures.lost == 0
                and figures.duplicates == 0
                and figures.wiped_duplicates == 0
                and figures.drift_back_seconds <= figures.drift_back_bound()
            )
        if args.case in ("all", "slow_clients"):
            slow: dict[str, dict] = {}
            for worker_class in args.worker_classes.split(","):
                print(f"[bench] slow clients, {worker_class} workers", flush=True)
                stack = Stack(
                    workdir / f"slow-{worker_class}",
                    workdir / "artifacts",
                    token="bench-token",
                    workers=2,
                    extra_env={"WORKER_CLASS": worker_class},
                )
                try:
                    stack.start()
                    slow[worker_class] = slow_client_figures(
                        stack, idle=args.idle, slow_header=args.slow_header, seconds=args.attack_seconds
                    )
                    if nginx_binary() is not None:
                        upstream = stack.prediction_url.removeprefix("http://")
                        proxy, proxy_url = start_proxy(upstream, workdir / f"nginx-{worker_class}")
                        try:
                            slow[worker_class]["behind_nginx"] = proxy_figures(
                                stack, proxy_url, args.idle, args.slow_header, args.attack_seconds
                            )
                        finally:
                            proxy.stop()
                finally:
                    stack.stop()
            print("\n" + slow_clients_table(slow), flush=True)
            results["slow_clients"] = slow
            chosen = slow[args.worker_classes.split(",")[0]]
            ok &= (
                chosen["predict_attacked"]["p99_ms"] < 100
                and chosen["predict_attacked"]["failed"] == 0
                and chosen["iterate_attacked"]["failed"] == 0
                and chosen["forwarded_rows_dropped"] == 0
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
