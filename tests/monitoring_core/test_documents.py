"""The logged document's label keys: the first-label filter and the label time read from either database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitoring_core.documents import label_time, unlabelled

ARRIVED = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param(ARRIVED, id="BSON datetime, aware (tz_aware client)"),
        pytest.param(ARRIVED.replace(tzinfo=None), id="BSON datetime, naive UTC (default client)"),
        pytest.param(ARRIVED.astimezone(timezone(timedelta(hours=-5))), id="aware, other offset"),
        pytest.param("2026-01-02 03:04:05.678000", id="nx-27017 string from $set"),
        pytest.param("2026-01-02T03:04:05.678Z", id="ISO string with Z"),
    ],
)
def test_label_time_reads_every_stored_form(stored: object) -> None:
    assert label_time(stored) == ARRIVED


@pytest.mark.parametrize("stored", [None, "yesterday", 17, 1.5])
def test_label_time_is_none_for_what_is_not_a_time(stored: object) -> None:
    assert label_time(stored) is None


def test_the_label_filter_matches_only_an_unlabelled_document() -> None:
    assert unlabelled("r-1") == {"request_id": "r-1", "target": {"$exists": False}}
