"""The metrics service's /feedback/<model> answers each label: accepted (joined), queued (row not here yet),
duplicate, invalid with index, field and reason; only an unusable body fails whole."""

from __future__ import annotations

import pytest

from evidently_service.window import Window
from ride_duration.schema import DESCRIPTION


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def test_labels_are_answered_item_by_item(client, make_rows) -> None:
    rows, labels = make_rows(3, prefix="fb")
    client.post("/iterate/ride_duration", json=rows[:2])
    body = [
        labels[0],
        {**labels[1], "duration": 1512.0},  # a 25-hour "trip": out of range
        labels[2],  # its row has not come yet
        {**labels[0], "duration": 1.0},  # the id again
        "not an object",
        labels[1],
    ]
    response = client.post("/feedback/ride_duration", json=body)
    assert response.status_code == 200
    answer = response.json
    assert [(i["index"], i["outcome"]) for i in answer["items"]] == [
        (0, "accepted"),
        (1, "invalid"),
        (2, "queued"),
        (3, "duplicate"),
        (4, "invalid"),
        (5, "accepted"),
    ]
    assert [i["request_id"] for i in answer["items"]] == [
        labels[0]["request_id"],
        labels[1]["request_id"],
        labels[2]["request_id"],
        labels[0]["request_id"],
        None,
        labels[1]["request_id"],
    ]
    assert [(d["field"], d["reason"]) for d in answer["items"][1]["details"]] == [("[1].duration", "out_of_range")]
    assert answer["items"][4]["details"][0]["field"].startswith("[4]")
    assert (answer["matched"], answer["pending"], answer["duplicates"], answer["rejected"]) == (2, 1, 1, 2)


def test_one_bad_label_among_198_voids_only_itself(client, make_rows) -> None:
    rows, labels = make_rows(198, prefix="many")
    client.post("/iterate/ride_duration", json=rows)
    labels[117] = {**labels[117], "duration": 1512.0}
    answer = client.post("/feedback/ride_duration", json=labels).json
    assert (answer["matched"], answer["rejected"]) == (197, 1)
    assert [i["index"] for i in answer["items"] if i["outcome"] == "invalid"] == [117]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param([], "invalid_value", id="empty list"),
        pytest.param([{"request_id": "x", "duration": -1}], "out_of_range", id="no valid label"),
        pytest.param({"request_id": "x"}, "missing_field", id="one invalid object"),
    ],
)
def test_only_an_unusable_body_fails_whole(client, body, reason: str) -> None:
    response = client.post("/feedback/ride_duration", json=body)
    assert response.status_code == 400
    assert reason in {d["reason"] for d in response.json["details"]}


def test_the_window_reports_each_labels_outcome() -> None:
    window = Window(DESCRIPTION, 10, max_pending_labels=1)
    window.append([{"request_id": "a", "timestamp": 0.0, "prediction": 1.0}])
    result = window.add_labels([("a", 1.0, 0.0), ("a", 2.0, 0.0), ("b", 1.0, 0.0), ("b", 2.0, 0.0), ("c", 1.0, 0.0)])
    assert result.outcomes == ("accepted", "duplicate", "queued", "duplicate", "queued")
    assert (result.matched, result.duplicates, result.pending, result.pending_dropped) == (1, 2, 2, 1)
    none_kept = Window(DESCRIPTION, 10, max_pending_labels=0).add_labels([("z", 1.0, 0.0)])
    assert none_kept.outcomes == ("unknown",) and none_kept.pending_dropped == 1
