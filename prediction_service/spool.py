"""On-disk spool for records MongoDB could not take: immutable JSON-lines segments in one folder.

Each spooled batch becomes one segment, written to a temporary name, fsynced and then
renamed, so a segment is either complete or invisible. The record count is part of the
name, so every worker can size the spool from a directory listing. A worker replays a
segment by first renaming it to a name carrying its pid (atomic: one worker wins);
segments claimed by a worker that died are taken over. Replaying twice is harmless:
MongoDB's unique `request_id` index turns the second insert into a no-op.

The spool is bounded twice: by `capacity_records` and by the free space of its filesystem. The
effective capacity (`stats()`) is the smaller of the two, so the backlog alert fires on whichever is
nearer. A write that fails for lack of space (or any other I/O error) deletes its temporary file and
leaves every earlier segment untouched. A damaged segment (garbage bytes, a truncated line) gives
back every intact line; the rest are reported as damaged, counted from the record count in its name.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prediction_service.record_lines import decode_line, encode_lines

_SUFFIX = ".jsonl"
_CLAIM = ".claimed-"
# Bytes a spooled record takes on disk before any was measured (a prediction document is about 400-600
# bytes as a line; a filesystem allocates whole blocks, so small segments cost more per record).
DEFAULT_RECORD_BYTES = 1024


@dataclass(frozen=True)
class SpoolStats:
    """What the spool holds and what its filesystem can still take, from one listing and one statvfs."""

    records: int  # records waiting (all workers)
    used_bytes: int  # bytes allocated to the spool's segments and write-ahead logs
    free_bytes: int  # bytes the filesystem still gives an unprivileged writer
    record_bytes: int  # bytes one record takes on disk, measured from the segments (or the default)
    record_bound: int  # PREDICTION_SPOOL_CAPACITY_RECORDS

    @property
    def capacity(self) -> int:
        """Return the records the spool can hold: the record bound or what the free space holds, if smaller."""
        return min(self.record_bound, self.records + self.free_bytes // max(1, self.record_bytes))


def _records_in(name: str) -> int:
    # seg-<ns>-<pid>-<count>.jsonl[.claimed-<pid>]
    try:
        return int(name.split(_SUFFIX)[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def pid_alive(pid: int) -> bool:
    """Return whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """A bounded folder of spooled records shared by every worker of the service."""

    def __init__(self, directory: Path, capacity_records: int) -> None:
        self.directory = Path(directory)
        self.capacity = capacity_records
        self.directory.mkdir(parents=True, exist_ok=True)

    def check_writable(self) -> None:
        """Write, fsync and delete a probe file; raise OSError when the folder cannot take a segment."""
        self.directory.mkdir(parents=True, exist_ok=True)
        probe = self.directory / f".probe-{os.getpid()}.tmp"
        try:
            with open(probe, "w", encoding="utf-8") as out:
                out.write("probe\n")
                out.flush()
                os.fsync(out.fileno())
        finally:
            probe.unlink(missing_ok=True)

    def size(self) -> int:
        """Return the number of records waiting in the spool (all workers)."""
        try:
            return sum(_records_in(n) for n in os.listdir(self.directory) if _SUFFIX in n and not n.startswith("."))
        except FileNotFoundError:
            return 0

    def stats(self) -> SpoolStats:
        """Return the records, bytes used and free, and the effective capacity of the spool."""
        records = used = segment_bytes = 0
        for folder in (self.directory, self.directory / "wal"):
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for entry in entries:
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    allocated = entry.stat(follow_symlinks=False).st_blocks * 512
                except FileNotFoundError:
                    continue  # replayed (deleted) while listing
                used += allocated
                if folder == self.directory and _SUFFIX in entry.name and not entry.name.startswith("."):
                    records += _records_in(entry.name)
                    segment_bytes += allocated
        try:
            vfs = os.statvfs(self.directory)
            free = vfs.f_bavail * vfs.f_frsize
        except OSError:
            free = 0
        record_bytes = -(-segment_bytes // records) if records else DEFAULT_RECORD_BYTES
        return SpoolStats(records, used, free, max(1, record_bytes), self.capacity)

    def write(self, records: list[dict]) -> bool:
        """Write `records` as one durable segment; return False (writing nothing) if the spool is full.

        Raise OSError (ENOSPC for a full disk) when the filesystem refuses it: the partial file is
        deleted, so a write cut short never leaves a segment, or a growing temporary file, behind.
        """
        if not records:
            return True
        if self.size() + len(records) > self.capacity:
            return False
        name = f"seg-{time.time_ns()}-{os.getpid()}-{len(records)}{_SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        data = encode_lines(records)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:  # a short write (the disk filling) raises ENOSPC on the next call
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.rename(self.directory / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    def claim(self) -> Path | None:
        """Take the oldest unclaimed segment (or one a dead worker claimed) for replay; None if there is none."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return None
        for name in names:
            if name.startswith("."):
                continue
            if _CLAIM in name:
                owner = int(name.rsplit(_CLAIM, 1)[1] or 0)
                if owner == os.getpid() or pid_alive(owner):
                    continue
                base = name.rsplit(_CLAIM, 1)[0]
            elif name.endswith(_SUFFIX):
                base = name
            else:
                continue
            claimed = self.directory / f"{base}{_CLAIM}{os.getpid()}"
            try:
                (self.directory / name).rename(claimed)
            except FileNotFoundError:
                continue  # another worker was faster
            return claimed
        return None

    @staticmethod
    def read(segment: Path) -> tuple[list[Any], int]:
        """Return the intact records of a claimed segment and how many of its records are damaged.

        Each line is read on its own, so garbage bytes or a truncated line cost only the records
        they touch; the count of damaged ones is what the name promised minus what was read (the
        unreadable lines, if the name carries no count).
        """
        records: list[Any] = []
        bad = 0
        with open(segment, "rb") as src:
            for raw in src:
                if not raw.strip():
                    continue
                try:
                    records.append(decode_line(raw))
                except ValueError:
                    bad += 1
        # The name's count is the truth (garbage holding a newline splits one record into two bad lines).
        declared = _records_in(segment.name)
        return records, max(0, declared - len(records)) if declared else bad

    @staticmethod
    def done(segment: Path) -> None:
        """Delete a segment whose records are safely in MongoDB."""
        segment.unlink(missing_ok=True)

    def release(self, segment: Path) -> None:
        """Give a claimed segment back (its replay failed) so it is retried later."""
        base = segment.name.rsplit(_CLAIM, 1)[0]
        segment.rename(self.directory / base)
