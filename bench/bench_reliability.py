"""Fault injection under steady load, longer than the test: the figures behind the README's reliability table.

`python -m bench reliability [--cases faults,slow_clients] [--rps R] [--outage S] [--phase-requests N]
[--idle N] [--slow-header N] [--attack-seconds S] [--worker-classes gevent,gthread] [--json PATH]`

Runs local_stack.faults.run_scenario on a fresh stack (nx-27017 persisted on disk, the metrics
service with re-warming, the prediction service with 2 gunicorn workers, token on): MongoDB stops
for `--outage` seconds and restarts on its port, the metrics service restarts, one worker gets
SIGTERM and another SIGKILL, all while rides and labels flow at a steady rate. Prints the table.
Targets: no failed prediction and no lost document outside the SIGKILL, no duplicate, drift metrics
back within one evaluation period of the metrics service answering.

The slow-client case (local_stack.slow_clients) runs a fresh stack per worker class, in the same run:
/predict and the metrics service's /iterate probed one request at a time on new connections, first
without, then during an attack of `--idle` idle and `--slow-header` slow-header connections on each
service (reopened whenever the server closes them). Target: /predict p99 under 100 ms during the
attack, nothing failed, no forwarded row dropped (checked for the first worker class, the default).
With nginx installed, each stack is then probed through the compose proxy's config (local_stack.proxy)
too: without an attack, with the attack through nginx, and with it on gunicorn's own port.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from local_stack.faults import format_table, run_scenario
from local_stack.proxy import nginx_binary, start_proxy
from local_stack.reliability import Stack
from local_stack.slow_clients import proxy_figures, slow_client_figures


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
    parser.add_argument("--cases", default="faults,slow_clients", help="comma-separated: faults, slow_clients")
    parser.add_argument("--rps", type=float, default=50.0, help="predictions per second (steady)")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds MongoDB stays down")
    parser.add_argument("--phase-requests", type=int, default=1000, help="requests between faults")
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
    cases = set(args.cases.split(","))

    from ride_duration.train import train

    workdir = Path(tempfile.mkdtemp(prefix="bench_reliability_"))
    figures = None
    slow: dict[str, dict] = {}
    try:
        train(
            source="synthetic",
            rows=8_000,
            seed=7,
            out_dir=workdir / "artifacts",
            month="2021-01",
            data_dir=workdir / "artifacts",
        )
        if "faults" in cases:
            stack = Stack(workdir / "stack", workdir / "artifacts", token="bench-token", workers=2)
            try:
                stack.start()
                figures = run_scenario(
                    stack, rps=args.rps, outage_seconds=args.outage, phase_requests=args.phase_requests, progress=True
                )
            finally:
                stack.stop()
        if "slow_clients" in cases:
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
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ok = True
    if figures is not None:
        print("\n" + format_table(figures))
        calm = [p for name, p in figures.phases.items() if name != "worker_sigkill"]
        ok = (
            all(p["failed"] == 0 and p["lost"] == 0 for p in calm)
            and figures.duplicates == 0
            and figures.drift_back_seconds <= figures.evaluation_period_seconds
        )
    if slow:
        print("\n" + slow_clients_table(slow))
        chosen = slow[args.worker_classes.split(",")[0]]
        ok = ok and (
            chosen["predict_attacked"]["p99_ms"] < 100
            and chosen["predict_attacked"]["failed"] == 0
            and chosen["iterate_attacked"]["failed"] == 0
            and chosen["forwarded_rows_dropped"] == 0
        )
    if args.json:
        out = {"slow_clients": slow}
        if figures is not None:
            out["faults"] = figures.as_dict()
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
