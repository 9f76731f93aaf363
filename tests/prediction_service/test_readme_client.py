"""The README's "Coming from the course" client, run exactly as printed, against the real service.

Seen on a fresh clone: run unchanged on a course-shaped month it served 61 rows and died on the first
400 (`raise_for_status` hid the body naming `trip_distance out_of_range`), and since it posted the labels
only after its loop, none arrived. The block is taken from README.md by its marker, so the printed client
and the tested one cannot differ.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from course_clients import write_month
from prediction_support import service_env
from pymongo import MongoClient

from local_stack.processes import wait_until
from monitoring_core.documents import label_time

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- readme-client:"
TOKEN = "readme-client-token"


def readme_python_blocks() -> list[tuple[str, str]]:
    """Return (the marker line above it, code) for every ```python block of README.md."""
    lines = README.read_text().splitlines()
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() == "```python":
            end = lines.index("```", i + 1)
            blocks.append((lines[i - 1] if i else "", "\n".join(lines[i + 1 : end]) + "\n"))
    return blocks


def readme_client() -> str:
    """Return the code of the README block under the client's marker."""
    (code,) = [code for above, code in readme_python_blocks() if above.startswith(MARKER)]
    return code


def test_every_python_block_of_the_readme_is_run_by_a_test() -> None:
    """A new snippet needs its marker (and a test that runs it), so no printed code goes untested."""
    blocks = readme_python_blocks()
    assert blocks, "README.md lost its client"
    for above, code in blocks:
        assert above.startswith(MARKER), f"untested README block (no `{MARKER}` line above it):\n{code[:200]}"
        test_file = re.search(r"(tests/\S+\.py)", above).group(1)
        assert (README.parent / test_file).exists(), above


def _month_with_refusals(path: Path, rows: int) -> tuple[Path, set[int]]:
    """A course-shaped month with out-of-range and null values; return it and the rows the API must refuse."""
    write_month(path, rows=rows, seed=26)
    table = pq.read_table(str(path)).to_pylist()
    refused = {3, 150, 151, 277}  # early, mid, and near the end: the client must keep going each time
    table[3]["trip_distance"] = 250.0  # out_of_range: real months hold such rows (about 1 in 200)
    table[150]["trip_distance"] = None  # a required field null
    table[151]["PULocationID"] = 999  # not a TLC zone
    table[277]["trip_distance"] = -1.0
    table[20]["passenger_count"] = None  # nullable: served
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(str(path))), str(path))
    return path, refused


@pytest.mark.integration
def test_the_readme_client_keeps_going_prints_reasons_and_sends_labels_as_it_goes(
    artifacts_dir: Path, tmp_path: Path, mongo, recorder, service_factory
) -> None:
    env = {**service_env(artifacts_dir, tmp_path, mongo[1], recorder), "MONITORING_TOKEN": TOKEN}
    _, url = service_factory("prediction_service", env)
    rows = 300
    month, refused = _month_with_refusals(tmp_path / "green_tripdata_2021-05.parquet", rows)
    done = subprocess.run(
        [sys.executable, "-c", readme_client()],
        cwd=tmp_path,
        env={"PREDICTION_URL": url, "MONITORING_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, out[-2000:] + done.stderr
    assert f"served {rows - len(refused)}, refused {len(refused)}" in out, out[-500:]
    reasons = [line for line in out.splitlines() if line.startswith("refused ")]
    assert len(reasons) == len(refused)
    assert all(": 400 " in line and ("trip_distance" in line or "PULocationID" in line) for line in reasons), reasons
    assert any("out_of_range" in line for line in reasons), reasons
    assert "labels not taken" not in out, out

    # Every 1-60 minute ride served got its label, and the first labels landed while rides were still being sent.
    table = pq.read_table(str(month)).to_pylist()
    expected = sum(
        1
        for i, row in enumerate(table)
        if i not in refused
        and 1 <= (row["lpep_dropoff_datetime"] - row["lpep_pickup_datetime"]).total_seconds() / 60 <= 60
    )
    with MongoClient(mongo[1], tz_aware=True) as client:
        predictions = client["prediction_service"]["predictions"]
        wait_until(
            lambda: predictions.count_documents({"target": {"$exists": True}}) == expected,
            timeout=30,
            what=f"{expected} labels on their documents",
        )
        docs = list(predictions.find({}, {"timestamp": 1, "target_timestamp": 1}))
    assert len(docs) == rows - len(refused)
    last_served = max(d["timestamp"] for d in docs)
    first_label = min(label_time(d["target_timestamp"]) for d in docs if "target_timestamp" in d)
    assert first_label < last_served  # sent as it goes, not after the loop
