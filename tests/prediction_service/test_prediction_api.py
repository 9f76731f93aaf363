"""The API in-process (logging and forwarding off): answers, the table of bad inputs, error shapes, counters."""

from __future__ import annotations

import gzip
import json

import pytest
from prediction_support import RIDE
from prometheus_client import REGISTRY

from monitoring_core.validation import REASONS
from prediction_service import create_app


def rejected(endpoint: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value("prediction_rejected_inputs_total", {"endpoint": endpoint, "reason": reason}) or 0.0
    )


def test_predict_answers_id_prediction_duration_and_version(client) -> None:
    response = client.post("/predict", json=RIDE)
    assert response.status_code == 200
    body = response.get_json()
    # `duration` is the taxi description's answer key: existing clients read it, unchanged.
    assert set(body) == {"request_id", "prediction", "duration", "model_version"}
    assert body["duration"] == body["prediction"]
    assert 1 < body["duration"] < 120 and body["model_version"].startswith("synthetic-")
    assert len(body["request_id"]) >= 16


def test_client_request_id_is_echoed(client) -> None:
    assert client.post("/predict", json={**RIDE, "request_id": "trip-42"}).get_json()["request_id"] == "trip-42"


def test_batch_answers_in_order_and_matches_single_predictions(client) -> None:
    rides = [{**RIDE, "trip_distance": d, "request_id": f"b{i}"} for i, d in enumerate([0.5, 3.0, 12.0])]
    answers = client.post("/predict", json=rides).get_json()
    assert [a["request_id"] for a in answers] == ["b0", "b1", "b2"]
    singles = [client.post("/predict", json=r).get_json()["duration"] for r in rides]
    assert [a["duration"] for a in answers] == pytest.approx(singles)
    assert answers[0]["duration"] < answers[1]["duration"] < answers[2]["duration"]


BAD_INPUTS = [
    # (description, body bytes, content type, status, field, reason)
    ("not json", b"{trip", "application/json", 400, "body", "invalid_json"),
    ("empty body", b"", "application/json", 400, "body", "invalid_json"),
    ("json string", b'"ride"', "application/json", 400, "body", "not_an_object"),
    (
        "missing field",
        json.dumps({k: v for k, v in RIDE.items() if k != "PULocationID"}),
        None,
        400,
        "PULocationID",
        "missing_field",
    ),
    ("string for number", json.dumps({**RIDE, "trip_distance": "1.2"}), None, 400, "trip_distance", "wrong_type"),
    ("NaN", json.dumps({**RIDE, "trip_distance": float("nan")}), None, 400, "trip_distance", "not_finite"),
    ("Infinity", json.dumps({**RIDE, "trip_distance": float("inf")}), None, 400, "trip_distance", "not_finite"),
    (
        "overflowing number",
        b'{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1e999}',
        None,
        400,
        "trip_distance",
        "not_finite",
    ),
    ("negative distance", json.dumps({**RIDE, "trip_distance": -2.0}), None, 400, "trip_distance", "out_of_range"),
    ("zone 0", json.dumps({**RIDE, "PULocationID": 0}), None, 400, "PULocationID", "out_of_range"),
    ("zone 266", json.dumps({**RIDE, "DOLocationID": 266}), None, 400, "DOLocationID", "out_of_range"),
    ("fractional zone", json.dumps({**RIDE, "DOLocationID": 7.5}), None, 400, "DOLocationID", "wrong_type"),
    ("unknown field (UNKNOWN_FIELDS=reject)", json.dumps({**RIDE, "fare": 9.5}), None, 400, "fare", "unknown_field"),
    ("NaN zone", json.dumps({**RIDE, "PULocationID": float("nan")}), None, 400, "PULocationID", "not_finite"),
    ("null distance", json.dumps({**RIDE, "trip_distance": None}), None, 400, "trip_distance", "missing_field"),
    ("id and request_id differ", json.dumps({**RIDE, "id": "a", "request_id": "b"}), None, 400, "id", "invalid_value"),
    (
        "bad datetime",
        json.dumps({**RIDE, "lpep_pickup_datetime": "soon"}),
        None,
        400,
        "lpep_pickup_datetime",
        "wrong_type",
    ),
    (
        "number for datetime",
        json.dumps({**RIDE, "lpep_pickup_datetime": 0}),
        None,
        400,
        "lpep_pickup_datetime",
        "wrong_type",
    ),
    ("bad request id", json.dumps({**RIDE, "request_id": "a b"}), None, 400, "request_id", "invalid_value"),
    (
        "invalid row in batch",
        json.dumps([RIDE, {**RIDE, "trip_distance": -1}]),
        None,
        400,
        "1.trip_distance",
        "out_of_range",
    ),
    ("non-object in batch", json.dumps([RIDE, 3]), None, 400, "1", "not_an_object"),
    (
        "repeated id in batch",
        json.dumps([{**RIDE, "request_id": "x"}, {**RIDE, "request_id": "x"}]),
        None,
        409,
        "1.request_id",
        "invalid_value",
    ),
    ("empty batch", b"[]", None, 400, "body", "invalid_value"),
    ("batch over the limit", json.dumps([RIDE] * 101), None, 400, "body", "too_many_rows"),
    ("body over the size limit", b"[" + b" " * 300_000 + b"]", None, 413, "body", "too_large"),
    ("text/plain", json.dumps(RIDE), "text/plain", 415, "Content-Type", "wrong_content_type"),
    ("form", b"a=1", "application/x-www-form-urlencoded", 415, "Content-Type", "wrong_content_type"),
    ("no content type", json.dumps(RIDE), "", 415, "Content-Type", "wrong_content_type"),
    ("brotli body", json.dumps(RIDE), {"Content-Encoding": "br"}, 415, "Content-Encoding", "wrong_content_encoding"),
    (
        "gzip that is not",
        json.dumps(RIDE),
        {"Content-Encoding": "gzip"},
        400,
        "Content-Encoding",
        "wrong_content_encoding",
    ),
    ("gzip bomb", gzip.compress(b" " * 300_000 + b"{}"), {"Content-Encoding": "gzip"}, 413, "body", "too_large"),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, None, 400, "body", "invalid_json"),
    ("empty body", b"", None, 400, "body", "invalid_json"),
    ("duplicate key", b'{"PULocationID": 300, "PULocationID": 43}', None, 400, "PULocationID", "duplicate_key"),
]
# Rejected only with UNKNOWN_FIELDS=reject: by default a field outside the schema is served and kept.
STRICT_CASES = {"unknown field (UNKNOWN_FIELDS=reject)"}


