"""The course's client against the real service (gunicorn, nx-27017, a recording metrics service).

200 whole TLC rows, one POST each as the course's `send_data.py` does: every row served with its
id echoed, logged with its 15 other columns under `extra_fields`, forwarded with their names, and
the course's `target.csv` step (labels by id) joined onto the right documents through /feedback.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import requests
from course_clients import EXTRA_COLUMNS, course_bodies, write_month

from local_stack.processes import wait_until
from monitoring_core.documents import label_time
from monitoring_core.unknown_fields import EXTRA_FIELDS, UNKNOWN_FIELDS
from ride_duration.schema import FIELD_NAMES

pytestmark = pytest.mark.integration


def test_course_rows_are_served_logged_with_their_extras_and_joined_by_id(shared_stack, tmp_path: Path) -> None:
    stack = shared_stack
    month = write_month(tmp_path / "green_tripdata_2021-05.parquet", rows=200, seed=11)
    bodies = course_bodies(month, "pyarrow_isoformat")
    kept_before = stack.metric("prediction_unknown_fields_total", outcome="kept")
    served = []
    with requests.Session() as session:
        for row_id, body, truth in bodies:
            response = session.post(
                f"{stack.url}/predict", data=body, headers={"Content-Type": "application/json"}, timeout=10
            )
            assert response.status_code == 200, response.text
            assert response.json()["request_id"] == row_id
            served.append((row_id, json.loads(body), truth))
    assert len(served) == 200

    ids = [row_id for row_id, _, _ in served]
    collection = stack.predictions
    query = {"request_id": {"$in": ids}}
    wait_until(lambda: collection.count_documents(query) == len(ids), timeout=20, what="200 documents")
    docs = {d["request_id"]: d for d in collection.find(query, {"_id": 0})}
    for row_id, row, _ in served:
        doc = docs[row_id]
        assert set(doc[EXTRA_FIELDS]) == set(EXTRA_COLUMNS)
        assert doc[EXTRA_FIELDS] == {name: row[name] for name in EXTRA_COLUMNS}  # as sent: nulls, strings, numbers
        assert doc["PULocationID"] == row["PULocationID"] and doc["trip_distance"] == row["trip_distance"]
        assert doc["passenger_count"] == (None if row["passenger_count"] is None else int(row["passenger_count"]))
    assert any(doc["passenger_count"] is None for doc in docs.values())  # the ~10% street-hail rows

    def forwarded() -> list[dict]:
        return [r for r in stack.recorder.rows("/iterate/ride_duration") if r["request_id"] in set(ids)]

    rows = wait_until(lambda: len(r := forwarded()) == len(ids) and r, timeout=20, what="forwarded rows")
    assert all(row[UNKNOWN_FIELDS] == list(EXTRA_COLUMNS) for row in rows)
    assert all(
        set(row) - {UNKNOWN_FIELDS} == {"request_id", "timestamp", "model_version", "prediction", *FIELD_NAMES}
        for row in rows
    )
    wait_until(
        lambda: stack.metric("prediction_unknown_fields_total", outcome="kept") == kept_before + 200 * 15,
        timeout=10,
        what="unknown-field counter",
    )

    # The course's target.csv step: (id, duration) of the 1-60 minute trips, here posted to /feedback.
    labels = [{"request_id": row_id, "duration": truth} for row_id, _, truth in served if 1 <= truth <= 60]
    response = requests.post(f"{stack.url}/feedback", json=labels, timeout=30)
    # Labels are applied off the request path: every valid one is queued, then decided by the database.
    assert response.status_code == 202, response.text
    assert response.json()["queued"] == len(labels)
    wait_until(
        lambda: collection.count_documents({"request_id": {"$in": ids}, "target": {"$exists": True}}) == len(labels),
        timeout=20,
        what="labels on their documents",
    )
    doc = collection.find_one({"request_id": labels[0]["request_id"]})
    assert doc["target"] == pytest.approx(labels[0]["duration"]) and isinstance(
        label_time(doc["target_timestamp"]), datetime
    )
