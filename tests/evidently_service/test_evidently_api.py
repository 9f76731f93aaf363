"""The metrics service's HTTP contract: /iterate, /feedback, errors, auth, /health."""

from __future__ import annotations

import gzip
import json

import pytest


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def _counter(client, name: str, **labels) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{wanted}}} not exported")


def test_iterate_accepts_a_batch(client, make_rows):
    rows, _ = make_rows(20)
    response = client.post("/iterate/ride_duration", json=rows)
    assert response.status_code == 200
    assert response.json["accepted"] == 20 and response.json["window_rows"] == 20
    assert _counter(client, "evidently_rows_received_total", model="ride_duration") == 20


def test_good_rows_are_kept_and_bad_rows_named_and_counted(client, make_rows):
    rows, _ = make_rows(3)
    rows[1]["trip_distance"] = -4
    rows[2]["prediction"] = "12"
    response = client.post("/iterate/ride_duration", json=rows)
    assert response.status_code == 200
    assert (response.json["accepted"], response.json["rejected"]) == (1, 2)
    fields = {d["field"]: d["reason"] for d in response.json["details"]}
    assert fields == {"[1].trip_distance": "out_of_range", "[2].prediction": "wrong_type"}
    assert _counter(client, "evidently_rows_rejected_total", reason="out_of_range") == 1
    assert _counter(client, "evidently_rows_rejected_total", reason="wrong_type") == 1


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"request_id": None}, "request_id", "wrong_type"),
        ({"timestamp": "yesterday"}, "timestamp", "wrong_type"),
        ({"prediction": float("nan")}, "prediction", "not_finite"),
        ({"PULocationID": 999}, "PULocationID", "out_of_range"),
        ({"surprise": 1}, "surprise", "unknown_field"),
    ],
)
def test_a_batch_without_any_valid_row_is_a_400_naming_the_field(client, make_rows, change, field, reason):
    rows, _ = make_rows(1)
    rows[0].update(change)
    response = client.post("/iterate/ride_duration", data=_dumps(rows), content_type="application/json")
    assert response.status_code == 400
    assert {"field": f"[0].{field}", "reason": reason}.items() <= response.json["details"][0].items()


def _dumps(rows):
    import json

    return json.dumps(rows)  # allows NaN, which a client may send


def test_missing_optional_fields_are_accepted_for_data_quality(client, make_rows):
    rows, _ = make_rows(2)
    del rows[0]["passenger_count"]
    del rows[1]["lpep_pickup_datetime"]
    assert client.post("/iterate/ride_duration", json=rows).json["accepted"] == 2


def test_resent_rows_are_counted_as_duplicates_not_twice(client, make_rows):
    rows, _ = make_rows(5)
    client.post("/iterate/ride_duration", json=rows)
    response = client.post("/iterate/ride_duration", json=rows)
    assert (response.json["accepted"], response.json["duplicates"], response.json["window_rows"]) == (0, 5, 5)


def test_unknown_model_is_a_404_listing_the_known_ones(client):
    response = client.post("/iterate/other", json=[])
    assert response.status_code == 404
    assert response.json["known_models"] == ["ride_duration"]
    assert client.post("/feedback/other", json=[]).status_code == 404


GZ_HEADERS = {"content_type": "application/json", "headers": {"Content-Encoding": "gzip"}}


def test_a_gzip_body_is_read_like_a_plain_one(client, make_rows):
    rows, _ = make_rows(3)
    response = client.post("/iterate/ride_duration", data=gzip.compress(json.dumps(rows).encode()), **GZ_HEADERS)
    assert response.status_code == 200, response.json
    assert response.json["accepted"] == 3


