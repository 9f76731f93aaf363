"""The service as it runs in production (gunicorn, 2 workers) against nx-27017 and a recording metrics service.

The tests share one stack: each uses its own request ids and compares metrics before and after.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from prediction_support import RIDE, metric_value

from local_stack.components import prometheus_query
from local_stack.processes import wait_until
from ride_duration.schema import FIELD_NAMES

pytestmark = pytest.mark.integration

ITERATE = "/iterate/ride_duration"


def scrape(stack) -> str:
    return requests.get(f"{stack.url}/metrics", timeout=5).text


def test_valid_predictions_are_logged_with_every_field_and_forwarded(shared_stack) -> None:
    stack = shared_stack
    written_before = stack.metric("prediction_mongo_written_records_total")
    started = datetime.now(UTC)
    rides = [{**RIDE, "request_id": f"log-{i}", "trip_distance": 1.0 + i} for i in range(20)]
    answers = [requests.post(f"{stack.url}/predict", json=r, timeout=5).json() for r in rides[:10]]
    answers += requests.post(f"{stack.url}/predict", json=rides[10:], timeout=5).json()
    answers.append(requests.post(f"{stack.url}/predict", json=RIDE, timeout=5).json())  # a server-made id
    ids = [a["request_id"] for a in answers]

    collection = stack.predictions
    query = {"request_id": {"$in": ids}}
    wait_until(lambda: collection.count_documents(query) == len(ids), timeout=15, what="documents in MongoDB")
    docs = {d["request_id"]: d for d in collection.find(query, {"_id": 0})}
    for answer in answers:
        doc = docs[answer["request_id"]]
        assert set(doc) == {
            *("request_id", "timestamp", "model_name", "model_version", "prediction", "expire_at"),
            *FIELD_NAMES,
        }
        # The TTL index deletes it after the description's retention (default 7 days).
        assert doc["expire_at"] - doc["timestamp"] == timedelta(days=7)
        assert doc["prediction"] == pytest.approx(answer["duration"])
        assert doc["model_version"] == answer["model_version"] and doc["model_name"] == "ride_duration"
        assert isinstance(doc["timestamp"], datetime)
        assert started - timedelta(seconds=1) <= doc["timestamp"] <= datetime.now(UTC)
    assert docs["log-3"]["trip_distance"] == 4.0 and docs["log-3"]["PULocationID"] == RIDE["PULocationID"]
    assert docs["log-3"]["lpep_pickup_datetime"] == RIDE["lpep_pickup_datetime"]

    def forwarded() -> list[dict]:
        return [r for r in stack.recorder.rows(ITERATE) if r["request_id"] in set(ids)]

    rows = wait_until(lambda: len(r := forwarded()) == len(ids) and r, timeout=15, what="forwarded rows")
    row = next(r for r in rows if r["request_id"] == "log-3")
    assert set(row) == {"request_id", "timestamp", "model_version", "prediction", *FIELD_NAMES}
    assert datetime.fromisoformat(row["timestamp"]).tzinfo is not None
    assert row["prediction"] == pytest.approx(docs["log-3"]["prediction"])
    # Each worker counts its own writes after insert_many returns, a moment after the documents are visible.
    wait_until(
        lambda: stack.metric("prediction_mongo_written_records_total") == written_before + len(ids),
        timeout=10,
        what="written-records counter",
    )


BAD = [
    (b"{oops", "application/json", 400, "invalid_json"),
    (json.dumps({**RIDE, "trip_distance": -1}).encode(), "application/json", 400, "out_of_range"),
    (json.dumps({**RIDE, "PULocationID": 999}).encode(), "application/json", 400, "out_of_range"),
    (json.dumps({**RIDE, "trip_distance": "far"}).encode(), "application/json", 400, "wrong_type"),
    (b'{"PULocationID": 1, "DOLocationID": 2, "trip_distance": NaN}', "application/json", 400, "not_finite"),
    (json.dumps({"DOLocationID": 2, "trip_distance": 1}).encode(), "application/json", 400, "missing_field"),
    (json.dumps({**RIDE, "PULocationID": None}).encode(), "application/json", 400, "missing_field"),  # null
    (json.dumps(RIDE).encode(), "text/plain", 415, "wrong_content_type"),
    (b'{"a": "' + b"x" * 300_000 + b'"}', "application/json", 413, "too_large"),
    (json.dumps([RIDE] * 101).encode(), "application/json", 400, "too_many_rows"),
]


def test_bad_inputs_get_their_4xx_and_counter_in_the_real_process(shared_stack) -> None:
    stack = shared_stack
    before = scrape(stack)
    for body, content_type, status, reason in BAD:
        response = requests.post(f"{stack.url}/predict", data=body, headers={"Content-Type": content_type}, timeout=5)
        assert response.status_code == status, (reason, response.text)
        assert reason in {d["reason"] for d in response.json()["details"]}
    # Chunked upload with no Content-Length, over the limit: still a JSON 413, not a dropped connection.
    chunks = (b"[" + b" " * 65_536 for _ in range(8))
    response = requests.post(
        f"{stack.url}/predict", data=chunks, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert response.status_code == 413 and response.json()["details"][0]["reason"] == "too_large"
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    for reason, count in Counter([reason for *_, reason in BAD] + ["too_large"]).items():
        assert delta("prediction_rejected_inputs_total", endpoint="/predict", reason=reason) == count, reason
    assert delta("prediction_http_requests_total", endpoint="/predict", status="400") == 8
    assert metric_value(after, "prediction_http_requests_total", status="500") == 0
    assert delta("prediction_predictions_total") == 0


def test_counts_add_up_across_gunicorn_workers(shared_stack) -> None:
    stack = shared_stack
    before = scrape(stack)
    n = 60
    for i in range(n):
        # A new connection each time, so both workers take requests.
        requests.post(
            f"{stack.url}/predict", json={**RIDE, "request_id": f"w-{i}"}, timeout=5, headers={"Connection": "close"}
        ).raise_for_status()
    pids = {p.stem.rsplit("_", 1)[1] for p in Path(stack.env["PROMETHEUS_MULTIPROC_DIR"]).glob("counter_*.db")}
    assert len(pids) == 2, pids
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    assert delta("prediction_predictions_total") == n
    assert delta("prediction_http_requests_total", endpoint="/predict", status="200") == n
    assert delta("prediction_http_request_duration_seconds_count", endpoint="/predict") == n
    assert delta("prediction_predicted_duration_seconds_count") == n
    assert metric_value(after, "prediction_model_info") == 1  # one version, however many workers
    # Summed over the live workers (livesum): a worker gunicorn replaced in the meantime counts once it has booted.
    wait_until(
        lambda: metric_value(scrape(stack), "prediction_queue_capacity", queue="mongo") == 2 * 20_000,
        timeout=15,
        what="both workers' queue capacity",
    )
    query = {"request_id": {"$regex": "^w-"}}
    wait_until(lambda: stack.predictions.count_documents(query) == n, timeout=15, what="documents")


def test_prometheus_scraping_the_workers_sees_the_summed_counts(shared_stack, prometheus_factory) -> None:
    stack = shared_stack
    target = stack.url.removeprefix("http://")
    config = (
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: prediction_service\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    _, prometheus = prometheus_factory(config)
    for i in range(30):
        requests.post(
            f"{stack.url}/predict", json={**RIDE, "request_id": f"prom-{i}"}, timeout=5, headers={"Connection": "close"}
        ).raise_for_status()
    served = metric_value(scrape(stack), "prediction_predictions_total")
    query = 'sum(prediction_predictions_total{job="prediction_service"})'

    def seen() -> float | None:
        result = prometheus_query(prometheus, query)
        return result and float(result[0]["value"][1]) == served

    wait_until(seen, timeout=30, what="Prometheus sees every prediction")
    info = prometheus_query(prometheus, 'prediction_model_info{job="prediction_service"}')
    assert len(info) == 1 and info[0]["metric"]["model_version"].startswith("synthetic-")
