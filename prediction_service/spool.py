"""On-disk spool for records MongoDB could not take: immutable JSON-lines segments in one folder.

Each spooled batch becomes one segment, written to a temporary name, fsynced and then
renamed, so a segment is either complete or invisible. The record count is part of the
name, so every worker can size the spool from a directory listing. A worker replays a
segment by first renaming it to a name carrying its pid (atomic: one worker wins);
segments claimed by a worker that died are taken over. Replaying twice is harmless:
MongoDB's unique `request_id` index turns the second insert into a no-op.
"""

from __future__ import annotations

import os
import time
from datetime import UTC
from pathlib import Path

from bson import json_util

_SUFFIX = ".jsonl"
# Extended JSON keeps datetimes (and ObjectIds) typed through the disk round trip.
_JSON = json_util.RELAXED_JSON_OPTIONS.with_options(tz_aware=True, tzinfo=UTC)
_CLAIM = ".claimed-"


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

    def write(self, records: list[dict]) -> bool:
        """Write `records` as one durable segment; return False (writing nothing) if the spool is full."""
        if not records:
            return True
        if self.size() + len(records) > self.capacity:
            return False
        name = f"seg-{time.time_ns()}-{os.getpid()}-{len(records)}{_SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        with open(tmp, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json_util.dumps(record, json_options=_JSON))
                out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        tmp.rename(self.directory / name)
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
    def read(segment: Path) -> list[dict]:
        """Return the records of a claimed segment."""
        with open(segment, encoding="utf-8") as src:
            return [json_util.loads(line, json_options=_JSON) for line in src if line.strip()]

    @staticmethod
    def done(segment: Path) -> None:
        """Delete a segment whose records are safely in MongoDB."""
        segment.unlink(missing_ok=True)

    def release(self, segment: Path) -> None:
        """Give a claimed segment back (its replay failed) so it is retried later."""
        base = segment.name.rsplit(_CLAIM, 1)[0]
        segment.rename(self.directory / base)