def test_every_documented_reason_is_produced_by_a_bad_input() -> None:
    import re
    from pathlib import Path

    assert {case[-1] for case in BAD_INPUTS} == set(REASONS)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "prediction_service.md").read_text()
    table = docs.split("### Errors", 1)[1].split("\n\n", 3)[2]
    documented = set(re.findall(r"`([a-z_]+)`", "".join(line.rsplit("|", 2)[-2] for line in table.splitlines()[2:])))
    # `busy` (503, /feedback back-pressure) and `model_output` (500, the model's unusable answer) are in the
    # table but are not input errors: not REASONS.
    assert documented - {"busy", "model_output"} == set(REASONS)


@pytest.mark.parametrize(
    ("case", "data", "content_type", "status", "field", "reason"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_gets_4xx_naming_field_and_is_counted(
    client, settings_with, case, data, content_type, status, field, reason
) -> None:
    assert reason in REASONS
    if case in STRICT_CASES:
        client = create_app(settings_with(unknown_fields="reject")).test_client()
    before = rejected("/predict", reason)
    data = data.encode() if isinstance(data, str) else data
    if isinstance(content_type, dict):  # other headers than the content type
        headers = {"Content-Type": "application/json", **content_type}
    else:
        headers = {} if content_type == "" else {"Content-Type": content_type or "application/json"}
    response = client.post("/predict", data=data, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] and isinstance(body["details"], list)
    assert {"field": field, "reason": reason} in [{"field": d["field"], "reason": d["reason"]} for d in body["details"]]
    assert all(d["message"] for d in body["details"])
    assert rejected("/predict", reason) == before + 1


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "GZIP", "identity", "gzip, identity"])
def test_a_gzip_body_is_served_like_a_plain_one(client, coding: str) -> None:
    # What HTTP clients send to save bandwidth on batches (RFC 9110 8.4); identity is no coding at all.
    raw = json.dumps([RIDE, RIDE]).encode()
    data = raw if coding == "identity" else gzip.compress(raw)
    response = client.post(
        "/predict", data=data, headers={"Content-Type": "application/json", "Content-Encoding": coding}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [answer["duration"] > 0 for answer in response.get_json()] == [True, True]


def test_every_problem_of_a_row_is_reported_and_each_reason_counted_once(client) -> None:
    before = {r: rejected("/predict", r) for r in ("missing_field", "out_of_range")}
    body = {"trip_distance": -1, "passenger_count": 99}
    details = client.post("/predict", json=body).get_json()["details"]
    assert {d["field"] for d in details} == {"PULocationID", "DOLocationID", "trip_distance", "passenger_count"}
    assert rejected("/predict", "missing_field") == before["missing_field"] + 1
    assert rejected("/predict", "out_of_range") == before["out_of_range"] + 1


def test_unknown_route_and_wrong_method_are_json_4xx(client) -> None:
    assert client.get("/nowhere").status_code == 404
    response = client.get("/predict")
    assert response.status_code == 405 and response.get_json()["error"]
    assert "POST" in response.headers["Allow"]


def test_feedback_requires_the_token_when_configured(settings_with) -> None:
    client = create_app(settings_with(monitoring_token="s3cret")).test_client()
    label = {"request_id": "a", "duration": 3.0}
    assert client.post("/feedback", json=label).status_code == 401
    assert client.post("/feedback", json=label, headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.post("/feedback", json=label, headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 202 and response.get_json()["queued"] == 1
    # /predict stays open: the token guards only writes of monitoring data.
    assert client.post("/predict", json=RIDE).status_code == 200


def test_health_reports_model_and_switched_off_dependencies(client) -> None:
    body = client.get("/health").get_json()
    assert body["model_version"].startswith("synthetic-") and body["model_name"] == "ride_duration"
    assert body["mongodb"] == {"enabled": False, "reachable": None, "indexes_missing": None}


def test_health_answers_200_when_dependencies_are_unreachable(settings_with) -> None:
    from local_stack.processes import free_port, wait_until

    dead = f"127.0.0.1:{free_port()}"
    app = create_app(
        settings_with(
            log_to_mongodb=True,
            forward_to_metrics=True,
            mongodb_uri=f"mongodb://{dead}",
            evidently_service_url=f"http://{dead}",
            mongo_timeout_seconds=0.2,
            health_cache_seconds=0.0,
        )
    )
    client = app.test_client()
    assert client.get("/health").status_code == 200
    body = wait_until(
        lambda: (b := client.get("/health").get_json())["mongodb"]["reachable"] is False and b,
        timeout=10,
        what="health probe",
    )
    assert body["metrics_service"]["reachable"] is False
    # And predictions are still served.
    assert client.post("/predict", json=RIDE).status_code == 200
    app.extensions["prediction_service"].close()


def test_metrics_endpoint_exposes_the_catalogue(client) -> None:
    client.post("/predict", json=RIDE)
    text = client.get("/metrics").get_data(as_text=True)
    for name in (
        "prediction_http_requests_total",
        "prediction_http_request_duration_seconds_bucket",
        "prediction_predictions_total",
        "prediction_predicted_duration_seconds_bucket",
        "prediction_model_info",
    ):
        assert name in text


def test_health_says_when_the_metrics_service_refuses_this_models_rows(settings_with) -> None:
    """A metrics service whose MODELS_DIR lacks this model answers 404 unknown_model to every forwarded row.

    It was logged as "metrics service unreachable", dropped as `unreachable`, and /health said reachable and ok.
    """
    from local_stack.processes import wait_until
    from local_stack.recorder import Recorder

    server = Recorder(keep_bodies=False)
    server.refusal = (404, {"error": "unknown model 'ride_duration'", "known_models": ["other"]})
    server.start()
    dropped = (
        REGISTRY.get_sample_value("prediction_records_dropped_total", {"queue": "forward", "reason": "refused"}) or 0.0
    )
    app = create_app(
        settings_with(
            forward_to_metrics=True,
            evidently_service_url=server.url,
            forward_retries=0,
            flush_interval_seconds=0.05,
            health_cache_seconds=0.0,
        )
    )
    try:
        client = app.test_client()
        assert client.post("/predict", json=RIDE).status_code == 200
        body = wait_until(
            lambda: (b := client.get("/health").get_json())["metrics_service"]["refused"] and b, 10, "refusal"
        )
        assert body["metrics_service"]["reachable"] is True
        assert (
            "HTTP 404" in body["metrics_service"]["refused"] and "unknown model" in body["metrics_service"]["refused"]
        )
        assert wait_until(
            lambda: (
                REGISTRY.get_sample_value("prediction_records_dropped_total", {"queue": "forward", "reason": "refused"})
                == dropped + 1
            ),
            10,
            "the row dropped as refused",
        )
    finally:
        app.extensions["prediction_service"].close()
        server.stop()
