"""Which fields outside the schema the rows carry: a bounded top-K of names (the schema-change signal).

Field names come from clients, so their number is unbounded; a Prometheus label set must not be.
The tally is the Space-Saving algorithm (Metwally et al., 2005): at most `capacity` names are
tracked; a new name replaces the least-counted one and inherits its count, so any name seen in
more than 1/capacity of the rows is always tracked, and a count is over by at most its `error`.
Only the `top` most-counted names are exported. A row the prediction service sends again (a
retried batch) is counted once: the ids of the latest `recent` rows with unknown fields are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

CAPACITY = 100  # names tracked
TOP = 20  # names exported (label values of `evidently_unknown_field_rows`)
RECENT = 20_000  # request ids remembered, so a re-sent row is not counted twice


class FieldTally:
    """A thread-safe Space-Saving tally of field names over rows."""

    def __init__(self, capacity: int = CAPACITY, top: int = TOP, recent: int = RECENT) -> None:
        if capacity < 1 or top < 1:
            raise ValueError("capacity and top must be >= 1")
        self.capacity = capacity
        self.top_n = min(top, capacity)
        self.recent = recent
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._rows = 0  # rows that carried at least one unknown field
        self._lock = threading.Lock()

    def add(self, rows: Iterable[tuple[str, Iterable[str] | None]]) -> None:
        """Count every name of every (request id, unknown field names or None) row not counted recently."""
        with self._lock:
            for request_id, names in rows:
                if not names or request_id in self._seen:
                    continue
                self._seen[request_id] = None
                if len(self._seen) > self.recent:
                    self._seen.popitem(last=False)
                self._rows += 1
                for name in set(names):
                    self._add(name)

    def _add(self, name: str) -> None:
        if name in self._counts:
            self._counts[name] += 1
            return
        if len(self._counts) < self.capacity:
            self._counts[name] = 1
            self._errors[name] = 0
            return
        victim = min(self._counts, key=self._counts.__getitem__)
        floor = self._counts.pop(victim)
        self._errors.pop(victim)
        self._counts[name] = floor + 1
        self._errors[name] = floor

    @property
    def rows(self) -> int:
        """Return how many rows carried at least one unknown field."""
        with self._lock:
            return self._rows

    def top(self) -> list[tuple[str, int]]:
        """Return the `top` most-counted names with their counts, highest first (ties by name)."""
        with self._lock:
            ranked = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
        return ranked[: self.top_n]
