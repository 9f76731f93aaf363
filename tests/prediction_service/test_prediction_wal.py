"""The per-worker write-ahead log: appended before the answer, emptied once handled, recovered from dead workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from bson import json_util

from prediction_service.record_lines import encode_lines
from prediction_service.spool import Spool
from prediction_service.wal import WriteAheadLog, _host


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _lines(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_appended_records_stay_until_acknowledged_then_the_file_is_emptied(tmp_path) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    first = wal.append([{"op": "insert", "doc": {"request_id": "a"}}, {"op": "insert", "doc": {"request_id": "b"}}])
    wal.append([{"op": "insert", "doc": {"request_id": "c"}}])
    assert _lines(first) == 3  # on disk (in the page cache) as soon as append returns: a SIGKILL keeps it
    wal.ack(first, 2)
    assert _lines(first) == 3  # one record still unhandled: nothing may go
    wal.ack(first, 1)
    assert first.exists() and _lines(first) == 0
    wal.append([{"op": "insert", "doc": {"request_id": "d"}}])
    assert _lines(first) == 1  # appends go on after the truncation


def test_a_full_file_rotates_and_is_deleted_when_its_last_record_is_handled(tmp_path) -> None:
    wal = WriteAheadLog(tmp_path / "wal", rotate_records=2)
    old = wal.append([{"n": 1}, {"n": 2}])
    new = wal.append([{"n": 3}])
    assert new != old and old.exists()
    wal.ack(old, 2)
    assert not old.exists() and new.exists()


def test_a_dead_workers_log_moves_to_the_spool_and_a_live_ones_stays(tmp_path) -> None:
    directory = tmp_path / "wal"
    stamp = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)
    mine = WriteAheadLog(directory)
    mine.append([{"op": "insert", "doc": {"request_id": "live"}}])
    dead = directory / f"wal-{_host()}-{_dead_pid()}-1.log"
    # Written by hand, as a worker that was SIGKILLed would have left it.
    records = [{"op": "insert", "doc": {"request_id": f"d{i}", "timestamp": stamp}} for i in range(4)]
    dead.write_bytes(
        encode_lines(records[:2])
        # A line of a log written by an earlier version (extended JSON) is read too.
        + (json_util.dumps(records[2], json_options=json_util.RELAXED_JSON_OPTIONS) + "\n").encode()
        + encode_lines(records[3:])[:30]  # a torn last line: only a power loss leaves one; skipped, the rest kept
    )
    spool = Spool(tmp_path / "spool", 100)
    assert mine.recover(spool) == 3
    assert not dead.exists()
    assert [p.name.startswith("wal-") for p in directory.iterdir()] == [True]  # this worker's own log remains
    records, damaged = spool.read(spool.claim())
    assert damaged == 0
    assert [r["doc"]["request_id"] for r in records] == ["d0", "d1", "d2"]
    assert records[0]["doc"]["timestamp"] == stamp
    assert mine.recover(spool) == 0  # nothing twice


def test_a_full_spool_keeps_the_dead_workers_log_for_later(tmp_path) -> None:
    directory = tmp_path / "wal"
    directory.mkdir()
    dead = directory / f"wal-{_host()}-{_dead_pid()}-1.log"
    dead.write_text('{"op": "insert", "doc": {"request_id": "a"}}\n')
    spool = Spool(tmp_path / "spool", 0)
    assert WriteAheadLog(directory).recover(spool) == 0
    assert dead.exists()


def test_a_clean_close_deletes_the_log(tmp_path) -> None:
    wal = WriteAheadLog(tmp_path / "wal", fsync=True)
    path = wal.append([{"n": 1}])
    wal.close(handled=True)
    assert not path.exists()
    kept = WriteAheadLog(tmp_path / "wal2")
    path = kept.append([{"n": 1}])
    kept.close(handled=False)
    assert path.exists()


def test_a_log_of_another_host_is_taken_only_once_stale_and_its_live_owner_logs_afresh(tmp_path) -> None:
    directory = tmp_path / "wal"
    directory.mkdir()
    # Another replica on the same spool volume, its worker's pid alive here by chance (our own pid).
    foreign = directory / f"wal-otherhost-{os.getpid()}-1.log"
    foreign.write_text('{"op": "insert", "doc": {"request_id": "f"}}\n')
    spool = Spool(tmp_path / "spool", 100)
    wal = WriteAheadLog(directory, stale_seconds=60)
    assert wal.recover(spool) == 0 and foreign.exists()  # fresh: its owner may be alive
    os.utime(foreign, (time.time() - 120, time.time() - 120))
    assert wal.recover(spool) == 1 and not foreign.exists()
    # A live worker whose log was taken as stale starts a new one at its next touch.
    mine = wal.append([{"n": 1}])
    mine.unlink()
    wal.touch()
    again = wal.append([{"n": 2}])
    assert again != mine and again.exists()
