"""Background MongoDB writer: bounded queue -> batched idempotent writes, spooling to disk when MongoDB is away.

Records are operations: `{"op": "insert", "doc": {...}}` (a prediction document) or a label
record (prediction_service/labels.py, which owns everything about labels). A batch is applied
inserts first, then labels; if any part fails the whole batch goes to the spool, which is safe
because inserts are idempotent (unique `request_id`) and labels only set a missing target.
Labels whose prediction is not written yet wait in the writer (`PendingLabels`) for a retry.
"""

from __future__ import annotations

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
from prediction_service.settings import Settings
from prediction_service.spool import Spool
from prediction_service.wal import WriteAheadLog

log = logging.getLogger(__name__)
# Labels may fill at most this share of the queue: a flood of /feedback never crowds out predictions.
LABEL_QUEUE_SHARE = 0.5
_WAL_KEY = "_wal"  # on a queued record: the write-ahead log file it was appended to (never written anywhere)


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
        metrics.SPOOL_CAPACITY.set(settings.spool_capacity_records)

    @property
    def healthy(self) -> bool:
        """Whether the last write to MongoDB succeeded."""
        return self._healthy

    def size(self) -> int:
        """Return the records waiting in this worker's queue."""
        return self._queue.qsize()

    def submit(self, records: list[dict]) -> None:
        """Append records to the write-ahead log, then queue them without blocking; count what a full queue drops."""
        self._ensure_started()
        wal_file = self._append_to_wal(records)
        for i, record in enumerate(records):
            if wal_file is not None:
                record = {**record, _WAL_KEY: wal_file}
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                metrics.DROPPED.labels("mongo", "queue_full").inc(len(records) - i)
                if wal_file is not None:
                    self.wal.ack(wal_file, len(records) - i)  # counted as lost: not replayed after a crash either
                if time.monotonic() - self._last_drop_log > 60:
                    self._last_drop_log = time.monotonic()
                    log.error("MongoDB queue full: dropping records", extra={"capacity": self._queue.maxsize})
                break
        # Set here too, not only by the writer: a writer stuck on MongoDB must not hide a growing queue.
        self._size_gauge.set(self._queue.qsize())

    def submit_labels(self, records: list[dict]) -> bool:
        """Queue label records unless labels would fill more than their share of the queue; return whether taken."""
        if self._queue.qsize() + len(records) > self._queue.maxsize * LABEL_QUEUE_SHARE:
            return False
        self.submit(records)
        return True

    def _append_to_wal(self, records: list[dict]) -> Path | None:
        if self.wal is None or not records:
            return None
        try:
            return self.wal.append(records)
        except Exception as exc:  # noqa: BLE001 - a full disk must not fail the prediction: queue it anyway
            metrics.WAL_ERRORS.inc()
            if time.monotonic() - self._last_drop_log > 60:
                self._last_drop_log = time.monotonic()
                log.error("cannot append to the write-ahead log", extra={"error": f"{type(exc).__name__}: {exc}"})
            return None

    def idle(self) -> bool:
        """Return whether everything queued so far has been handled (written or spooled)."""
        return self._queue.unfinished_tasks == 0  # counts records taken but not yet written or spooled

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
        batch = [self._unwrap(first)]
        self._inflight = batch
        # Fill the batch for up to one flush interval: one write of many documents costs MongoDB and
        # this worker far less than many writes of a few.
        deadline = time.monotonic() + self.settings.flush_interval_seconds
        while len(batch) < self.settings.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(self._unwrap(item))
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
        batch = self._take(timeout)
        try:
            if batch:
                self._handle(batch)
                # Written, spooled (fsynced) or counted as dropped: the log need not keep these any more.
                self._ack_wal()
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
                if retry:
                    self._handle(retry)
        finally:
            for _ in batch:
                self._queue.task_done()
            self._inflight = []
            self._size_gauge.set(self._queue.qsize())
            metrics.SPOOL_RECORDS.set(self.spool.size())

    def _usable(self) -> bool:
        return self._healthy or time.monotonic() >= self._next_attempt

    def _handle(self, batch: list[dict]) -> None:
        if self._usable() and self._write(batch):
            return
        self._to_spool(batch)

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
            written = store.insert_documents(self._collection, docs)
            # The insert itself may have opened the connection to a MongoDB that came back empty: no duplicate
            # of this batch can be stored yet, so creating the unique index now still guards every later batch.
            self._ensure_indexes_if_new_connection()
            label_records = [r for r in batch if r["op"] == labels.OP]
            if label_records:
                self.pending_labels.settle(self._collection, label_records)
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

    def _to_spool(self, batch: list[dict]) -> bool:
        try:
            if self.spool.write(batch):
                return True
            reason = "spool_full"
        except Exception as exc:  # noqa: BLE001 - OSError mostly, but whatever it is, it is counted
            log.error("cannot write the spool", extra={"error": f"{type(exc).__name__}: {exc}"})
            reason = "spool_error"
        metrics.DROPPED.labels("mongo", reason).inc(len(batch))
        if time.monotonic() - self._last_drop_log > 60:  # at most once a minute: the counter has the totals
            self._last_drop_log = time.monotonic()
            log.error("dropped records MongoDB could not take", extra={"reason": reason, "records": len(batch)})
        return False

    def _replay_one(self) -> None:
        segment = self.spool.claim()
        if segment is None:
            return
        try:
            records = self.spool.read(segment)
        except Exception as exc:  # noqa: BLE001 - an unreadable segment must not stop the replay of the others
            log.error("unreadable spool segment kept aside", extra={"segment": str(segment), "error": str(exc)})
            segment.rename(segment.with_name("." + segment.name + ".bad"))
            return
        if self._write(records):
            self.spool.done(segment)
        else:
            self.spool.release(segment)

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and spool whatever is still queued, so a restart loses nothing.

        Queued records go straight to the spool rather than to MongoDB: a spool write is
        fast and durable, while a MongoDB that hangs could hold the shutdown past the
        server's grace period. The next start replays the spool.
        """
        self._stop.set()
        leftovers: list[dict] = []
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # Stuck in a write: the batch may or may not land; spooling it too is safe (idempotent replay).
                leftovers.extend(self._inflight)
        leftovers.extend(self.pending_labels.drain())
        while True:
            try:
                leftovers.append(self._unwrap(self._queue.get_nowait()))
            except queue.Empty:
                break
        size = self.settings.batch_size
        spooled = all([self._to_spool(leftovers[i : i + size]) for i in range(0, len(leftovers), size)])
        if leftovers:
            log.warning("spooled queued records at shutdown", extra={"records": len(leftovers)})
        if self.wal is not None:
            # Every record is in MongoDB or the spool now (a batch stuck in a write was spooled too); if the
            # spool refused some, keep the log: the next start replays it, idempotently.
            self.wal.close(handled=spooled)
        metrics.QUEUE_SIZE.labels("mongo").set(0)
        self._client.close()
