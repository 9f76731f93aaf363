"""Faults under steady load, on real processes over loopback: serving never fails, MongoDB gets every prediction once.

The scenario (local_stack/faults.py) stops MongoDB and restarts it, restarts the metrics service
(re-warming on), restarts one prediction worker gracefully and crashes another, all while rides flow.
The figures are printed (pytest -s) and written to a JSON file; `python -m bench reliability` runs
the same scenario longer for the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_stack.faults import format_table, run_scenario
from local_stack.reliability import Stack

pytestmark = pytest.mark.integration

TOKEN = "faults-token"


# A small window, verdicts from 300 rows (the derived minimum is lower; a value can only raise it): the test stays short.
SMALL_WINDOW = """\
defaults:
  window_size: 400
  min_rows: 300
  evaluation_period_seconds: 2
  features:
    PULocationID: {threshold: 0.3}
    DOLocationID: {threshold: 0.3}
"""


def test_faults_under_load_fail_no_prediction_and_lose_no_document(artifacts_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "evidently.yaml"
    config.write_text(SMALL_WINDOW)
    stack = Stack(tmp_path / "stack", artifacts_dir, token=TOKEN, workers=2, evidently_config=config)
    try:
        stack.start()
        figures = run_scenario(stack, rps=40, outage_seconds=4, phase_requests=160, progress=True)
    finally:
        stack.stop()
    (tmp_path / "faults.json").write_text(json.dumps(figures.as_dict(), indent=2))
    print("\n" + format_table(figures))

    calm = {name: p for name, p in figures.phases.items() if name != "worker_sigkill"}
    # MongoDB down, metrics service down, a worker restarted gracefully: no client notices.
    assert all(p["failed"] == 0 for p in calm.values()), figures.failure_samples
    assert all(p["lost"] == 0 for p in calm.values()), figures.phases
    assert figures.spooled_peak > 0, "the outage was too short to reach the spool"
    assert figures.duplicates == 0
    assert figures.unexpected_documents <= figures.phases["worker_sigkill"]["failed"]
    # A crashed worker (SIGKILL, OOM) loses what it held: its in-flight requests and the accepted
    # predictions not yet written (at most one flush interval, 0.2 s, of its traffic plus one batch
    # in write); it is replaced within a second or so.
    kill = figures.phases["worker_sigkill"]
    assert kill["failed"] + kill["lost"] <= 20, figures.phases
    assert figures.worker_restart_seconds < 10
    # Re-warmed from MongoDB, the metrics service exports drift within one evaluation period of answering.
    assert figures.window_rows_after_restart >= 300
    assert figures.drift_back_seconds <= figures.evaluation_period_seconds
