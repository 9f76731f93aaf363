"""Ground truth that arrives later: labels are sent to `/feedback` after a delay, for a share of the rows.

A label is `{"request_id": ..., <target name>: value}`: the target's name comes from the model's description.
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests

from monitoring_core.description import REQUEST_ID

BATCH_MAX = 500


@dataclass
class FeedbackStats:
    """What happened to the labels of the run."""

    scheduled: int = 0
    skipped: int = 0  # rows whose label never arrives (outside the feedback share)
    sent: int = 0
    failed: int = 0
    dropped: int = 0  # still waiting when the run was interrupted


class FeedbackSender:
    """A background thread that posts due labels in batches to `{url}/feedback`."""

    def __init__(
        self,
        url: str,
        label_key: str,
        share: float,
        delay_seconds: float,
        seed: int = 42,
        token: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not 0 <= share <= 1:
            raise ValueError("feedback share must be within [0, 1]")
        self.url = url.rstrip("/") + "/feedback"
        self.label_key = label_key
        self.share, self.delay = share, max(delay_seconds, 0.0)
        self.stats = FeedbackStats()
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout
        self._rng = np.random.default_rng(seed)
        self._heap: list[tuple[float, str, Any]] = []
        self._cond = threading.Condition()
        self._draining = False  # no more labels will be scheduled: stop once the heap is empty
        self._stopping = False  # stop now
        self._thread = threading.Thread(target=self._loop, name="feedback", daemon=True)
        self._session = requests.Session()

    def start(self) -> FeedbackSender:
        """Start the sending thread."""
        self._thread.start()
        return self

    def schedule(self, request_id: str, label: Any) -> None:
        """Queue the label of one served row, due after a jittered delay (or skip it, outside the share)."""
        with self._cond:
            if self._rng.random() >= self.share:
                self.stats.skipped += 1
                return
            # Labels trickle in: uniform between half and one and a half times the mean delay.
            due = time.monotonic() + self.delay * self._rng.uniform(0.5, 1.5)
            heapq.heappush(self._heap, (due, request_id, label))
            self.stats.scheduled += 1
            self._cond.notify()

    def pending(self) -> int:
        """Return how many labels wait to be sent."""
        with self._cond:
            return len(self._heap)

    def _take_due(self, everything: bool) -> list[tuple[float, str, Any]]:
        now = time.monotonic()
        batch = []
        while self._heap and len(batch) < BATCH_MAX and (everything or self._heap[0][0] <= now):
            batch.append(heapq.heappop(self._heap))
        return batch

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (self._heap and self._heap[0][0] <= time.monotonic()):
                    if self._draining and not self._heap:
                        return
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout=wait)
                if self._stopping:
                    return
                batch = self._take_due(everything=False)
            self._post(batch)

    def _post(self, batch: list[tuple[float, str, Any]]) -> None:
        if not batch:
            return
        body = [{REQUEST_ID: rid, self.label_key: label} for _, rid, label in batch]
        try:
            response = self._session.post(self.url, json=body, headers=self._headers, timeout=self._timeout)
            ok = response.status_code < 300
        except requests.RequestException:
            ok = False
        if ok:
            self.stats.sent += len(batch)
        else:
            self.stats.failed += len(batch)

    def close(self, drain: bool) -> bool:
        """Stop the thread; with `drain`, first wait until every waiting label came due and was sent.

        Returns whether the wait was interrupted (Ctrl-C); labels still waiting then are counted as dropped.
        """
        interrupted = False
        with self._cond:
            self._draining = True
            self._stopping = not drain
            self._cond.notify()
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.2)  # a bounded join stays responsive to Ctrl-C
        except KeyboardInterrupt:
            interrupted = True
            with self._cond:
                self._stopping = True
                self._cond.notify()
            self._thread.join(timeout=self._timeout + 1)
        with self._cond:
            self.stats.dropped += len(self._heap)
            self._heap.clear()
        self._session.close()
        return interrupted
