"""Background MongoDB writer: bounded queue -> batched idempotent writes, spooling to disk when MongoDB is away.

Records are operations: `{"op": "insert", "doc": {...}}` (a prediction document) or a label
record (prediction_service/labels.py, which owns everything about labels). A batch is applied
inserts first, then labels; if any part fails the whole batch goes to the spool, which is safe
because inserts are idempotent (unique `request_id`) and labels only set a missing target.
Labels whose prediction is not written yet wait in the writer (`PendingLabels`) for a retry.

A record MongoDB refuses for what it is (prediction_service/dead_letter.py) is quarantined and the
rest of its batch goes on; only an outage spools. A batch that can be neither written nor spooled
(MongoDB away and the spool or its disk full) is dropped and counted (`PREDICTION_UNLOGGED=serve`) or
kept in the writer and retried, while new requests are refused (`refuse`).
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import monitoring as pymongo_monitoring

from monitoring_core.documents import ensure_indexes, missing_indexes
from prediction_service import labels, metrics, store
from prediction_service.dead_letter import DeadLetter, malformed, refusal_reason
from prediction_service.settings import Settings
from prediction_service.spool import Spool
from prediction_service.wal import WriteAheadLog

log = logging.getLogger(__name__)
# Labels may fill at most this share of the queue: a flood of /feedback never crowds out predictions.
LABEL_QUEUE_SHARE = 0.5
_WAL_KEY = "_wal"  # on a queued record: the write-ahead log file it was appended to (never written anywhere)
# /health stays `degraded` this long after a record could not be logged (the failure may not repeat at once).
UNLOGGED_MEMORY_SECONDS = 10.0


class _NewConnections(pymongo_monitoring.ConnectionPoolListener):
    """Counts connections the client opens: a new one may lead to a MongoDB that restarted empty."""

    def __init__(self) -> None:
        self.opened = 0

    def connection_created(self, event: pymongo_monitoring.ConnectionCreatedEvent) -> None:
        self.opened += 1

    def pool_created(self, event: object) -> None: ...
    def pool_ready(self, event: object) -> None: ...
    def pool_cleared(self, event: object) -> None: ...
    def pool_closed(self, event: object) -> None: ...
    def connection_ready(self, event: object) -> None: ...
    def connection_closed(self, event: object) -> None: ...
    def connection_check_out_started(self, event: object) -> None: ...
    def connection_check_out_failed(self, event: object) -> None: ...
    def connection_checked_out(self, event: object) -> None: ...
    def connection_checked_in(self, event: object) -> None: ...


_FILL_POLL = 0.05  # seconds between drains of the queue while a batch fills


class MongoSink:
    """One per worker: takes records off the request path and gets them into MongoDB exactly once."""

    def __init__(
        self,
        settings: Settings,
        spool: Spool,
        wal: WriteAheadLog | None = None,
        on_label_accepted: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self.wal = wal
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=settings.queue_capacity)
        self._connections = _NewConnections()
        self._client = store.connect(settings, listeners=[self._connections])
        self._collection = store.predictions(self._client, settings)
        # Indexes are (re-)ensured before the first write, after any new connection (MongoDB may have come
        # back empty, without them) and every `index_check_seconds` (someone may have dropped them).
        self._indexed_at_connections = -1
        self._next_index_check = 0.0
        self.indexes_missing: list[str] = []
        self._wal_acks: Counter[Path] = Counter()
        self._next_recovery = 0.0
        self._healthy = True
        self._next_attempt = 0.0
        self.pending_labels = labels.PendingLabels(settings, on_label_accepted)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inflight: list[dict] = []
        self._last_drop_log = -1e9
        self._size_gauge = metrics.QUEUE_SIZE.labels("mongo")
        metrics.QUEUE_CAPACITY.labels("mongo").set(settings.queue_capacity)
        self.dead_letter = DeadLetter(settings.spool_dir)
        self._refuse = settings.unlogged == "refuse"
        self._held: list[dict] = []  # `refuse`: a batch neither written nor spooled, retried before anything else
        self._taken = 0  # records taken off the queue and not yet marked done
        self._last_unlogged = -1e9  # monotonic time a record last could not be logged
        self.unlogged_reason = ""
        metrics.LOG_WRITABLE.set(1)

    @property
    def healthy(self) -> bool:
        """Whether the last write to MongoDB succeeded."""
        return self._healthy

    def size(self) -> int:
        """Return the records waiting in this worker's queue."""
        return self._queue.qsize()

    def logging_problem(self) -> str:
        """Return why this worker could not log a record lately ("" when it could log every one)."""
        if self._held:
            return self.unlogged_reason or "held"
        if time.monotonic() - self._last_unlogged < UNLOGGED_MEMORY_SECONDS:
            return self.unlogged_reason
        return ""

    def _unlogged(self, reason: str) -> None:
        self._last_unlogged = time.monotonic()
        self.unlogged_reason = reason
        metrics.LOG_WRITABLE.set(0)

    def _refused(self, records: int, reason: str) -> bool:
        metrics.UNLOGGED_REFUSED.inc(records)
        self._unlogged(reason)
        return False

    def submit(self, records: list[dict]) -> bool:
        """Append records to the write-ahead log, then queue them without blocking; count what a full queue drops.

        Return False when `PREDICTION_UNLOGGED=refuse` and the records cannot be logged (the writer holds a
        batch it can neither write nor spool, the queue has no room, or the log cannot be appended to):
        the caller answers 503. With `serve` it always returns True.
        """
        self._ensure_started()
        if self._refuse:
            if self._held:
                return self._refused(len(records), self.unlogged_reason or "held")
            if self._queue.qsize() + len(records) > self._queue.maxsize:
                return self._refused(len(records), "queue_full")
        wal_file = self._append_to_wal(records)
        if self._refuse and wal_file is None and self.wal is not None:
            return self._refused(len(records), "wal_error")
        for i, record in enumerate(records):
            if wal_file is not None:
                record = {**record, _WAL_KEY: wal_file}
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                if self._refuse:  # another thread filled it since the check: refused, not lost
                    if wal_file is not None:
                        self.wal.ack(wal_file, len(records) - i)
                    return self._refused(len(records), "queue_full")
                metrics.DROPPED.labels("mongo", "queue_full").inc(len(records) - i)
                if wal_file is not None:
                    self.wal.ack(wal_file, len(records) - i)  # counted as lost: not replayed after a crash either
                if time.monotonic() - self._last_drop_log > 60:
                    self._last_drop_log = time.monotonic()
                    log.error("MongoDB queue full: dropping records", extra={"capacity": self._queue.maxsize})
                break
        # Set here too, not only by the writer: a writer stuck on MongoDB must not hide a growing queue.
        self._size_gauge.set(self._queue.qsize())
        return True

    def submit_labels(self, records: list[dict]) -> bool:
        """Queue label records unless labels would fill more than their share of the queue; return whether taken."""
        if self._queue.qsize() + len(records) > self._queue.maxsize * LABEL_QUEUE_SHARE:
            return False
        return self.submit(records)

    def _append_to_wal(self, records: list[dict]) -> Path | None:
        if self.wal is None or not records:
            return None
        try:
            return self.wal.append(records)
        except Exception as exc:  # noqa: BLE001 - a full disk must not fail the prediction: queue it anyway
            metrics.WAL_ERRORS.inc()
            self._unlogged("disk_full" if getattr(exc, "errno", None) == errno.ENOSPC else "wal_error")
            if time.monotonic() - self._last_drop_log > 60:
                self._last_drop_log = time.monotonic()
                log.error("cannot append to the write-ahead log", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None

    def idle(self) -> bool:
        """Return whether everything queued so far has been handled (written or spooled)."""
        # Counts records taken but not yet written or spooled (a held batch too).
        return self._queue.unfinished_tasks == 0

    def _ensure_started(self) -> None:
        # Started on first use, i.e. in the worker after gunicorn forked it: threads do not survive fork.
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="mongo-sink", daemon=True)
                self._thread.start()

    def start(self) -> None:
        """Start the writer thread now (it also starts on the first submitted record)."""
        self._ensure_started()

    def _take(self, timeout: float) -> list[dict]:
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return []
        self._taken += 1
        batch = [self._unwrap(first)]
        self._inflight = batch
        # Fill the batch for up to one flush interval: one write of many documents costs MongoDB and
        # this worker far less than many writes of a few.
        # Drained in bulk every `_FILL_POLL` seconds, not one blocking `get` per record: a writer waiting in
        # `get` is woken by every request's `put` (a thread switch and a GIL hand-off per prediction, on
        # the request path's CPU).
        deadline = time.monotonic() + self.settings.flush_interval_seconds
        while len(batch) < self.settings.batch_size:
            try:
                while len(batch) < self.settings.batch_size:
                    batch.append(self._unwrap(self._queue.get_nowait()))
                    self._taken += 1
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if len(batch) >= self.settings.batch_size or remaining <= 0 or self._stop.wait(min(remaining, _FILL_POLL)):
                break
        return batch

    def _unwrap(self, record: dict) -> dict:
        # The log file travels with the record only as far as here: it is acknowledged once the batch is handled.
        wal_file = record.pop(_WAL_KEY, None)
        if wal_file is not None:
            self._wal_acks[wal_file] += 1
        return record

    def _ack_wal(self) -> None:
        acks, self._wal_acks = self._wal_acks, Counter()
        for wal_file, count in acks.items():
            try:
                self.wal.ack(wal_file, count)
            except OSError as exc:
                log.error("cannot trim the write-ahead log", extra={"error": str(exc)})

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._cycle(self.settings.flush_interval_seconds)
            except Exception:  # noqa: BLE001 - the writer must outlive any one bad batch
                log.exception("mongo sink cycle failed")
                time.sleep(self.settings.flush_interval_seconds)

    def _cycle(self, timeout: float) -> None:
        held = bool(self._held)
        batch = self._held if held else self._take(timeout)
        try:
            if batch:
                kept = self._handle(batch)
                if not kept:
                    self._held = []
                    # Written, spooled (fsynced), quarantined or counted as dropped: the log need not keep them.
                    self._ack_wal()
                else:
                    # `refuse`: kept (and still in the write-ahead log); nothing new is taken until it is logged.
                    self._held = kept
                    self._inflight = kept
                    self._stop.wait(max(timeout, 0.05))
            if self.wal is not None:
                self.wal.touch()
                if time.monotonic() >= self._next_recovery:
                    self._recover_dead_workers()
            if self._usable():
                if time.monotonic() >= self._next_index_check:
                    self._scheduled_index_check()
                self._replay_one()
            if self._usable():
                retry = self.pending_labels.due(self.settings.batch_size)
                kept = self._handle(retry) if retry else []
                if kept:
                    self._held = kept  # `refuse`: kept like any batch that cannot be logged
            if self.wal is not None and self.wal.damaged:
                damaged, self.wal.damaged = self.wal.damaged, 0
                metrics.DROPPED.labels("mongo", "damaged_log").inc(damaged)
        finally:
            if not self._held:
                for _ in range(self._taken):
                    self._queue.task_done()
                self._taken = 0
                self._inflight = []
                if not self.logging_problem():
                    metrics.LOG_WRITABLE.set(1)
            self._size_gauge.set(self._queue.qsize())

    def _usable(self) -> bool:
        return self._healthy or time.monotonic() >= self._next_attempt

    def _handle(self, batch: list[dict]) -> list[dict]:
        """Write, spool, quarantine or (`serve`) drop the batch; return what `refuse` keeps for a retry."""
        batch = self._screen(batch)
        if not batch:
            return []
        if self._usable() and self._write(batch):
            return []
        return self._to_spool(batch, hold=self._refuse)

    def _screen(self, batch: list) -> list[dict]:
        # A record that is no record (a `{}` line in a log, a damaged segment's survivor) is quarantined
        # here: given to MongoDB it would fail the whole batch for ever.
        kept, bad = _partition(batch)
        self._quarantine_malformed(bad)
        return kept

    def _quarantine_malformed(self, bad: list[tuple[Any, str]]) -> None:
        for record, problem in bad:
            self.dead_letter.quarantine(record, "malformed", problem)

    def _recover_dead_workers(self) -> None:
        # A worker SIGKILLed (or the whole service) left its log behind: its records go to the spool.
        self._next_recovery = time.monotonic() + max(1.0, self.settings.mongo_retry_seconds)
        try:
            moved = self.wal.recover(self.spool)
        except Exception as exc:  # noqa: BLE001 - retried on the next schedule
            log.error("write-ahead log recovery failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            return
        if moved:
            metrics.WAL_RECOVERED.inc(moved)

    def _ensure_indexes_if_new_connection(self) -> None:
        if self._indexed_at_connections != self._connections.opened:
            self._check_indexes()

    def _scheduled_index_check(self) -> None:
        try:
            self._check_indexes()
        except Exception as exc:  # noqa: BLE001 - MongoDB away: the next write re-checks before inserting
            self._indexed_at_connections = -1
            log.debug("index check failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    def _check_indexes(self) -> None:
        """Recreate missing indexes; a unique index that cannot be built (duplicates stored) is reported, not fatal."""
        self._next_index_check = time.monotonic() + self.settings.index_check_seconds
        missing = missing_indexes(self._collection)
        if missing:
            log.warning("indexes missing on predictions: creating them", extra={"indexes": missing})
            try:
                ensure_indexes(self._collection)
                missing = missing_indexes(self._collection)
            except Exception as exc:  # noqa: BLE001 - e.g. duplicates already stored: keep writing, say so
                error = f"{type(exc).__name__}: {exc}"
                log.error("cannot create the indexes", extra={"indexes": missing, "error": error})
        self.indexes_missing = missing
        metrics.INDEXES_MISSING.set(len(missing))
        self._indexed_at_connections = self._connections.opened

    def _write(self, batch: list[dict]) -> bool:
        # ANY exception means "not written": spool and retry. Not only driver errors: pymongo's login
        # against nx-27017 raises KeyError, and an unexpected error must never lose accepted records.
        try:
            self._ensure_indexes_if_new_connection()
            docs = store.distinct_by_request_id([r["doc"] for r in batch if r["op"] == "insert"])
            written, refused = store.insert_documents(self._collection, docs)
            for refusal in refused:  # the rest of the batch is in: only these are set aside
                self.dead_letter.quarantine({"op": "insert", "doc": refusal.doc}, refusal.reason, refusal.error)
            # The insert itself may have opened the connection to a MongoDB that came back empty: no duplicate
            # of this batch can be stored yet, so creating the unique index now still guards every later batch.
            self._ensure_indexes_if_new_connection()
            label_records = [r for r in batch if r["op"] == labels.OP]
            if label_records:
                self._settle_labels(label_records)
        except Exception as exc:  # noqa: BLE001 - see above
            metrics.MONGO_WRITES.labels("error").inc()
            if self._healthy:
                log.warning(
                    "mongodb write failed; spooling until it is back",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )
            self._healthy = False
            self._indexed_at_connections = -1  # whatever comes back may have lost them
            self._next_attempt = time.monotonic() + self.settings.mongo_retry_seconds
            return False
        metrics.MONGO_WRITES.labels("ok").inc()
        metrics.MONGO_WRITTEN.inc(written)
        if not self._healthy:
            log.warning("mongodb is back")
        self._healthy = True
        return True

    def _settle_labels(self, records: list[dict]) -> None:
        try:
            self.pending_labels.settle(self._collection, records)
        except Exception as exc:
            reason = refusal_reason(exc)
            if reason is None:
                raise
            if len(records) == 1:
                self.dead_letter.quarantine(records[0], reason, f"{type(exc).__name__}: {exc}")
                return
            for record in records:  # find the refused one; the winners so far are marked done
                self._settle_labels([record])

    def _to_spool(self, batch: list[dict], hold: bool = False) -> list[dict]:
        """Spool what fits of the batch; return the rest when `hold` (the caller keeps it), else count it dropped."""
        rest, reason = self._spool_what_fits(batch)
        if not rest:
            if self.unlogged_reason and not self._held:
                self.unlogged_reason = ""
            return []
        self._unlogged(reason)
        if hold:
            return rest
        metrics.DROPPED.labels("mongo", reason).inc(len(rest))
        if time.monotonic() - self._last_drop_log > 60:  # at most once a minute: the counter has the totals
            self._last_drop_log = time.monotonic()
            log.error("dropped records MongoDB could not take", extra={"reason": reason, "records": len(rest)})
        return []

    def _spool_what_fits(self, batch: list[dict]) -> tuple[list[dict], str]:
        """Spool `batch`, halving it while the spool or its disk is too full; return what did not fit and why."""
        try:
            if self.spool.write(batch):
                return [], ""
            reason = "spool_full"
        except Exception as exc:  # noqa: BLE001 - OSError mostly, but whatever it is, it is counted
            full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            reason = "disk_full" if full else "spool_error"
            if time.monotonic() - self._last_unlogged > 60:
                log.error("cannot write the spool", extra={"error": f"{type(exc).__name__}: {exc}"})
        if len(batch) == 1 or reason == "spool_error":
            return batch, reason
        # A smaller segment may still fit: lose only what really does not (at most log2(batch) more tries).
        half = len(batch) // 2
        rest, why = self._spool_what_fits(batch[:half])
        if rest:
            return rest + batch[half:], why
        return self._spool_what_fits(batch[half:])

    def _replay_one(self) -> None:
        segment = self.spool.claim()
        if segment is None:
            return
        try:
            records, damaged = self.spool.read(segment)
        except OSError as exc:  # cannot be opened at all: retried later, like an outage
            log.error("cannot read a spool segment", extra={"segment": str(segment), "error": str(exc)})
            self.spool.release(segment)
            return
        # Quarantined only once the segment is done with: a segment released for a retry (MongoDB away)
        # still holds its malformed records, and quarantining them at each attempt wrote them again and again.
        records, bad = _partition(records)
        if records and not self._write(records):
            self.spool.release(segment)
            return
        self._quarantine_malformed(bad)
        if damaged:
            # Every intact record is in MongoDB now; the damaged ones are gone: counted and alerted.
            metrics.DROPPED.labels("mongo", "damaged_segment").inc(damaged)
            log.error("damaged spool segment: intact records replayed", extra={"file": segment.name, "lost": damaged})
        self.spool.done(segment)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and spool whatever is still queued, so a restart loses nothing.

        Queued records go straight to the spool rather than to MongoDB: a spool write is
        fast and durable, while a MongoDB that hangs could hold the shutdown past the
        server's grace period. The next start replays the spool.
        """
        self._stop.set()
        leftovers: list[dict] = list(self._held)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._inflight is not self._held:
                # Stuck in a write: the batch may or may not land; spooling it too is safe (idempotent replay).
                leftovers.extend(self._inflight)
        leftovers.extend(self.pending_labels.drain())
        while True:
            try:
                leftovers.append(self._unwrap(self._queue.get_nowait()))
            except queue.Empty:
                break
        size = self.settings.batch_size
        # What the spool refuses stays in the write-ahead log (kept below) for the next start; without a log it is
        # counted as dropped.
        hold = self.wal is not None
        spooled = all([not self._to_spool(leftovers[i : i + size], hold) for i in range(0, len(leftovers), size)])
        if leftovers:
            log.warning("spooled queued records at shutdown", extra={"records": len(leftovers)})
        if self.wal is not None:
            # Every record is in MongoDB or the spool now (a batch stuck in a write was spooled too); if the
            # spool refused some, keep the log: the next start replays it, idempotently.
            self.wal.close(handled=spooled)
        metrics.QUEUE_SIZE.labels("mongo").set(0)
        self._client.close()


def _partition(batch: list) -> tuple[list[dict], list[tuple[Any, str]]]:
    """Split `batch` into the records the writer can apply and (record, why not) for the rest."""
    kept: list[dict] = []
    bad: list[tuple[Any, str]] = []
    for record in batch:
        problem = malformed(record)
        if problem is None:
            kept.append(record)
        else:
            bad.append((record, problem))
    return kept, bad
