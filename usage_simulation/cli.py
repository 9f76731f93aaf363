"""`python -m usage_simulation`: send a scenario's traffic to any model, print a summary, and score detection.

Rows come from the model folder's reference (`--model-dir`, default `MODEL_DIR`, else the shipped taxi example)
or from a parquet file of the same columns (`--data`); features go to `/predict`, labels to `/feedback`
under the target's name. Scenarios are found by name in `<model-dir>/scenarios/`, then built in.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from monitoring_core.description import DescriptionError
from monitoring_core.model_folder import read_description
from monitoring_core.paths import DEFAULT_MODEL_DIR
from usage_simulation.rows import PhaseFeed, RowSource, SourceError
from usage_simulation.runner import RunConfig, Runner, RunResult, format_summary
from usage_simulation.scenario import ScenarioError, builtin_names, load_scenario
from usage_simulation.scoring import PrometheusClient, Scorecard, format_scorecard, score, wait_for_signals


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    p = argparse.ArgumentParser(prog="python -m usage_simulation", description=__doc__)
    p.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR),
        help="the model folder (model.yaml, reference.parquet, scenarios/) whose traffic to simulate "
        "(default: MODEL_DIR, else models/ride_duration)",
    )
    p.add_argument(
        "--scenario",
        default="baseline",
        help="a scenario name (the model folder's scenarios/, then the built-in "
        f"{', '.join(builtin_names())}) or the path of a scenario YAML file",
    )
    p.add_argument(
        "--list-scenarios", action="store_true", help="print the scenarios known for the model folder and exit"
    )
    p.add_argument("--url", default="http://127.0.0.1:9696", help="base URL of the prediction service")
    p.add_argument("--rps", type=float, default=20.0, help="target requests per second")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, help="run length in seconds (phases scale to it)")
    length.add_argument("--rows", type=int, help="send this many rows (run length = rows / rps)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    p.add_argument("--timeout", type=float, default=5.0, help="per-request timeout in seconds")
    p.add_argument(
        "--data",
        type=Path,
        help="a parquet file with the model's features and target to draw rows from (default: its reference)",
    )
    p.add_argument("--seed", type=int, default=42, help="seed for rows, faults and label delays")
    p.add_argument("--feedback-share", type=float, default=0.8, help="share of rows whose ground truth arrives")
    p.add_argument(
        "--feedback-delay",
        type=float,
        default=5.0,
        help="mean delay in seconds before a row's ground truth is sent (jittered +-50%%)",
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
    source = RowSource.from_model_dir(args.model_dir, args.data, seed=args.seed)
    scenario = load_scenario(args.scenario, args.model_dir, source.description)
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
    result = Runner(config, scenario, PhaseFeed(source)).run()
    print(format_summary(result), flush=True)
    card = None
    if args.prometheus_url and not result.interrupted:
        client = PrometheusClient(args.prometheus_url)
        wait_for_signals(client, scenario, result, args.settle)
        card = score(client, scenario, result, model=source.description.name)
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
        for name in builtin_names(args.model_dir):
            print(f"{name:<20} {load_scenario(name, args.model_dir).description}")
        return 0
    if args.rps <= 0 or args.concurrency < 1 or (args.duration is not None and args.duration <= 0):
        print("error: --rps and --duration must be > 0 and --concurrency >= 1", file=sys.stderr)
        return 2
    try:
        load_scenario(args.scenario, args.model_dir, read_description(args.model_dir / "model.yaml"))
    except (ScenarioError, DescriptionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # SIGTERM stops as cleanly as Ctrl-C: the summary is still printed.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _main_thread() else None
    try:
        result, card = run_and_score(args)
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
