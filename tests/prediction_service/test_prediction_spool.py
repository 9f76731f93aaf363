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


def _segment_of(tmp_path, records: int):
    spool = Spool(tmp_path, capacity_records=10_000)
    docs = [
        {"op": "insert", "doc": {"request_id": f"r{i:04d}", "prediction": 9.5, "pad": "x" * 60}} for i in range(records)
    ]
    assert spool.write(docs)
    (segment,) = [p for p in tmp_path.iterdir() if p.name.endswith(".jsonl")]
    return spool, segment


def test_garbage_in_a_segment_costs_only_the_records_it_touches_and_they_are_counted(tmp_path) -> None:
    # The case: 256 garbage bytes in a 221-record segment lost all 221, uncounted.
    spool, segment = _segment_of(tmp_path, 221)
    data = bytearray(segment.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 256] = os.urandom(255) + b"\n"  # a newline in the garbage splits a line in two
    segment.write_bytes(bytes(data))
    records, damaged = spool.read(spool.claim())
    assert damaged in (2, 3, 4)  # 256 bytes span 2-3 lines of about 100 bytes (4 if a line is cut twice)
    assert len(records) + damaged == 221
    ids = {r["doc"]["request_id"] for r in records}
    assert {"r0000", "r0220"} <= ids and len(ids) == len(records)


def test_a_truncated_segment_gives_back_every_whole_record_and_counts_the_rest(tmp_path) -> None:
    spool, segment = _segment_of(tmp_path, 221)
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) // 2 + 7])  # cut mid-record
    records, damaged = spool.read(spool.claim())
    assert len(records) == data[: len(data) // 2 + 7].count(b"\n")
    assert len(records) + damaged == 221 and damaged > 100


def test_a_write_the_disk_refuses_leaves_no_file_and_the_earlier_segments_intact(tmp_path) -> None:
    # A real small filesystem would need root; a file-size limit makes write() fail the same way, midway.
    import resource

    spool, segment = _segment_of(tmp_path, 5)
    before = segment.read_bytes()
    script = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN);"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000));"
        "from prediction_service.spool import Spool;"
        f"s = Spool({str(tmp_path)!r}, 10_000);"
        "docs = [{'op': 'insert', 'doc': {'request_id': str(i), 'pad': 'y' * 200}} for i in range(100)]\n"
        "try:\n    s.write(docs)\nexcept OSError as exc:\n    print(exc.errno); sys.exit(0)\nsys.exit(3)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert resource.RLIMIT_FSIZE  # (the limit was the child's own)
    assert sorted(p.name for p in tmp_path.iterdir()) == [segment.name]  # no temporary file left behind
    assert segment.read_bytes() == before and spool.size() == 5


def test_stats_bound_the_capacity_by_the_free_space(tmp_path) -> None:
    spool, _ = _segment_of(tmp_path, 50)
    stats = spool.stats()
    assert stats.records == 50 and stats.used_bytes >= 50 * 90 and stats.free_bytes > 0
    assert stats.record_bytes >= 90
    assert stats.capacity == min(10_000, 50 + stats.free_bytes // stats.record_bytes)
    assert Spool(tmp_path, 20).stats().capacity == 20  # the record bound when it is nearer
