"""A bounded, thread-safe sliding window of recent rows per model, with late labels joined by request id.

Rows live in fixed-size column arrays used as a ring buffer: an append writes a batch
under a short lock, and an evaluation copies the arrays (a few microseconds) and works
on the copy, so ingestion never waits for an evaluation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.records import ACCEPTED, DUPLICATE, QUEUED, UNKNOWN
from ride_duration.schema import FIELD_NAMES, FIELDS_BY_NAME, PREDICTION, REQUEST_ID, TARGET, TIMESTAMP, Kind

LABEL_TIMESTAMP = "label_timestamp"
# Every numeric column the window keeps; datetimes are stored as epoch seconds, missing as NaN.
VALUE_COLUMNS: tuple[str, ...] = (*FIELD_NAMES, PREDICTION, TIMESTAMP, TARGET, LABEL_TIMESTAMP)
_ROW_COLUMNS = (*FIELD_NAMES, PREDICTION, TIMESTAMP)


@dataclass(frozen=True)
class AppendResult:
    """What happened to a batch of rows."""

    appended: int
    duplicates: int
    labelled_from_pending: int
    # New rows of a batch larger than the window, pushed out by its own newer rows before they were ever kept:
    # appended + duplicates + evicted is every row given.
    evicted: int = 0


@dataclass(frozen=True)
class LabelResult:
    """What happened to a batch of labels: counts, and each label's outcome in order."""

    matched: int
    pending: int
    duplicates: int
    pending_dropped: int  # older pending labels pushed out to make room (not necessarily from this batch)
    # Per label: ACCEPTED (joined to its row), QUEUED (pending its row), DUPLICATE, UNKNOWN (no row, none kept).
    outcomes: tuple[str, ...] = ()


class Window:
    """The most recent `size` rows of one model; thread-safe."""

    def __init__(self, size: int, max_pending_labels: int = 10_000) -> None:
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.size = size
        self.max_pending_labels = max_pending_labels
        self._lock = threading.Lock()
        self._values = {column: np.full(size, np.nan) for column in VALUE_COLUMNS}
        self._ids: list[str | None] = [None] * size
        self._slot_of: dict[str, int] = {}
        self._written = 0  # rows ever written; the next slot is _written % size
        self._pending: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return min(self._written, self.size)

    @property
    def pending_labels(self) -> int:
        """Return how many labels wait for their row."""
        return len(self._pending)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> AppendResult:
        """Append rows (request_id, timestamp as epoch seconds, prediction, schema fields; None = missing)."""
        with self._lock:
            fresh: dict[str, Mapping[str, Any]] = {}
            for row in rows:
                rid = row[REQUEST_ID]
                if rid not in self._slot_of and rid not in fresh:
                    fresh[rid] = row
            batch = list(fresh.values())[-self.size :]  # a batch larger than the window keeps its newest rows
            n = len(batch)
            slots = (self._written + np.arange(n)) % self.size
            for slot in slots.tolist():
                old = self._ids[slot]
                if old is not None:
                    del self._slot_of[old]
            for slot, row in zip(slots.tolist(), batch, strict=True):
                rid = row[REQUEST_ID]
                self._ids[slot] = rid
                self._slot_of[rid] = slot
            for column in _ROW_COLUMNS:
                self._values[column][slots] = np.array([row.get(column) for row in batch], dtype=float)
            self._values[TARGET][slots] = np.nan
            self._values[LABEL_TIMESTAMP][slots] = np.nan
            self._written += n
            from_pending = 0
            if self._pending:
                for rid in fresh:
                    label = self._pending.pop(rid, None)
                    if label is not None and rid in self._slot_of:
                        self._set_label(self._slot_of[rid], label)
                        from_pending += 1
            return AppendResult(
                appended=n,
                duplicates=len(rows) - len(fresh),
                labelled_from_pending=from_pending,
                evicted=len(fresh) - n,
            )

    def add_labels(self, labels: Sequence[tuple[str, float, float]]) -> LabelResult:
        """Join (request_id, target, label epoch seconds) to the window; keep early labels pending."""
        dropped = 0
        outcomes: list[str] = []
        with self._lock:
            for rid, target, at in labels:
                slot = self._slot_of.get(rid)
                if slot is not None:
                    # The first label accepted wins, as in MongoDB: an earlier-accepted label that was
                    # forwarded later replaces the one the window holds.
                    held = self._values[LABEL_TIMESTAMP][slot]
                    if np.isnan(self._values[TARGET][slot]) or at < held:
                        self._set_label(slot, (target, at))
                        outcomes.append(ACCEPTED)
                    else:
                        outcomes.append(DUPLICATE)
                    continue
                # The row may still be on its way (the prediction service forwards rows in batches).
                if rid in self._pending:
                    if at < self._pending[rid][1]:
                        self._pending[rid] = (target, at)
                    outcomes.append(DUPLICATE)
                    continue
                if self.max_pending_labels == 0:  # early labels are not kept: no row, no wait
                    outcomes.append(UNKNOWN)
                    dropped += 1
                    continue
                self._pending[rid] = (target, at)
                outcomes.append(QUEUED)
                while len(self._pending) > self.max_pending_labels:
                    self._pending.popitem(last=False)
                    dropped += 1
        return LabelResult(
            matched=outcomes.count(ACCEPTED),
            pending=outcomes.count(QUEUED),
            duplicates=outcomes.count(DUPLICATE),
            pending_dropped=dropped,
            outcomes=tuple(outcomes),
        )

    def _set_label(self, slot: int, label: tuple[float, float]) -> None:
        self._values[TARGET][slot] = label[0]
        self._values[LABEL_TIMESTAMP][slot] = label[1]

    def snapshot(self) -> pd.DataFrame:
        """Return a copy of the window, oldest row first: schema fields, prediction, timestamps, target."""
        with self._lock:
            n = len(self)
            start = self._written % self.size if self._written > self.size else 0
            order = (start + np.arange(n)) % self.size
            values = {column: array[order] for column, array in self._values.items()}
            ids = [self._ids[i] for i in order.tolist()]
        frame = pd.DataFrame(values)
        for name in FIELD_NAMES:
            spec = FIELDS_BY_NAME[name]
            if spec.kind is Kind.CATEGORICAL and not frame[name].isna().any():
                # Zone ids as integers, as in the reference (no missing value to hold).
                frame[name] = frame[name].astype("int64")
        frame.insert(0, REQUEST_ID, ids)
        return frame
