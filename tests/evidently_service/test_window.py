"""The sliding window: bounded, ordered, duplicate-proof, late labels joined, safe under concurrent use."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from evidently_service.window import Window as _Window
from ride_duration.schema import DESCRIPTION


def Window(size, **kwargs):  # noqa: N802 - the window of the taxi model
    return _Window(DESCRIPTION, size, **kwargs)


def _rows(ids, distance=1.0):
    return [
        {
            "request_id": str(i),
            "timestamp": float(n),
            "prediction": 10.0,
            "PULocationID": 74.0,
            "DOLocationID": 75.0,
            "trip_distance": distance,
            "passenger_count": None,
            "lpep_pickup_datetime": None,
        }
        for n, i in enumerate(ids)
    ]


def test_keeps_the_newest_rows_oldest_first():
    window = Window(5)
    window.append(_rows(range(3)))
    window.append(_rows(range(3, 8)))
    frame = window.snapshot()
    assert len(window) == 5
    assert frame["request_id"].tolist() == ["3", "4", "5", "6", "7"]
    assert frame["timestamp"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert frame["PULocationID"].tolist() == ["74"] * 5  # categories as their text, as the reference's
    assert frame["trip_distance"].dtype == np.float64
    assert frame["passenger_count"].isna().all()


def test_a_batch_larger_than_the_window_keeps_its_newest_rows():
    window = Window(3)
    result = window.append(_rows(range(10)))
    assert result.appended == 3
    assert window.snapshot()["request_id"].tolist() == ["7", "8", "9"]


def test_duplicate_ids_are_skipped_within_and_across_batches():
    window = Window(10)
    assert window.append(_rows([1, 2, 2])).duplicates == 1
    assert window.append(_rows([2, 3])).duplicates == 1
    assert window.snapshot()["request_id"].tolist() == ["1", "2", "3"]


def test_an_evicted_id_can_be_used_again():
    window = Window(2)
    window.append(_rows([1, 2, 3]))
    assert window.append(_rows([1])).appended == 1


def test_labels_join_by_request_id_and_duplicates_are_kept_once():
    window = Window(10)
    window.append(_rows([1, 2]))
    result = window.add_labels([("1", 12.0, 100.0), ("1", 99.0, 200.0)])
    assert (result.matched, result.duplicates) == (1, 1)
    frame = window.snapshot().set_index("request_id")
    assert frame.loc["1", "duration"] == 12.0 and frame.loc["1", "label_timestamp"] == 100.0
    assert math.isnan(frame.loc["2", "duration"])


def test_labels_before_their_rows_wait_in_a_bounded_buffer():
    window = Window(10, max_pending_labels=2)
    result = window.add_labels([("a", 1.0, 0.0), ("b", 2.0, 0.0), ("c", 3.0, 0.0)])
    assert (result.pending, result.pending_dropped) == (3, 1)
    assert window.pending_labels == 2
    appended = window.append(_rows(["a", "b", "c"]))
    assert appended.labelled_from_pending == 2  # "a" was dropped as the oldest
    frame = window.snapshot().set_index("request_id")
    assert math.isnan(frame.loc["a", "duration"]) and frame.loc["c", "duration"] == 3.0
    assert window.pending_labels == 0


def test_an_evicted_row_loses_its_label():
    window = Window(1)
    window.append(_rows([1]))
    window.add_labels([("1", 5.0, 0.0)])
    window.append(_rows([2]))
    assert window.snapshot()["duration"].isna().all()


def test_concurrent_appends_and_snapshots_lose_nothing():
    window = Window(100_000)

    def writer(start: int) -> None:
        for k in range(50):
            window.append(_rows(range(start + 100 * k, start + 100 * (k + 1))))

    threads = [threading.Thread(target=writer, args=(n * 10_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        frame = window.snapshot()
        assert frame["request_id"].notna().all() and frame["request_id"].is_unique
    for thread in threads:
        thread.join()
    assert len(window) == 4 * 50 * 100


def test_size_must_be_positive():
    with pytest.raises(ValueError):
        Window(0)
