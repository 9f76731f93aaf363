"""Row and label validation: the shared ride model plus prediction facts, turned into window numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from evidently_service.rows import epoch, validate_labels, validate_rows
from ride_duration.schema import DESCRIPTION


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 11, 26, 12, 0, 0, 123456),
        datetime(2026, 11, 26, 12, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1960, 1, 1, tzinfo=UTC),
    ],
)
def test_epoch_equals_the_utc_timestamp(value):
    assert epoch(value) == (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def test_a_valid_row_becomes_numbers(make_rows):
    rows, _ = make_rows(1)
    rows[0]["passenger_count"] = None
    rows[0]["timestamp"] = "2026-11-26T12:00:00Z"
    (good,), bad = validate_rows(DESCRIPTION, rows)
    assert bad == []
    assert good["timestamp"] == datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp()
    assert isinstance(good["lpep_pickup_datetime"], float)
    assert good["passenger_count"] is None
    assert good["request_id"] == rows[0]["request_id"]


def test_whole_number_floats_pass_and_fractions_do_not(make_rows):
    rows, _ = make_rows(2)
    rows[0]["PULocationID"] = 74.0
    rows[1]["PULocationID"] = 74.5
    good, bad = validate_rows(DESCRIPTION, rows)
    assert good[0]["PULocationID"] == 74
    assert bad[0]["index"] == 1 and bad[0]["problems"][0]["field"] == "[1].PULocationID"


def test_labels_default_their_time_to_now():
    good, bad = validate_labels(DESCRIPTION, [{"request_id": "a", "duration": 12.5}, {"request_id": "b"}], now=1000.0)
    assert good == [("a", 12.5, 1000.0)]
    assert bad[0]["problems"][0] == {"field": "[1].duration", "message": "Field required", "reason": "missing_field"}
