"""Background forwarder: batches rows to the metrics service with timeouts, bounded buffering and counted losses."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque

import requests

from prediction_service import metrics

log = logging.getLogger(__name__)


class Forwarder:
    """One per worker and endpoint: POSTs JSON lists of rows to `url`, never blocking the caller."""

    def __init__(
        self,
        url: str,
        queue_name: str,
        capacity: int,
        batch_size: int,
        flush_interval: float,
        timeout: float,
        retries: int,
        token: str | None = None,
    ) -> None:
        self.url = url
        self.queue_name = queue_name
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.retries = retries
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._buffer: deque[dict] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session: requests.Session | None = None
        self._failed_batch: list[dict] = []
        self._attempts = 0
        self._next_attempt = 0.0
        self._busy = False
        self.reachable: bool | None = None
        self.last_error = ""  # why the last POST failed ("HTTP 401: ...", "ConnectTimeout: ..."); "" after a success
        self.refused: str | None = None  # the metrics service's last 4xx answer, while it refuses
        self._last_drop_log = -1e9
        self._size_gauge = metrics.QUEUE_SIZE.labels(queue_name)
        metrics.QUEUE_CAPACITY.labels(queue_name).set(capacity)

    def size(self) -> int:
        """Return the rows waiting in this worker's buffer (including a batch awaiting retry)."""
        return len(self._buffer) + len(self._failed_batch)

    def idle(self) -> bool:
        """Return whether every submitted row has been sent or given up."""
        return not self._buffer and not self._failed_batch and not self._busy

    def submit(self, rows: list[dict]) -> None:
        """Buffer rows for sending; count the ones a full buffer cannot take."""
        self._ensure_started()
        with self._cond:
            room = self.capacity - len(self._buffer)
            if room < len(rows):
                metrics.DROPPED.labels(self.queue_name, "buffer_full").inc(len(rows) - max(room, 0))
                rows = rows[: max(room, 0)]
            self._buffer.extend(rows)
            if len(self._buffer) >= self.batch_size:
                self._cond.notify()
        self._size_gauge.set(self.size())

    def _ensure_started(self) -> None:
        # Started on first use, in the worker after fork.
        if self._thread is None:
            with self._cond:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name=f"forward-{self.queue_name}", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        self._session = requests.Session()
        while not self._stop.is_set():
            try:
                self._cycle()
            except Exception:  # noqa: BLE001 - the forwarder must outlive any one bad batch
                log.exception("forwarder cycle failed")
                time.sleep(self.flush_interval)

    def _cycle(self) -> None:
        with self._cond:
            if len(self._buffer) < self.batch_size:
                self._cond.wait(self.flush_interval)
            self._busy = True
        try:
            if self._failed_batch:
                if time.monotonic() >= self._next_attempt:
                    self._send(self._failed_batch)
            else:
                batch = self._take()
                if batch:
                    self._send(batch)
        finally:
            self._busy = False
            self._size_gauge.set(self.size())

    def _take(self) -> list[dict]:
        with self._cond:
            count = min(self.batch_size, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    def _post(self, batch: list[dict]) -> bool:
        session = self._session or requests.Session()
        try:
            response = session.post(
                self.url, data=json.dumps(batch), headers=self._headers, timeout=(min(self.timeout, 1.0), self.timeout)
            )
        except Exception as exc:  # noqa: BLE001 - not only requests' errors: a failed batch is retried and counted
            self._log_change(False, f"{type(exc).__name__}: {exc}")
            return False
        if response.status_code >= 400:
            error = f"HTTP {response.status_code}: {response.text[:200]}"
            # A 4xx is an answer, not an outage: e.g. 404 unknown_model, a metrics service whose
            # MODELS_DIR has no folder of this model. Said as such, never as "unreachable".
            self._log_change(False, error, refused=response.status_code < 500)
            return False
        self._log_change(True, "")
        return True

    def _send(self, batch: list[dict]) -> None:
        if self._post(batch):
            metrics.FORWARDED.labels("ok").inc(len(batch))
            self._failed_batch, self._attempts = [], 0
            return
        self._attempts += 1
        if self._attempts > self.retries:
            metrics.FORWARDED.labels("error").inc(len(batch))
            metrics.DROPPED.labels(self.queue_name, "refused" if self.refused else "unreachable").inc(len(batch))
            log.warning(
                "dropped rows the metrics service did not take after retries",
                extra={"url": self.url, "rows": len(batch), "attempts": self._attempts},
            )
            self._failed_batch, self._attempts = [], 0
            return
        self._failed_batch = batch
        # Back off so a metrics service that is down costs one cheap attempt per interval.
        self._next_attempt = time.monotonic() + min(5.0, self.flush_interval * 2**self._attempts)

    def status(self) -> dict:
        """Return whether this worker's last POST was taken (`ok`: None before the first one) and why not."""
        return {"ok": self.reachable, "error": self.last_error}

    def _log_change(self, ok: bool, error: str, refused: bool = False) -> None:
        self.last_error = error
        refusal = error if refused else None
        if ok != self.reachable or (refusal is None) != (self.refused is None):
            if ok:
                log.warning("metrics service reachable", extra={"url": self.url})
            elif refused:
                log.warning("metrics service refused the rows", extra={"url": self.url, "error": error})
            else:
                log.warning("metrics service unreachable", extra={"url": self.url, "error": error})
        self.reachable = ok
        self.refused = refusal

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and try one last send of what is buffered; count the rest as lost."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        rows = self._failed_batch + list(self._buffer)
        self._failed_batch, self._buffer = [], deque()
        deadline = time.monotonic() + timeout
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            if time.monotonic() < deadline and self._post(batch):
                metrics.FORWARDED.labels("ok").inc(len(batch))
            else:
                metrics.FORWARDED.labels("error").inc(len(batch))
                metrics.DROPPED.labels(self.queue_name, "shutdown").inc(len(batch))
        metrics.QUEUE_SIZE.labels(self.queue_name).set(0)
