"""/feedback in-process: every item answered on its own, only an unusable body fails whole, a full writer says 503."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from local_stack.processes import free_port
from prediction_service import create_app


def fed(result: str) -> float:
    return REGISTRY.get_sample_value("prediction_feedback_total", {"result": result}) or 0.0


def label(request_id: str, duration: object = 12.5) -> dict:
    return {"request_id": request_id, "duration": duration}


# body -> the outcome of each item, in order (the answer is 202 whenever one label is valid)
PER_ITEM = [
    pytest.param(label("one"), ["queued"], id="one object"),
    pytest.param([label("a"), label("b")], ["queued", "queued"], id="two good"),
    pytest.param([label("a"), label("a", 99.0)], ["queued", "duplicate"], id="repeated id"),
    pytest.param(
        [label("a"), label("b", "3"), label("a"), "not an object", label("c"), label("d", 1512)],
        ["queued", "invalid", "duplicate", "invalid", "queued", "invalid"],
        id="good, bad and repeated mixed",
    ),
    pytest.param([label("x", 0)] + [label("y")], ["invalid", "queued"], id="zero minutes"),
]


@pytest.mark.parametrize(("body", "outcomes"), PER_ITEM)
def test_a_list_is_answered_item_by_item(client, body, outcomes: list[str]) -> None:
    response = client.post("/feedback", json=body)
    assert response.status_code == 202, response.get_json()
    answer = response.get_json()
    assert [item["outcome"] for item in answer["items"]] == outcomes
    assert [item["index"] for item in answer["items"]] == list(range(len(outcomes)))
    for outcome in ("queued", "duplicate", "invalid"):
        assert answer[outcome] == outcomes.count(outcome)
    for item, sent in zip(answer["items"], body if isinstance(body, list) else [body], strict=True):
        if isinstance(sent, dict):
            assert item["request_id"] == sent["request_id"]
        if item["outcome"] == "invalid":
            assert item["details"] and all(d["field"] and d["reason"] for d in item["details"])
        else:
            assert "details" not in item


def test_invalid_items_name_their_index_field_and_reason(client) -> None:
    body = [label("a"), label("b", "3"), "x", label("c", 1512), {"request_id": "d"}, {**label("e"), "extra": 1}]
    items = client.post("/feedback", json=body).get_json()["items"]
    problems = {item["index"]: [(d["field"], d["reason"]) for d in item.get("details", [])] for item in items}
    assert problems == {
        0: [],
        1: [("1.duration", "wrong_type")],
        2: [("2", "not_an_object")],
        3: [("3.duration", "out_of_range")],
        4: [("4.duration", "missing_field")],
        5: [("5.extra", "unknown_field")],
    }


def test_one_label_out_of_range_among_198_voids_only_itself(client) -> None:
    body = [label(f"real-{i}", 5.0 + i % 40) for i in range(198)]
    body[117]["duration"] = 1512.0  # a real 25-hour "trip": a clock error upstream
    before = fed("queued"), fed("invalid")
    response = client.post("/feedback", json=body)
    assert response.status_code == 202
    answer = response.get_json()
    assert (answer["queued"], answer["invalid"]) == (197, 1)
    assert answer["items"][117]["outcome"] == "invalid"
    assert answer["items"][117]["details"][0]["field"] == "117.duration"
    assert (fed("queued") - before[0], fed("invalid") - before[1]) == (197, 1)


WHOLE = [
    pytest.param(b"{oops", 400, "body", "invalid_json", id="unparseable"),
    pytest.param(json.dumps([]).encode(), 400, "body", "invalid_value", id="empty list"),
    pytest.param(json.dumps([label(f"r{i}") for i in range(1001)]).encode(), 400, "body", "too_many_rows", id="1001"),
    pytest.param(json.dumps(7).encode(), 400, "body", "not_an_object", id="scalar"),
    pytest.param(json.dumps(label("a", -3)).encode(), 400, "duration", "out_of_range", id="one object, negative"),
    pytest.param(json.dumps(label("a", 10_000)).encode(), 400, "duration", "out_of_range", id="one object, too long"),
    pytest.param(json.dumps({"request_id": "a"}).encode(), 400, "duration", "missing_field", id="no duration"),
    pytest.param(json.dumps({"duration": 3}).encode(), 400, "request_id", "missing_field", id="no request_id"),
    pytest.param(json.dumps(label("a b")).encode(), 400, "request_id", "invalid_value", id="bad request_id"),
    pytest.param(json.dumps([label("a", "3"), 5]).encode(), 400, "0.duration", "wrong_type", id="no valid item"),
]


@pytest.mark.parametrize(("body", "status", "field", "reason"), WHOLE)
def test_only_an_unusable_body_fails_whole(client, body: bytes, status: int, field: str, reason: str) -> None:
    before = fed("queued")
    response = client.post("/feedback", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    answer = response.get_json()
    assert answer["error"] and (field, reason) in [(d["field"], d["reason"]) for d in answer["details"]]
    assert fed("queued") == before


def test_counters_say_what_the_answer_said(client) -> None:
    before = {r: fed(r) for r in ("queued", "duplicate", "invalid", "accepted")}
    client.post("/feedback", json=[label("k1"), label("k1"), label("k2", -1), label("k3")])
    after = {r: fed(r) for r in before}
    assert {r: after[r] - before[r] for r in before} == {"queued": 2, "duplicate": 1, "invalid": 1, "accepted": 0}


def test_a_writer_full_of_labels_answers_503_and_queues_nothing(settings_with) -> None:
    # Labels may take half the writer's queue: with room for 2 records, one label fits and two do not.
    dead = f"mongodb://127.0.0.1:{free_port()}"
    app = create_app(settings_with(log_to_mongodb=True, mongodb_uri=dead, queue_capacity=2, mongo_timeout_seconds=0.2))
    client = app.test_client()
    before = fed("queued")
    response = client.post("/feedback", json=[label("f1"), label("f2")])
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["details"][0]["reason"] == "busy"
    assert fed("queued") == before
    assert client.post("/feedback", json=label("f3")).status_code == 202
    app.extensions["prediction_service"].close()
