"""`python -m usage_simulation`: send a scenario's traffic, print a summary, and score detection in Prometheus."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from usage_simulation.rides import PhaseFeed, RideSource
from usage_simulation.runner import RunConfig, Runner, RunResult, format_summary
from usage_simulation.scenario import ScenarioError, builtin_names, load_scenario
from usage_simulation.scoring import PrometheusClient, Scorecard, format_scorecard, score, wait_for_signals


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="python -m usage_simulation", description=__doc__)
    p.add_argument(
        "--scenario",
        default="baseline",
        help=f"a built-in scenario ({', '.join(builtin_names())}) or the path of a scenario YAML file",
    )
    p.add_argument("--list-scenarios", action="store_true", help="print the built-in scenarios and exit")
    p.add_argument("--url", default="http://127.0.0.1:9696", help="base URL of the prediction service")
    p.add_argument("--rps", type=float, default=20.0, help="target requests per second")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, help="run length in seconds (phases scale to it)")
    length.add_argument("--rows", type=int, help="send this many rides (run length = rows / rps)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    p.add_argument("--timeout", type=float, default=5.0, help="per-request timeout in seconds")
    p.add_argument("--data", type=Path, help="a TLC green-taxi parquet file to replay instead of synthetic rides")
    p.add_argument("--seed", type=int, default=42, help="seed for rides, label delays and schema changes")
    p.add_argument("--feedback-share", type=float, default=0.8, help="share of rides whose ground truth arrives")
    p.add_argument(
        "--feedback-delay",
        type=float,
        default=5.0,
        help="mean delay in seconds before a ride's ground truth is sent (jittered +-50%%)",
    )
    p.add_argument("--prometheus-url", help="score detection against this Prometheus after the run")
    p.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="seconds to wait after the run for expected signals still on their way",
    )
    p.add_argument("--json", type=Path, dest="json_path", help="write the run summary and scoring here as JSON")
    p.add_argument(
        "--fail-on-miss", action="store_true", help="exit 1 when an expected signal did not fire or a false alarm fired"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_and_score(args: argparse.Namespace) -> tuple[RunResult, Scorecard | None]:
    """Run the scenario, then score it when a Prometheus URL is given; print both."""
    scenario = load_scenario(args.scenario)
    config = RunConfig(
        url=args.url.rstrip("/"),
        rps=args.rps,
        duration_seconds=args.duration,
        rows=args.rows,
        concurrency=args.concurrency,
        timeout_seconds=args.timeout,
        feedback_share=args.feedback_share,
        feedback_delay_seconds=args.feedback_delay,
        seed=args.seed,
        token=os.environ.get("MONITORING_TOKEN") or None,
        progress=not args.no_progress,
    )
    feed = PhaseFeed(RideSource(seed=args.seed, data_path=args.data), seed=args.seed)
    result = Runner(config, scenario, feed).run()
    print(format_summary(result), flush=True)
    card = None
    if args.prometheus_url and not result.interrupted:
        client = PrometheusClient(args.prometheus_url)
        wait_for_signals(client, scenario, result, args.settle)
        card = score(client, scenario, result)
        print(format_scorecard(card), flush=True)
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"run": result.summary(), "scoring": card.to_dict() if card else None}
        args.json_path.write_text(json.dumps(payload, indent=2))
    return result, card


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, and return the exit status (130 after Ctrl-C)."""
    args = parser().parse_args(argv)
    if args.list_scenarios:
        for name in builtin_names():
            print(f"{name:<20} {load_scenario(name).description}")
        return 0
    if args.rps <= 0 or args.concurrency < 1 or (args.duration is not None and args.duration <= 0):
        print("error: --rps and --duration must be > 0 and --concurrency >= 1", file=sys.stderr)
        return 2
    try:
        load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # SIGTERM stops as cleanly as Ctrl-C: the summary is still printed.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        result, card = run_and_score(args)
    except KeyboardInterrupt:
        print("interrupted while scoring: the run summary above stands, no scoring", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if result.interrupted:
        return 130
    if args.fail_on_miss and card is not None and (not card.detected_all or card.false_alarms):
        return 1
    return 0


def _main_thread() -> bool:
    # signal.signal only works in the main thread (the demo and tests may call main from others).
    return threading.current_thread() is threading.main_thread()
