"""Hypothesis-generated hostile bodies against the real processes: /predict, /feedback, /iterate, metrics /feedback.

Raw bytes, JSON of every shape, huge numbers, deep nesting, near-valid rides with one field
damaged, and wrong or odd content types, sent over HTTP with and without the token. Whatever
arrives: never a 5xx, every 4xx is the contract's JSON error, and both services stay healthy.
"""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import TOKEN, assert_contract_error, assert_healthy, examples

from ride_duration.schema import FIELD_NAMES

pytestmark = pytest.mark.integration

RIDE = {
    "PULocationID": 74,
    "DOLocationID": 75,
    "trip_distance": 1.2,
    "passenger_count": 1,
    "lpep_pickup_datetime": "2021-01-05T08:30:00",
}
ROW = {**RIDE, "request_id": "r-1", "timestamp": "2021-01-05T08:31:00Z", "model_version": "v", "prediction": 9.5}
LABEL = {"request_id": "r-1", "duration": 12.0}

# (service, path, guarded by the token, a valid item of the body)
TARGETS = [
    ("prediction", "/predict", False, RIDE),
    ("prediction", "/feedback", True, LABEL),
    ("metrics", "/iterate/ride_duration", True, ROW),
    ("metrics", "/feedback/ride_duration", True, LABEL),
]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/problem+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    "application/xml",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 1e308, 5e-324, "", "NaN", "1e999", "\x00", "\ud7ff"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
keys = st.sampled_from([*FIELD_NAMES, "request_id", "timestamp", "model_version", "prediction", "duration"])


@st.composite
def damaged(draw) -> object:
    """A valid item (or a list of them) with one key dropped, replaced or added."""
    _, _, _, valid = draw(st.sampled_from(TARGETS))
    item = dict(valid)
    key = draw(keys)
    action = draw(st.sampled_from(["drop", "replace", "add"]))
    if action == "drop":
        item.pop(key, None)
    else:
        item[key if action == "replace" else draw(st.text(max_size=12))] = draw(json_values)
    return [item] * draw(st.integers(1, 3)) if draw(st.booleans()) else item


def _text(value: object) -> bytes:
    # Python's json writes NaN/Infinity and integers of any size: exactly the hostile inputs wanted.
    return json.dumps(value).encode()


def _nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * depth + "1" + closer * depth).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(_text),
    damaged().map(_text),
    st.builds(_nested, st.integers(50, 200_000), st.sampled_from(["[", '{"a":'])),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"{}",
            b"[[]]",
            b'{"a": 1e999999}',
            b"9" * 20_000,
            b"\xff\xfe{}",
            b'{"PULocationID": 74, "PULocationID": "x"}',
            json.dumps([RIDE] * 150).encode(),
        ]
    ),
)


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    target=st.sampled_from(TARGETS), body=bodies, content_type=st.sampled_from(CONTENT_TYPES), with_token=st.booleans()
)
def test_hostile_bodies_get_no_5xx_and_contract_errors(stack, target, body, content_type, with_token) -> None:
    service, path, guarded, _ = target
    base = stack.prediction_url if service == "prediction" else stack.metrics_url
    headers = {"Content-Type": content_type} if content_type else {}
    if with_token:
        headers["Authorization"] = f"Bearer {TOKEN}"
    response = requests.post(base + path, data=body, headers=headers, timeout=30)
    assert response.status_code < 500, (path, body[:200], response.status_code, response.text[:300])
    if guarded and not with_token:
        assert response.status_code == 401
    if response.status_code >= 400:
        assert_contract_error(response, response.status_code)


@pytest.mark.parametrize("target", TARGETS, ids=[t[1] for t in TARGETS])
def test_deeply_nested_json_is_a_400_not_a_crash(stack, target) -> None:
    service, path, _, _ = target
    base = stack.prediction_url if service == "prediction" else stack.metrics_url
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    response = requests.post(base + path, data=_nested(100_000, "["), headers=headers, timeout=30)
    assert response.status_code == 400, response.text[:300]
    assert_contract_error(response, 400)
    assert response.json()["details"][0]["reason"] == "invalid_json"


def test_services_are_healthy_after_the_hostile_bodies(stack) -> None:
    assert_healthy(stack)
