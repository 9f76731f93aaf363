"""What real clients send, in process: whole TLC rows with their ids, NaN for missing, UNKNOWN_FIELDS, batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from course_clients import EXTRA_COLUMNS, STYLES, course_bodies, write_month
from prediction_support import RIDE
from prometheus_client import REGISTRY

from prediction_service import create_app
from prediction_service.settings import Settings


def unknown_total(outcome: str) -> float:
    labels = {"model": "ride_duration", "outcome": outcome}
    return REGISTRY.get_sample_value("prediction_unknown_fields_total", labels) or 0.0


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_month(tmp_path_factory.mktemp("tlc") / "green_tripdata_2021-01.parquet", rows=200)


@pytest.mark.parametrize("style", STYLES)
def test_every_course_row_is_served_and_its_id_echoed(client, month: Path, style: str) -> None:
    bodies = course_bodies(month, style)
    kept_before = unknown_total("kept")
    served = 0
    for row_id, body, _ in bodies:
        response = client.post("/predict", data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.get_data(as_text=True)
        answer = response.get_json()
        assert answer["request_id"] == row_id and 1 <= answer["duration"] <= 120
        served += 1
    assert served == len(bodies) == 200
    # 15 TLC columns outside the schema per row; none dropped.
    assert unknown_total("kept") == kept_before + 200 * len(EXTRA_COLUMNS)


def test_nan_and_null_passenger_counts_are_served_like_absent_ones(client) -> None:
    absent = {k: v for k, v in RIDE.items() if k != "passenger_count"}
    expected = client.post("/predict", json=absent).get_json()["duration"]
    for value in ("NaN", "null"):
        body = json.dumps(absent)[:-1] + f', "passenger_count": {value}}}'
        response = client.post("/predict", data=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200 and response.get_json()["duration"] == expected


def test_an_integer_id_becomes_its_text(client) -> None:
    assert client.post("/predict", json={**RIDE, "id": 40213}).get_json()["request_id"] == "40213"


def test_reject_refuses_a_whole_row_naming_every_unknown_field(settings_with, month: Path) -> None:
    client = create_app(settings_with(unknown_fields="reject")).test_client()
    _, body, _ = course_bodies(month, "pyarrow_isoformat")[0]
    response = client.post("/predict", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    details = response.get_json()["details"]
    assert {d["field"] for d in details} == set(EXTRA_COLUMNS)  # `id` is the request id, not unknown
    assert {d["reason"] for d in details} == {"unknown_field"}


def test_ignore_serves_the_row_and_counts_its_fields_as_ignored(settings_with, month: Path) -> None:
    client = create_app(settings_with(unknown_fields="ignore")).test_client()
    before = unknown_total("ignored")
    row_id, body, _ = course_bodies(month, "pandas_default_str")[0]
    response = client.post("/predict", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and response.get_json()["request_id"] == row_id
    assert unknown_total("ignored") == before + len(EXTRA_COLUMNS)


def test_fields_over_the_bound_are_served_and_counted_as_dropped(client) -> None:
    before = unknown_total("dropped")
    response = client.post("/predict", json={**RIDE, **{f"x{i}": i for i in range(60)}})
    assert response.status_code == 200
    assert unknown_total("dropped") == before + 10


def test_a_batch_is_all_or_nothing_and_names_every_bad_ride(client) -> None:
    rides = [RIDE, {**RIDE, "trip_distance": -1}, RIDE, {**RIDE, "PULocationID": None}, {**RIDE, "id": "a b"}]
    response = client.post("/predict", json=rides)
    assert response.status_code == 400
    fields = {d["field"] for d in response.get_json()["details"]}
    assert fields == {"1.trip_distance", "3.PULocationID", "4.id"}


def test_the_same_client_id_twice_in_a_batch_is_a_conflict(client) -> None:
    response = client.post("/predict", json=[{**RIDE, "id": "t-1"}, {**RIDE, "request_id": "t-1"}])
    assert response.status_code == 409
    assert [d["field"] for d in response.get_json()["details"]] == ["1.request_id"]


@pytest.mark.parametrize("value", ["drop", "KEEP ", "yes"])
def test_unknown_fields_setting_is_strict(value: str) -> None:
    if value.strip().lower() == "keep":
        assert Settings.from_env({"UNKNOWN_FIELDS": value}).unknown_fields == "keep"
        return
    with pytest.raises(ValueError, match="UNKNOWN_FIELDS"):
        Settings.from_env({"UNKNOWN_FIELDS": value})


def test_unknown_fields_default_is_keep() -> None:
    assert Settings.from_env({}).unknown_fields == "keep"
