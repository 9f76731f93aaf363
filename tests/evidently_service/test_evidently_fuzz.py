"""Whatever a client sends to /iterate or /feedback, the answer is a JSON 2xx/4xx, never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ride_duration.schema import FIELD_NAMES

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["2026-11-26T12:00:00Z", "2021-01-05T08:00:00", "not a date", ""]),
)
keys = st.sampled_from([*FIELD_NAMES, "request_id", "timestamp", "model_version", "prediction", "duration", "x"])
rows = st.dictionaries(keys, st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=10)
bodies = st.one_of(st.lists(st.one_of(rows, scalars), max_size=5), rows, scalars)


@pytest.fixture(scope="module")
def client(models_dir, tmp_path_factory):
    from evidently_service import create_app
    from evidently_service.settings import Settings

    config = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    config.write_text("defaults: {window_size: 200, min_rows: 10, min_labelled_rows: 5}\n")
    app = create_app(Settings(config_path=config, models_dir=models_dir, run_evaluators=False))
    yield app.test_client(), app.extensions["evidently_service"].monitors["ride_duration"]
    app.extensions["evidently_service"].close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/iterate/ride_duration", "/feedback/ride_duration"]))
def test_no_body_gets_a_500(client, body, path):
    test_client, monitor = client
    response = test_client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.is_json
    monitor.evaluate()  # whatever got in, evaluation still works


VALID_ROW = {
    "request_id": "fuzz-1",
    "timestamp": "2026-11-26T12:00:00Z",
    "model_version": "v",
    "prediction": 12.0,
    "lpep_pickup_datetime": "2021-01-05T08:00:00",
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 2.5,
    "passenger_count": 1,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(VALID_ROW)), value=scalars, drop=st.booleans(), n=st.integers(0, 10**6))
def test_one_damaged_field_is_named_or_accepted(client, field, value, drop, n):
    test_client, monitor = client
    good = {**VALID_ROW, "request_id": f"good-{n}"}
    damaged = {**VALID_ROW, "request_id": f"damaged-{n}"}
    if drop:
        damaged.pop(field)
    else:
        damaged[field] = value
    response = test_client.post(
        "/iterate/ride_duration", data=json.dumps([good, damaged]), content_type="application/json"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body["accepted"] + body["duplicates"] + body["rejected"] == 2
    for detail in body["details"]:
        assert detail["field"].startswith("[1].")
    monitor.evaluate()
