"""A bounded, thread-safe sliding window of recent rows per model, with late labels joined by request id.

Rows live in fixed-size column arrays used as a ring buffer: an append writes a batch
under a short lock, and an evaluation copies the arrays (a few microseconds) and works
on the copy, so ingestion never waits for an evaluation.

Columns are typed by the model's description: numbers (and class probabilities) as float
arrays, datetimes as epoch seconds, categories and class labels as object arrays of their text
(`category_key`: 3, 3.0 and "3" are one category), None or NaN where missing. The prediction and
the target are numbers for a regressor, class text for a classifier.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring_core.description import REQUEST_ID, TIMESTAMP, Kind, ModelDescription, category_key
from monitoring_core.records import ACCEPTED, DUPLICATE, QUEUED, UNKNOWN

LABEL_TIMESTAMP = "label_timestamp"
Label = tuple[str, Any, float]  # (request id, target: a number or a class's text, label epoch seconds)


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


@dataclass(frozen=True)
class Columns:
    """The window's columns of one model: which hold numbers, which hold text."""

    numbers: tuple[str, ...]  # rows' numeric columns (epoch seconds for datetimes)
    texts: tuple[str, ...]  # rows' category / class columns
    target: str
    target_is_text: bool

    @classmethod
    def of(cls, description: ModelDescription) -> Columns:
        """Return the columns a row of `description` fills."""
        numbers = [f.name for f in description.features if f.kind is not Kind.CATEGORICAL]
        texts = [f.name for f in description.features if f.kind is Kind.CATEGORICAL]
        (texts if description.is_classification else numbers).append(description.prediction_column)
        numbers.extend(description.probability_columns.values())
        numbers.append(TIMESTAMP)
        return cls(tuple(numbers), tuple(texts), description.target_column, description.is_classification)


def _text(value: Any) -> str | None:
    return None if value is None else category_key(value)


class Window:
    """The most recent `size` rows of one model; thread-safe."""

    def __init__(self, description: ModelDescription, size: int, max_pending_labels: int = 10_000) -> None:
        if size < 1:
            raise ValueError("window size must be >= 1")
        self.description = description
        self.columns = Columns.of(description)
        self.size = size
        self.max_pending_labels = max_pending_labels
        self._lock = threading.Lock()
        self._numbers = {column: np.full(size, np.nan) for column in (*self.columns.numbers, LABEL_TIMESTAMP)}
        self._texts = {column: np.full(size, None, dtype=object) for column in self.columns.texts}
        self._target = np.full(size, None, dtype=object) if self.columns.target_is_text else np.full(size, np.nan)
        self._labelled = np.zeros(size, dtype=bool)
        self._ids: list[str | None] = [None] * size
        self._slot_of: dict[str, int] = {}
        self._written = 0  # rows ever written; the next slot is _written % size
        self._pending: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def __len__(self) -> int:
        return min(self._written, self.size)

    @property
    def pending_labels(self) -> int:
        """Return how many labels wait for their row."""
        return len(self._pending)

    def append(self, rows: Sequence[Mapping[str, Any]]) -> AppendResult:
        """Append rows (request_id, timestamp as epoch seconds, the described columns; None = missing)."""
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
            for column in self.columns.numbers:
                self._numbers[column][slots] = np.array([row.get(column) for row in batch], dtype=float)
            for column in self.columns.texts:
                values = np.empty(n, dtype=object)
                values[:] = [_text(row.get(column)) for row in batch]
                self._texts[column][slots] = values
            self._target[slots] = None if self.columns.target_is_text else np.nan
            self._labelled[slots] = False
            self._numbers[LABEL_TIMESTAMP][slots] = np.nan
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

    def add_labels(self, labels: Sequence[Label]) -> LabelResult:
        """Join (request_id, target, label epoch seconds) to the window; keep early labels pending."""
        dropped = 0
        outcomes: list[str] = []
        with self._lock:
            for rid, target, at in labels:
                slot = self._slot_of.get(rid)
                if slot is not None:
                    # The first label accepted wins, as in MongoDB: an earlier-accepted label that was
                    # forwarded later replaces the one the window holds.
                    if not self._labelled[slot] or at < self._numbers[LABEL_TIMESTAMP][slot]:
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

    def _set_label(self, slot: int, label: tuple[Any, float]) -> None:
        target, at = label
        self._target[slot] = _text(target) if self.columns.target_is_text else float(target)
        self._labelled[slot] = True
        self._numbers[LABEL_TIMESTAMP][slot] = at

    def snapshot(self) -> pd.DataFrame:
        """Return a copy of the window, oldest row first: request id, described columns, timestamps, target."""
        with self._lock:
            n = len(self)
            start = self._written % self.size if self._written > self.size else 0
            order = (start + np.arange(n)) % self.size
            values: dict[str, np.ndarray] = {column: array[order] for column, array in self._numbers.items()}
            values.update({column: array[order] for column, array in self._texts.items()})
            values[self.columns.target] = self._target[order]
            ids = [self._ids[i] for i in order.tolist()]
        frame = pd.DataFrame(values)
        frame.insert(0, REQUEST_ID, ids)
        return frame
