"""Strictness where it protects, on the real processes: duplicate JSON keys, bounded numbers, an empty token,
pickup times with a UTC offset."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from reliability_support import TOKEN, assert_contract_error

from local_stack.processes import wait_until
from local_stack.reliability import ride_payloads
from monitoring_core.records import forwarded_row
from monitoring_core.validation import validate_request
from ride_duration.schema import DESCRIPTION, FIELD_NAMES

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
RIDE = '"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2, "lpep_pickup_datetime": "2021-01-05T08:30:00"'


def _row(request_id: str, prediction: float) -> dict:
    ride, _ = ride_payloads(1, seed=11)[0]
    valid = validate_request(DESCRIPTION, ride).model_dump()
    values = {name: value for name, value in valid.items() if name in FIELD_NAMES}
    values = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}
    return forwarded_row(request_id, datetime.now(UTC), "v1", values, {DESCRIPTION.prediction_column: prediction})


@pytest.mark.parametrize(
    ("service", "path", "body", "key"),
    [
        ("prediction", "/predict", '{"PULocationID": 300, ' + RIDE + "}", "PULocationID"),
        ("prediction", "/predict", '[{"request_id": "a", "request_id": "b", ' + RIDE + "}]", "request_id"),
        ("prediction", "/feedback", '{"request_id": "x", "duration": 5, "duration": 50}', "duration"),
        ("metrics", "/iterate/ride_duration", '[{"prediction": 1, "prediction": 2}]', "prediction"),
        ("metrics", "/feedback/ride_duration", '[{"request_id": "x", "request_id": "y", "duration": 5}]', "request_id"),
    ],
)
def test_a_duplicate_json_key_is_a_400_naming_the_key(stack, service, path, body, key) -> None:
    url = (stack.prediction_url if service == "prediction" else stack.metrics_url) + path
    response = requests.post(url, data=body, headers=AUTH, timeout=10)
    assert response.status_code == 400, response.text
    assert_contract_error(response, 400)
    detail = response.json()["details"][0]
    assert detail["field"] == key and detail["reason"] == "duplicate_key", detail
    assert key in detail["message"]


@pytest.mark.parametrize(
    ("prediction", "raw"),
    [(1e308, None), (-1e7, None), (None, "NaN"), (None, "Infinity"), (None, "-Infinity")],
)
def test_the_metrics_service_rejects_a_non_finite_or_out_of_range_prediction_naming_row_and_field(
    stack, prediction, raw
) -> None:
    good = _row("bounded-good", 12.0)
    bad = _row("bounded-bad", 0.0)
    body = json.dumps([good, {**bad, "prediction": prediction if raw is None else "__RAW__"}])
    body = body.replace('"__RAW__"', raw or "")
    response = requests.post(f"{stack.metrics_url}/iterate/ride_duration", data=body, headers=AUTH, timeout=10)
    # One bad row never voids the others: 200 with the bad one rejected and named.
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["rejected"] == 1
    assert [d["field"] for d in result["details"]] == ["[1].prediction"], result["details"]
    alone = requests.post(
        f"{stack.metrics_url}/iterate/ride_duration", data=body.replace(json.dumps(good) + ", ", ""), headers=AUTH
    )
    assert alone.status_code == 400 and alone.json()["details"][0]["field"] == "[0].prediction", alone.text


@pytest.mark.parametrize("duration", ["1e308", "NaN", "-5", "1441"])
def test_the_metrics_service_rejects_a_non_finite_or_out_of_range_target_naming_row_and_field(stack, duration) -> None:
    body = f'[{{"request_id": "bounded-label", "duration": {duration}}}]'
    response = requests.post(f"{stack.metrics_url}/feedback/ride_duration", data=body, headers=AUTH, timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["field"] == "[0].duration"


def test_no_exported_metric_is_ever_infinite_or_nan(stack) -> None:
    # The most extreme rows the bounds allow, all labelled: model quality is huge, and must stay finite.
    rows = [_row(f"extreme-{i}", 1_000_000.0 if i % 2 else -1_000_000.0) for i in range(900)]
    for start in range(0, len(rows), 300):
        response = requests.post(
            f"{stack.metrics_url}/iterate/ride_duration", json=rows[start : start + 300], headers=AUTH, timeout=30
        )
        assert response.status_code == 200 and response.json()["rejected"] == 0, response.text
    labels = [{"request_id": r["request_id"], "duration": 1440.0} for r in rows]
    response = requests.post(f"{stack.metrics_url}/feedback/ride_duration", json=labels, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text

    def quality() -> float | None:
        text = requests.get(f"{stack.metrics_url}/metrics", timeout=5).text
        values = [
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "evidently_model_quality" and s.labels.get("metric") == "rmse"
        ]
        return values[0] if values and values[0] > 100_000 else None

    assert wait_until(quality, 60, "model quality over the extreme rows", 0.2) < 2_000_000
    for url in (stack.metrics_url, stack.prediction_url):
        text = requests.get(f"{url}/metrics", timeout=5).text
        bad = [
            (s.name, s.labels, s.value)
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if not math.isfinite(s.value)
        ]
        assert bad == [], bad


def test_a_pickup_time_with_an_offset_is_new_york_local_time(stack) -> None:
    ride = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2}
    same_instant = {
        "tz-naive": "2021-01-05T08:30:00",  # naive: New York local time, as TLC data
        "tz-z": "2021-01-05T13:30:00Z",
        "tz-plus5": "2021-01-05T18:30:00+05:00",
        "tz-minus14": "2021-01-04T23:30:00-14:00",
    }
    durations = {}
    for request_id, pickup in same_instant.items():
        body = {**ride, "lpep_pickup_datetime": pickup, "request_id": request_id}
        response = requests.post(f"{stack.prediction_url}/predict", json=body, timeout=10)
        assert response.status_code == 200, response.text
        durations[request_id] = response.json()["duration"]
    assert len(set(durations.values())) == 1, durations
    # The same clock reading in UTC is five hours earlier in New York: another hour of day, another answer.
    other = requests.post(
        f"{stack.prediction_url}/predict", json={**ride, "lpep_pickup_datetime": "2021-01-05T08:30:00Z"}, timeout=10
    )
    assert other.json()["duration"] != durations["tz-naive"]
    # The logged document carries the New York local time the features were taken from.
    collection = stack.predictions()
    wait_until(lambda: collection.count_documents({"request_id": {"$in": list(same_instant)}}) == 4, 30, "logged")
    logged = {
        d["request_id"]: d["lpep_pickup_datetime"] for d in collection.find({"request_id": {"$in": list(same_instant)}})
    }
    assert set(logged.values()) == {"2021-01-05T08:30:00"}, logged


@pytest.mark.parametrize(
    ("module", "path", "env"),
    [
        (
            "prediction_service",
            "/feedback",
            {"PREDICTION_LOG_TO_MONGODB": "false", "PREDICTION_FORWARD_TO_METRICS": "false"},
        ),
        ("evidently_service", "/feedback/ride_duration", {}),
    ],
)
@pytest.mark.parametrize("token", ["", None])
def test_an_empty_or_unset_token_leaves_the_write_endpoints_open_and_says_so_at_start(
    service_factory, artifacts_dir: Path, module, path, env, token
) -> None:
    env = {
        **env,
        "MODEL_DIR": str(artifacts_dir),
        "REFERENCE_PATH": str(artifacts_dir / "reference.parquet"),
    }
    if token is not None:
        env["MONITORING_TOKEN"] = token
    proc, url = service_factory(module, env)
    warnings = [line for line in proc.log_tail(200).splitlines() if "MONITORING_TOKEN" in line]
    why = "MONITORING_TOKEN is empty, treated as unset" if token == "" else "MONITORING_TOKEN is unset"
    assert len(warnings) == 1 and warnings[0].startswith(f"{module}: warning: {why}"), warnings
    response = requests.post(url + path, json=[{"request_id": "open-1", "duration": 5.0}], timeout=10)
    assert response.status_code != 401, response.text
