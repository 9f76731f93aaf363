"""How fast the simulator can drive a service, and how closely it keeps a target rate.

`python -m bench simulator [--seconds S] [--concurrency N]`

Both against the same in-process HTTP recorder (local_stack.recorder), measured in one run:
- baseline: a plain loop posting the same request bodies one after another on one requests.Session;
- the runner flat out (a target far above what the loop reaches) with `--concurrency` workers;
- the runner at 100 rides/s: achieved rate and the largest gap between two sends (evenness).

The recorder answers each request in about 40 ms here (it writes headers and body in two
packets, so TCP's delayed ACK applies), like a service with real latency: a sequential caller
is latency-bound, which is why the runner keeps `--concurrency` requests in flight.
"""

from __future__ import annotations

import argparse
import time

import requests

from local_stack.recorder import Recorder
from ride_duration.schema import DESCRIPTION
from ride_duration.synthetic import generate_trips
from usage_simulation.rows import PhaseFeed, RowSource
from usage_simulation.runner import RunConfig, Runner
from usage_simulation.scenario import load_scenario


def _feed() -> PhaseFeed:
    """Return a feed of reference-like taxi rows (generated, as the reference is)."""
    return PhaseFeed(RowSource(DESCRIPTION, generate_trips(5_000, seed=1), seed=1))


def _baseline(url: str, seconds: float) -> float:
    """Return rides/s of a sequential post loop on one Session."""
    feed, phase = _feed(), load_scenario("baseline").phases[0]
    feed.prime([(0, phase)])
    session, sent = requests.Session(), 0
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    while time.monotonic() < deadline:
        body, _ = feed.next(0, phase)
        session.post(f"{url}/predict", json=body, timeout=5)
        sent += 1
    return sent / (time.monotonic() - started)


def _runner(url: str, seconds: float, rps: float, concurrency: int) -> tuple[float, float]:
    """Return (achieved rides/s, largest gap between sends in seconds) of the runner."""
    config = RunConfig(
        url=url, rps=rps, duration_seconds=seconds, concurrency=concurrency, feedback_share=0.0, progress=False
    )
    result = Runner(config, load_scenario("baseline"), _feed()).run()
    times = list(result.send_times)
    gap = max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)
    return result.summary()["achieved_rps"], gap


def main(argv: list[str]) -> int:
    """Measure and print the baseline, the runner flat out, and the runner at a set rate."""
    parser = argparse.ArgumentParser(prog="python -m bench simulator", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="runner workers")
    args = parser.parse_args(argv)
    recorder = Recorder(keep_bodies=False).start()
    try:
        base = _baseline(recorder.url, args.seconds)
        flat, _ = _runner(recorder.url, args.seconds, rps=100_000, concurrency=args.concurrency)
        paced, gap = _runner(recorder.url, args.seconds, rps=100, concurrency=args.concurrency)
    finally:
        recorder.stop()
    print(f"sequential loop, one Session (baseline): {base:8.1f} rides/s")
    print(f"runner flat out, {args.concurrency} workers:           {flat:8.1f} rides/s  ({flat / base:.2f}x baseline)")
    print(
        f"runner at 100 rides/s:                    {paced:8.1f} rides/s  (largest gap {gap * 1000:.0f} ms,"
        f" target 10 ms)"
    )
    return 0
