"""Faults under steady load, on real processes over loopback: serving never fails, MongoDB gets every prediction once.

The scenario (local_stack/faults.py) stops MongoDB and restarts it, restarts the metrics service
(re-warming on), restarts one prediction worker gracefully and crashes another, SIGKILLs the whole
prediction service, all while rides flow; then MongoDB comes back empty and ids are sent again.
The figures are printed (pytest -s) and written to a JSON file; `python -m bench reliability` runs
the same scenario longer for the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local_stack.faults import format_table, run_scenario, run_wiped_database
from local_stack.reliability import Stack

pytestmark = pytest.mark.integration

TOKEN = "faults-token"


# A small window, verdicts from 300 rows (the derived minimum is lower; a value only raises it): the test stays short.
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
        run_wiped_database(stack, figures, ids=20, sends_per_id=5)
    finally:
        stack.stop()
    (tmp_path / "faults.json").write_text(json.dumps(figures.as_dict(), indent=2))
    print("\n" + format_table(figures))

    calm = {name: p for name, p in figures.phases.items() if name not in ("worker_sigkill", "group_sigkill")}
    # MongoDB down, metrics service down, a worker restarted gracefully: no client notices.
    assert all(p["failed"] == 0 for p in calm.values()), figures.failure_samples
    # Whatever was answered reached MongoDB, in every phase: a SIGKILLed worker, or the whole service
    # SIGKILLed at once, loses only requests in flight (never answered); the write-ahead log keeps the rest.
    assert all(p["lost"] == 0 for p in figures.phases.values()), figures.phases
    assert figures.lost == 0
    assert figures.group_answered_before_kill > 0
    assert figures.spooled_peak > 0, "the outage was too short to reach the spool"
    assert figures.duplicates == 0
    # Stored but never answered: a request in flight when its worker died (logged, no reply), or one that
    # waited in the listen backlog longer than the client's timeout while the restarted service booted.
    assert figures.unexpected_documents <= figures.failed, figures.phases
    assert figures.worker_restart_seconds < 10
    # MongoDB back empty: the indexes are recreated before the retried ids land, so each id is stored once.
    assert figures.wiped_documents == figures.wiped_ids
    assert figures.wiped_duplicates == 0
    assert figures.wiped_indexes_missing == []
    # Re-warmed from MongoDB, the metrics service exports drift within one evaluation period of answering
    # (plus what that evaluation takes to compute: seconds of CPU on a loaded machine).
    assert figures.window_rows_after_restart >= 300
    assert figures.drift_back_seconds <= figures.drift_back_bound(), figures
