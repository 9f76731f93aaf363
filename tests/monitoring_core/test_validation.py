"""Ride validation, generated from the schema: a table of bad inputs and the field each names."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitoring_core.validation import REASONS, error_details, validate_request
from ride_duration.schema import DESCRIPTION

GOOD = {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2}


@pytest.mark.parametrize(
    "stamp", ["2021-01-05T08:30:00", "2021-01-05 08:30", "2021-01-05T13:30:00.123456Z", "2021-01-05t18:30:00+05:00"]
)
def test_iso_date_times_with_or_without_offset_pass_as_new_york_local_time(stamp) -> None:
    # Naive is New York local time already (TLC data); an offset is converted to it (EST in January: UTC-5).
    pickup = validate_request(DESCRIPTION, {**GOOD, "lpep_pickup_datetime": stamp}).lpep_pickup_datetime
    assert pickup.tzinfo is None and (pickup.day, pickup.hour) == (5, 8)


@pytest.mark.parametrize(
    ("stamp", "local"),
    [
        ("2021-07-05T12:30:00Z", "2021-07-05T08:30:00"),  # summer: EDT, UTC-4
        ("2021-01-04T23:30:00-14:00", "2021-01-05T08:30:00"),  # the far side of the date line
        ("2021-03-14T07:30:00Z", "2021-03-14T03:30:00"),  # just after the spring-forward gap
    ],
)
def test_an_offset_is_converted_to_new_york_local_time_across_seasons(stamp, local) -> None:
    assert (
        validate_request(DESCRIPTION, {**GOOD, "lpep_pickup_datetime": stamp}).lpep_pickup_datetime.isoformat() == local
    )


def test_good_ride_passes_with_optional_fields_defaulted() -> None:
    ride = validate_request(
        DESCRIPTION, {**GOOD, "passenger_count": 1.0, "lpep_pickup_datetime": "2021-01-05T08:30:00"}
    )
    assert ride.passenger_count == 1 and ride.lpep_pickup_datetime.hour == 8
    assert validate_request(DESCRIPTION, GOOD).passenger_count is None


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"DOLocationID": 75, "trip_distance": 1.2}, "PULocationID", "missing_field"),
        ({**GOOD, "PULocationID": "74"}, "PULocationID", "wrong_type"),
        ({**GOOD, "PULocationID": True}, "PULocationID", "wrong_type"),
        ({**GOOD, "DOLocationID": 0}, "DOLocationID", "out_of_range"),
        ({**GOOD, "DOLocationID": 266}, "DOLocationID", "out_of_range"),
        ({**GOOD, "DOLocationID": 7.5}, "DOLocationID", "wrong_type"),
        ({**GOOD, "trip_distance": -0.1}, "trip_distance", "out_of_range"),
        ({**GOOD, "trip_distance": float("nan")}, "trip_distance", "not_finite"),
        ({**GOOD, "trip_distance": float("inf")}, "trip_distance", "not_finite"),
        ({**GOOD, "passenger_count": 12}, "passenger_count", "out_of_range"),
        ({**GOOD, "trip_miles": 1.2}, "trip_miles", "unknown_field"),
        ({**GOOD, "lpep_pickup_datetime": "yesterday"}, "lpep_pickup_datetime", "wrong_type"),
        ({**GOOD, "lpep_pickup_datetime": 1700000000}, "lpep_pickup_datetime", "wrong_type"),
        ({**GOOD, "lpep_pickup_datetime": "1102"}, "lpep_pickup_datetime", "wrong_type"),
        ({**GOOD, "lpep_pickup_datetime": "2021-01-05"}, "lpep_pickup_datetime", "wrong_type"),
        ({**GOOD, "lpep_pickup_datetime": "2021-02-30T10:00:00"}, "lpep_pickup_datetime", "wrong_type"),
        ({**GOOD, "request_id": "a b"}, "request_id", "invalid_value"),
        ([GOOD], "body", "not_an_object"),
        # Missing is missing: NaN in a required field is not finite, null there is a missing field.
        ({**GOOD, "PULocationID": float("nan")}, "PULocationID", "not_finite"),
        ({**GOOD, "DOLocationID": float("inf")}, "DOLocationID", "not_finite"),
        ({**GOOD, "trip_distance": None}, "trip_distance", "missing_field"),
        ({**GOOD, "PULocationID": None}, "PULocationID", "missing_field"),
        ({**GOOD, "passenger_count": float("inf")}, "passenger_count", "not_finite"),
        # The client's id: the request-id rule, integers as their text, and no disagreeing pair.
        ({**GOOD, "id": "a b"}, "id", "invalid_value"),
        ({**GOOD, "id": True}, "id", "wrong_type"),
        ({**GOOD, "id": -1}, "id", "wrong_type"),
        ({**GOOD, "id": 2**64}, "id", "wrong_type"),
        ({**GOOD, "id": "a", "request_id": "b"}, "id", "invalid_value"),
    ],
)
def test_bad_input_names_the_field_and_reason(body, field, reason) -> None:
    with pytest.raises(ValidationError) as info:
        validate_request(DESCRIPTION, body)
    details = error_details(info.value)
    assert {"field": field, "reason": reason} in [{"field": d["field"], "reason": d["reason"]} for d in details]
    assert all(d["reason"] in REASONS and d["message"] for d in details)


def test_json_schema_keeps_bounds_of_nullable_fields() -> None:
    from monitoring_core.validation import request_model

    passengers = request_model(DESCRIPTION).model_json_schema()["properties"]["passenger_count"]
    number = next(member for member in passengers["anyOf"] if member["type"] == "integer")
    assert (number["minimum"], number["maximum"]) == (0, 9)


@pytest.mark.parametrize("missing", [None, float("nan")])
def test_nan_and_null_mean_absent_for_a_field_that_may_be_absent(missing) -> None:
    ride = validate_request(DESCRIPTION, {**GOOD, "passenger_count": missing, "lpep_pickup_datetime": missing})
    assert ride.passenger_count is None and ride.lpep_pickup_datetime is None
    assert ride.model_dump() == validate_request(DESCRIPTION, GOOD).model_dump()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({**GOOD, "id": "0b0c4f5e-8f43-4a57-9d3f-1f2e3d4c5b6a"}, "0b0c4f5e-8f43-4a57-9d3f-1f2e3d4c5b6a"),
        ({**GOOD, "id": 1234}, "1234"),
        ({**GOOD, "request_id": 7}, "7"),
        ({**GOOD, "request_id": "r-1", "id": "r-1"}, "r-1"),
        (GOOD, None),
    ],
)
def test_the_client_id_is_the_request_id(body, expected) -> None:
    from monitoring_core.validation import ride_id

    assert ride_id(validate_request(DESCRIPTION, body)) == expected


def test_a_whole_row_splits_into_the_schema_keys_and_the_others_in_body_order() -> None:
    from monitoring_core.validation import split_unknown

    known, unknown = split_unknown(
        DESCRIPTION, {"VendorID": 2, **GOOD, "id": "x", "fare_amount": 7.5, "ehail_fee": None}
    )
    assert known == {**GOOD, "id": "x"}
    assert list(unknown) == ["VendorID", "fare_amount", "ehail_fee"]


def test_json_schema_says_which_ids_are_accepted() -> None:
    from monitoring_core.validation import request_model

    properties = request_model(DESCRIPTION).model_json_schema()["properties"]
    for key in ("id", "request_id"):
        types = {member["type"] for member in properties[key]["anyOf"]}
        assert types == {"string", "integer", "null"}


def test_epoch_milliseconds_from_pandas_to_json_are_the_naive_wall_clock_time() -> None:
    import pandas as pd

    stamp = pd.Timestamp("2021-05-01 00:12:45")
    encoded = pd.Series({"lpep_pickup_datetime": stamp}).to_json()  # what the course's send_data.py posts
    millis = int(encoded.split(":")[1].rstrip("}"))
    ride = validate_request(DESCRIPTION, {**GOOD, "lpep_pickup_datetime": millis})
    assert ride.lpep_pickup_datetime == stamp.to_pydatetime()


@pytest.mark.parametrize("stamp", ["0001-01-01T01:00:00Z", "9999-12-31T23:00:00-14:00"])
def test_a_time_whose_new_york_time_leaves_the_calendar_keeps_its_own_clock_not_a_crash(stamp) -> None:
    # Found by schemathesis: the conversion overflowed and the service answered 500; the time is schema-valid.
    pickup = validate_request(DESCRIPTION, {**GOOD, "lpep_pickup_datetime": stamp}).lpep_pickup_datetime
    assert pickup.tzinfo is None and pickup.hour == int(stamp[11:13])


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30, 1e300])
def test_an_integer_beyond_64_bits_is_out_of_range_not_served_and_then_unloggable(value) -> None:
    """Seen: `"region": 10**30` (an int category without bounds) answered 200, then MongoDB refused the record."""
    from monitoring_core.description import parse_description

    description = parse_description(
        {
            "name": "clinic",
            "task": "regression",
            "target": {"name": "progression"},
            "features": [
                {"name": "region", "kind": "categorical", "type": "int"},
                {"name": "visits", "kind": "numerical", "type": "int"},
            ],
        }
    )
    for field in ("region", "visits"):
        with pytest.raises(ValidationError) as info:
            validate_request(description, {"region": 2, "visits": 3, field: value})
        assert [(d["field"], d["reason"]) for d in error_details(info.value)] == [(field, "out_of_range")]
    assert validate_request(description, {"region": 2**63 - 1, "visits": -(2**63)}).region == 2**63 - 1


def test_an_empty_text_category_is_a_category_and_a_long_one_names_the_limit() -> None:
    """Seen: reference rows whose category was "" (the model was fitted on them) answered 400 at the service."""
    from monitoring_core.description import MAX_CATEGORY_LENGTH, parse_description

    description = parse_description(
        {
            "name": "wine",
            "task": "classification",
            "classes": ["a", "b"],
            "target": {"name": "cultivar"},
            "features": [{"name": "grape", "kind": "categorical"}],
        }
    )
    for text in ("", "None", "Rosé 🍷", "x" * MAX_CATEGORY_LENGTH):
        assert validate_request(description, {"grape": text}).grape == text
    with pytest.raises(ValidationError) as info:
        validate_request(description, {"grape": "x" * (MAX_CATEGORY_LENGTH + 1)})
    assert [(d["field"], d["reason"]) for d in error_details(info.value)] == [("grape", "invalid_value")]
