"""Checks the two live scenario modules (taxi, classifier) share: one stack each, the same waits."""

from __future__ import annotations

from local_stack.components import prometheus_query
from local_stack.processes import wait_until


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
