"""Checks the two live scenario modules (taxi, classifier) share: one stack each, the same waits."""

from __future__ import annotations

import time
from collections.abc import Callable

from local_stack.components import prometheus_query
from local_stack.processes import wait_until
from usage_simulation.rows import PhaseFeed
from usage_simulation.runner import RunConfig, Runner


def wait_for_first_verdict(prometheus: str, model: str) -> None:
    """Wait until the metrics service exported a drift verdict for `model` (the thresholds' calibration is done).

    The first verdicts wait for the calibration: minutes on a loaded machine, longer than a scenario's settle.
    """
    wait_until(
        lambda: prometheus_query(prometheus, f'evidently_feature_drift_detected{{model="{model}"}}'),
        timeout=300,
        what=f"the metrics service's first drift verdict for {model}",
    )


def assert_estimate_fired_without_labels(run, table: str, prometheus: str, firing: str) -> None:
    """Every expected signal (PerformanceEstimateDegraded included) came with no label sent, and the alert fires."""
    assert run.feedback.sent == 0 and run.feedback.scheduled == 0, table
    # ... and the alert goes from pending to firing (the rules' `for:` shortened to 1 s in the live stacks).
    wait_until(lambda: prometheus_query(prometheus, firing), timeout=30, what="estimate alert firing")


# Rows a refill sends: more than the live stacks' 800-row window, so no row of the previous scenario is left.
REFILL_SECONDS = 8.0


def wait_until_quiet(prometheus: str, queries: list[str], hold_seconds: float = 5.0, timeout: float = 180.0) -> None:
    """Wait until none of `queries` returns a series for `hold_seconds` in a row.

    One clear reading is not enough after a refill: while the previous scenario's rows and labels leave the
    window, a quality alert can go off for an evaluation and come back (seen as a "false alarm" at +3 s of
    the next scenario's clean phase).
    """
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        loud = [q for q in queries if prometheus_query(prometheus, q)]
        if loud:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= hold_seconds:
            return
        if now > deadline:
            raise TimeoutError(f"not quiet for {hold_seconds:g} s within {timeout:g} s: {loud or 'flapping'}")
        time.sleep(0.5)


def refill_until_quiet(
    stack, rps: int, scenario, source_for_seed: Callable[[int], object], queries: list[str], attempts: int = 2
) -> None:
    """Send a window of clean rows (`scenario`, rows from `source_for_seed(seed)`) until no query fires.

    Each attempt sends a new sample. Without traffic the window stays as the refill left it, and so does every
    verdict on it: a refill whose clean sample happens to be flagged (each feature at its stated false-alarm
    rate), or one cut short on a loaded machine, would stay loud for ever.
    """
    for attempt in range(attempts):
        seed = 99 + attempt
        config = RunConfig(
            url=stack.urls["prediction_service"],
            rps=rps,
            duration_seconds=REFILL_SECONDS,
            feedback_delay_seconds=0.5,
            feedback_share=0.9,
            token=stack.token,
            progress=False,
            seed=seed,
        )
        Runner(config, scenario, PhaseFeed(source_for_seed(seed))).run()
        try:
            wait_until_quiet(stack.urls["prometheus"], queries)
            return
        except TimeoutError:
            if attempt == attempts - 1:
                raise
