"""The on-disk spool: durable segments, bounded capacity, one replayer per segment, takeover from dead workers."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

from prediction_service.spool import Spool


def test_segments_round_trip_datetimes_and_count_records(tmp_path) -> None:
    spool = Spool(tmp_path, capacity_records=100)
    stamp = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)
    assert spool.write([{"op": "insert", "doc": {"request_id": "a", "timestamp": stamp}}])
    assert spool.write([{"op": "insert", "doc": {"request_id": "b"}}, {"op": "insert", "doc": {"request_id": "c"}}])
    assert spool.size() == 3
    first = spool.claim()
    records, _ = spool.read(first)
    assert records[0]["doc"]["timestamp"] == stamp
    assert spool.size() == 3  # claimed segments still count until done
    spool.done(first)
    assert spool.size() == 2


def test_full_spool_refuses_the_whole_batch(tmp_path) -> None:
    spool = Spool(tmp_path, capacity_records=3)
    assert spool.write([{"n": 1}, {"n": 2}])
    assert not spool.write([{"n": 3}, {"n": 4}])
    assert spool.size() == 2


def test_a_claimed_segment_is_not_claimed_again_and_release_gives_it_back(tmp_path) -> None:
    spool = Spool(tmp_path, capacity_records=10)
    spool.write([{"n": 1}])
    segment = spool.claim()
    assert segment is not None and spool.claim() is None
    spool.release(segment)
    again = spool.claim()
    assert again is not None and spool.read(again) == ([{"n": 1}], 0)


def test_a_segment_claimed_by_a_dead_worker_is_taken_over(tmp_path) -> None:
    spool = Spool(tmp_path, capacity_records=10)
    spool.write([{"n": 1}])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    segment = spool.claim()
    segment.rename(segment.with_name(segment.name.replace(str(os.getpid()), dead.stdout.strip())))
    taken = spool.claim()
    assert taken is not None and spool.read(taken) == ([{"n": 1}], 0)


def test_no_partial_segment_is_ever_visible(tmp_path) -> None:
    spool = Spool(tmp_path, capacity_records=10)
    (tmp_path / ".seg-1-1-5.jsonl.tmp").write_text('{"n": 1}\n')  # a write interrupted before its rename
    assert spool.size() == 0 and spool.claim() is None