@pytest.mark.parametrize(
    ("kwargs", "status", "reason"),
    [
        ({"data": "[{", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": "[]", "content_type": "text/plain"}, 415, "wrong_content_type"),
        ({"json": 3}, 400, "not_an_object"),
        (GZ_HEADERS | {"data": "[]", "headers": {"Content-Encoding": "br"}}, 415, "wrong_content_encoding"),
        (GZ_HEADERS | {"data": gzip.compress(b"[]")[:-4]}, 400, "wrong_content_encoding"),
    ],
)
def test_bodies_that_are_not_json_lists_get_a_4xx(client, kwargs, status, reason):
    response = client.post("/iterate/ride_duration", **kwargs)
    assert response.status_code == status
    assert response.json["details"][0]["reason"] == reason


def test_too_many_rows_is_a_413(make_app, make_rows):
    rows, _ = make_rows(3)
    response = make_app(max_rows=2).test_client().post("/iterate/ride_duration", json=rows)
    assert response.status_code == 413
    assert response.json["details"][0]["reason"] == "too_many_rows"


def test_token_guards_iterate_and_feedback(make_app, make_rows):
    client = make_app(token="s3cret").test_client()
    rows, labels = make_rows(1)
    assert client.post("/iterate/ride_duration", json=rows).status_code == 401
    assert client.post("/feedback/ride_duration", json=labels).status_code == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post("/iterate/ride_duration", json=rows, headers=auth).status_code == 200
    assert client.post("/feedback/ride_duration", json=labels, headers=auth).status_code == 200
    assert client.get("/metrics").status_code == 200 and client.get("/health").status_code == 200


def test_feedback_joins_labels_and_keeps_early_ones_pending(client, make_rows):
    rows, labels = make_rows(4)
    client.post("/iterate/ride_duration", json=rows[:2])
    response = client.post("/feedback/ride_duration", json=labels)
    assert (response.json["matched"], response.json["pending"]) == (2, 2)
    assert client.post("/iterate/ride_duration", json=rows[2:]).status_code == 200
    assert _counter(client, "evidently_pending_labels", model="ride_duration") == 0
    assert _counter(client, "evidently_labels_received_total", result="matched") == 2


def test_feedback_accepts_one_object_and_rejects_bad_labels(client, make_rows):
    rows, labels = make_rows(1)
    client.post("/iterate/ride_duration", json=rows)
    assert client.post("/feedback/ride_duration", json=labels[0]).json["matched"] == 1
    response = client.post("/feedback/ride_duration", json=[{"request_id": "x", "duration": -1}])
    assert response.status_code == 400
    assert response.json["details"][0]["field"] == "[0].duration"


def test_health_reports_each_model(client, make_rows):
    client.post("/iterate/ride_duration", json=make_rows(3)[0])
    body = client.get("/health").json
    assert body["status"] == "ok"
    assert body["models"]["ride_duration"]["window_rows"] == 3


def test_names_of_fields_outside_the_schema_are_exported_as_a_bounded_top_k(client, make_rows):
    from evidently_service.field_tally import TOP

    rows, _ = make_rows(30)
    for i, row in enumerate(rows):
        row["unknown_fields"] = ["VendorID", "fare_amount"] if i < 20 else [f"rare_{i}"]
    rows.append({**rows[0], "request_id": "many", "unknown_fields": [f"f{i}" for i in range(40)]})
    assert client.post("/iterate/ride_duration", json=rows).json["accepted"] == 31
    text = client.get("/metrics").text
    exported = [line for line in text.splitlines() if line.startswith("evidently_unknown_field_rows{")]
    assert len(exported) == TOP
    assert _counter(client, "evidently_unknown_field_rows", field="VendorID") == 20
    assert _counter(client, "evidently_rows_with_unknown_fields_total", model="ride_duration") == 31


def test_a_forwarded_row_names_at_most_50_unknown_fields(client, make_rows):
    rows, _ = make_rows(1)
    rows[0]["unknown_fields"] = [f"f{i}" for i in range(51)]
    response = client.post("/iterate/ride_duration", json=rows)
    assert response.status_code == 400 and response.json["details"][0]["field"] == "[0].unknown_fields"


def test_every_row_of_a_call_larger_than_the_window_is_counted(client, make_rows):
    # The issue: 2,800 valid rows into an 800-row window answered accepted 800, duplicates 0, rejected 0.
    rows, _ = make_rows(2800, prefix="big")
    rows += rows[:5]  # five repeated in the call
    rows.append({"request_id": "bad"})  # one invalid
    body = client.post("/iterate/ride_duration", json=rows).json
    assert (body["accepted"], body["evicted"], body["duplicates"], body["rejected"]) == (1000, 1800, 5, 1)
    assert body["accepted"] + body["evicted"] + body["duplicates"] + body["rejected"] == len(rows)
    assert body["window_rows"] == 1000
