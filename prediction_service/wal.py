"""Per-worker write-ahead log: every accepted record is appended here before the request is answered.

The in-memory queue between a request and MongoDB dies with its process. So `/predict`
first appends the records to this worker's own log file (one `os.write` of record lines,
prediction_service/record_lines.py, on an `O_APPEND` descriptor: a few microseconds, and in the
kernel's page cache the moment it returns, so it survives the process being SIGKILLed), then
queues them. Once the writer has put everything appended into MongoDB or into the fsynced spool, the file is emptied; a
full file is rotated and deleted when its last record is handled.

After a crash, the next worker to start (or any live worker, on its replay schedule) claims
every log whose owner pid is dead, moves its records into the spool as one fsynced segment,
and deletes it; the spool's replay then inserts them, idempotently (unique `request_id`).
Nothing else is replayed: no counter is incremented and no row is re-forwarded. A log is orphaned
when its owner (host name and pid, both in its name) is a dead process on this host, or, for another
host's log (replicas sharing a spool volume), when it has not been touched for `stale_seconds` (a
live writer touches its own every cycle).

What a power loss can still lose: the lines written since the kernel last flushed the page
cache (Linux writes dirty pages back within about 30 s by default). `PREDICTION_WAL_FSYNC=true`
closes that too, at the cost of one disk flush per answered request.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

from prediction_service.record_lines import decode_line, encode_lines
from prediction_service.spool import Spool, pid_alive

log = logging.getLogger(__name__)
_PREFIX = "wal-"
_SUFFIX = ".log"
_CLAIM = ".claimed-"


def _host() -> str:
    # Replicas (containers) may share one spool volume and reuse each other's pids: a name carries both.
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:64] or "host"


def _owner(name: str) -> tuple[str, int]:
    # wal-<host>-<pid>-<ns>.log[.claimed-<host>-<pid>]
    try:
        part = name.rsplit(_CLAIM, 1)[1] if _CLAIM in name else name[len(_PREFIX) :]
        host, pid = part.split("-")[:2]
        return host, int(pid.split(".")[0])
    except (IndexError, ValueError):
        return "", 0


class WriteAheadLog:
    """This worker's append-only log of accepted records, plus the recovery of dead workers' logs."""

    def __init__(
        self, directory: Path, fsync: bool = False, rotate_records: int = 20_000, stale_seconds: float = 60.0
    ) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self.rotate_records = rotate_records
        # Another host's log untouched this long is orphaned (its pids mean nothing here): a live worker
        # touches its own every writer cycle.
        self.stale_seconds = stale_seconds
        self.host = _host()
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0
        self._current: Path | None = None
        self._appended = 0  # lines in the current file
        self._size = 0  # its bytes
        self._pending: dict[Path, int] = {}  # records appended to a file and not yet handled
        self.damaged = 0  # unreadable lines found in dead workers' logs (the writer counts them as dropped)
        self.directory.mkdir(parents=True, exist_ok=True)

    def append(self, records: list[dict]) -> Path:
        """Append `records` to this worker's log (one write); return the file, to `ack` them against later."""
        data = encode_lines(records)
        with self._lock:
            if self._fd is None or self._pid != os.getpid() or self._appended >= self.rotate_records:
                self._open_next()
            assert self._fd is not None and self._current is not None
            self._write_whole(data)
            self._appended += len(records)
            self._pending[self._current] = self._pending.get(self._current, 0) + len(records)
            return self._current

    def _write_whole(self, data: bytes) -> None:
        # All or nothing: a write the disk cut short (ENOSPC after part of it) is cut off again, so a
        # half line never glues itself to the next append and corrupts a record that was whole.
        size = self._size  # this worker is the file's only writer: no fstat per request
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fdatasync(self._fd)
            self._size = size + len(data)
        except BaseException:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                log.error("cannot cut a partial write-ahead log line", extra={"file": str(self._current)})
            raise

    def ack(self, path: Path, count: int) -> None:
        """Mark `count` records of `path` as handled (in MongoDB, in the spool, or counted as dropped)."""
        with self._lock:
            left = self._pending.get(path, 0) - count
            if left > 0:
                self._pending[path] = left
                return
            self._pending[path] = 0
            if path == self._current and self._fd is not None:
                # Everything appended so far is safe elsewhere: start the file afresh (O_APPEND writes go to the end).
                os.ftruncate(self._fd, 0)
                self._size = 0
                self._appended = 0
            elif path != self._current:
                self._pending.pop(path, None)
                path.unlink(missing_ok=True)

    def _open_next(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
            if self._current is not None and not self._pending.get(self._current):
                self._pending.pop(self._current, None)
                self._current.unlink(missing_ok=True)
        elif self._pid != os.getpid():
            self._pending = {}  # a forked child owns nothing of its parent's log
        self._pid = os.getpid()
        self._current = self.directory / f"{_PREFIX}{self.host}-{self._pid}-{time.time_ns()}{_SUFFIX}"
        self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        self._appended = 0

    def touch(self) -> None:
        """Mark this worker's log as alive (called every writer cycle); start a new one if it was taken away."""
        with self._lock:
            if self._fd is None or self._current is None or self._pid != os.getpid():
                return
            try:
                os.utime(self._current)
            except FileNotFoundError:
                # Claimed as stale (a stalled worker): what it held was moved to the spool; log afresh.
                os.close(self._fd)
                self._fd = None
                self._open_next()

    def _orphaned(self, name: str) -> bool:
        host, owner = _owner(name)
        if host == self.host:
            # On this host the pid decides: a writer stuck in a long MongoDB call is alive, not stale.
            return owner != os.getpid() and not pid_alive(owner)
        try:
            return time.time() - os.stat(self.directory / name).st_mtime > self.stale_seconds
        except FileNotFoundError:
            return False

    def recover(self, spool: Spool) -> int:
        """Move the records of every log whose owner is dead into the spool; return how many were moved."""
        moved = 0
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return 0
        for name in names:
            if not name.startswith(_PREFIX) or not self._orphaned(name):
                continue
            claimed = self.directory / f"{name.split(_CLAIM)[0]}{_CLAIM}{self.host}-{os.getpid()}"
            try:
                (self.directory / name).rename(claimed)  # atomic: one worker wins
            except FileNotFoundError:
                continue
            try:
                records, bad = self._read(claimed)
            except OSError as exc:
                log.error("cannot read a write-ahead log", extra={"file": name, "error": str(exc)})
                claimed.rename(self.directory / name.split(_CLAIM)[0])
                continue
            for start in range(0, len(records), 500):
                try:
                    taken = spool.write(records[start : start + 500])
                except OSError as exc:  # the disk is full: keep the log, retry on the next schedule
                    log.error("cannot spool a write-ahead log: kept for later", extra={"file": name, "error": str(exc)})
                    taken = False
                if not taken:
                    log.error("spool full: write-ahead log kept for a later start", extra={"file": name})
                    claimed.rename(self.directory / name.split(_CLAIM)[0])
                    return moved
                moved += len(records[start : start + 500])
            if bad:
                # Only a power loss (or a damaged disk) leaves an unreadable line; a killed process never does.
                log.error("unreadable write-ahead log lines skipped", extra={"file": name, "lines": bad})
                self.damaged += bad
            claimed.unlink(missing_ok=True)
        if moved:
            log.warning("recovered records from a dead worker's write-ahead log", extra={"records": moved})
        return moved

    @staticmethod
    def _read(path: Path) -> tuple[list[dict], int]:
        records, bad = [], 0
        with open(path, "rb") as src:
            for raw in src:
                if not raw.strip():
                    continue
                try:
                    records.append(decode_line(raw))
                except ValueError:
                    bad += 1
        return records, bad

    def close(self, handled: bool) -> None:
        """Close this worker's log; delete it when everything in it was `handled` (a clean shutdown)."""
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
                if handled:
                    for path in [*self._pending, self._current]:
                        if path is not None:
                            path.unlink(missing_ok=True)
                    self._pending = {}
            self._fd = None
