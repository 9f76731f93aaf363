"""Replicas sharing one spool volume each lock their own subfolder (PREDICTION_SPOOL_PER_REPLICA)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prediction_support import RIDE

from prediction_service.replica import claim_slot


def test_each_replica_locks_a_different_slot_and_a_freed_one_is_taken_again(tmp_path: Path) -> None:
    first, first_lock = claim_slot(tmp_path)
    second, second_lock = claim_slot(tmp_path)
    assert (first.name, second.name) == ("replica-1", "replica-2")
    (second / "seg-1-1-5.jsonl").write_text("{}\n" * 5)  # records of a replica that then stops
    os.close(second_lock)
    again, lock = claim_slot(tmp_path)
    assert again == second and (again / "seg-1-1-5.jsonl").exists()  # the next replica replays them
    os.close(first_lock)
    os.close(lock)


def test_a_slot_held_by_another_process_is_skipped(tmp_path: Path) -> None:
    # Another replica's master (here: a child process) holds replica-1 for as long as it lives.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from prediction_service.replica import claim_slot;"
            f"print(claim_slot(Path({str(tmp_path)!r}))[0].name, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "replica-1"
        mine, lock = claim_slot(tmp_path)
        assert mine.name == "replica-2"
        os.close(lock)
    finally:
        holder.kill()
        holder.wait()
    mine, lock = claim_slot(tmp_path)
    assert mine.name == "replica-1"  # released when its holder died, however it died
    os.close(lock)


@pytest.mark.integration
def test_two_services_on_one_spool_folder_spool_apart(tmp_path: Path, artifacts_dir: Path, service_factory) -> None:
    shared = tmp_path / "volume"
    env = {
        "MODEL_DIR": str(artifacts_dir),
        "MONGODB_URI": "mongodb://127.0.0.1:9",  # nothing there: every record goes to the spool
        "PREDICTION_FORWARD_TO_METRICS": "false",
        "PREDICTION_SPOOL_DIR": str(shared),
        "PREDICTION_SPOOL_PER_REPLICA": "true",
        "WORKERS": "1",
    }
    first = service_factory("prediction_service", {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "m1")})
    second = service_factory("prediction_service", {**env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "m2")})
    for (proc, url), count in ((first, 3), (second, 2)):
        for _ in range(count):
            assert requests.post(f"{url}/predict", json=RIDE, timeout=10).status_code == 200
        proc.stop(timeout=30)  # SIGTERM: the unwritten records are spooled
    spooled = {slot.name: sum(_records(p.name) for p in slot.glob("*.jsonl")) for slot in shared.glob("replica-*/")}
    assert sorted(spooled.values()) == [2, 3] and set(spooled) == {"replica-1", "replica-2"}


def _records(name: str) -> int:
    # seg-<ns>-<pid>-<count>.jsonl: the spool names each segment with its record count
    return int(name.split(".jsonl")[0].rsplit("-", 1)[1])
