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
from collections.abc import Callable
from typing import Any

from pymongo.errors import PyMongoError

from monitoring_core.documents import ensure_indexes
from prediction_service import labels, metrics, store
from prediction_service.settings import Settings
from prediction_service.spool import Spool

log = logging.getLogger(__name__)
# Labels may fill at most this share of the queue: a flood of /feedback never crowds out predictions.
LABEL_QUEUE_SHARE = 0.5


class MongoSink:
    """One per worker: takes records off the request path and gets them into MongoDB exactly once."""

    def __init__(
        self,
        settings: Settings,
        spool: Spool,
        on_label_accepted: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.spool = spool
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=settings.queue_capacity)
        self._client = store.connect(settings)
        self._collection = store.predictions(self._client, settings)
        self._indexed = False
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
        """Queue records without blocking; count the ones a full queue cannot take."""
        self._ensure_started()
        for i, record in enumerate(records):
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                metrics.DROPPED.labels("mongo", "queue_full").inc(len(records) - i)
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
        batch = [first]
        self._inflight = batch
        # Fill the batch for up to one flush interval: one write of many documents costs MongoDB and
        # this worker far less than many writes of a few.
        deadline = time.monotonic() + self.settings.flush_interval_seconds
        while len(batch) < self.settings.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

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
            if self._usable():
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

    def _write(self, batch: list[dict]) -> bool:
        try:
            if not self._indexed:
                ensure_indexes(self._collection)
                self._indexed = True
            docs = [r["doc"] for r in batch if r["op"] == "insert"]
            written = store.insert_documents(self._collection, docs)
            label_records = [r for r in batch if r["op"] == labels.OP]
            if label_records:
                self.pending_labels.settle(self._collection, label_records)
        except PyMongoError as exc:
            metrics.MONGO_WRITES.labels("error").inc()
            if self._healthy:
                log.warning("mongodb write failed; spooling until it is back", extra={"error": str(exc)})
            self._healthy = False
            self._next_attempt = time.monotonic() + self.settings.mongo_retry_seconds
            return False
        metrics.MONGO_WRITES.labels("ok").inc()
        metrics.MONGO_WRITTEN.inc(written)
        if not self._healthy:
            log.warning("mongodb is back")
        self._healthy = True
        return True

    def _to_spool(self, batch: list[dict]) -> None:
        try:
            if self.spool.write(batch):
                return
            reason = "spool_full"
        except OSError as exc:
            log.error("cannot write the spool", extra={"error": str(exc)})
            reason = "spool_error"
        metrics.DROPPED.labels("mongo", reason).inc(len(batch))
        if time.monotonic() - self._last_drop_log > 60:  # at most once a minute: the counter has the totals
            self._last_drop_log = time.monotonic()
            log.error("dropped records MongoDB could not take", extra={"reason": reason, "records": len(batch)})

    def _replay_one(self) -> None:
        segment = self.spool.claim()
        if segment is None:
            return
        try:
            records = self.spool.read(segment)
        except (OSError, ValueError) as exc:
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
                leftovers.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for start in range(0, len(leftovers), self.settings.batch_size):
            self._to_spool(leftovers[start : start + self.settings.batch_size])
        if leftovers:
            log.warning("spooled queued records at shutdown", extra={"records": len(leftovers)})
        metrics.QUEUE_SIZE.labels("mongo").set(0)
        self._client.close()
