"""Count and log the fields outside the schema that served rows carried (names never become label values)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from monitoring_core.unknown_fields import UnknownFields
from prediction_service import metrics

log = logging.getLogger(__name__)
MAX_LOGGED_NAMES = 1000  # per worker: past this many distinct names, new ones are no longer logged once each


class UnknownFieldLog:
    """Per worker: counts unknown fields by outcome and logs each name the first time it appears (a warning)."""

    def __init__(self, model_name: str, policy: str) -> None:
        self.model_name = model_name
        self.policy = policy
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def record(self, rides: Sequence[UnknownFields]) -> None:
        """Count the unknown fields of the served rows; log names this worker has not logged yet."""
        seen = [unknown for unknown in rides if unknown.seen]
        if not seen:
            return
        outcome = "kept" if self.policy == "keep" else "ignored"
        metrics.UNKNOWN_FIELDS.labels(self.model_name, outcome).inc(sum(len(u.names) for u in seen))
        dropped = sum(u.dropped for u in seen)
        if dropped:
            metrics.UNKNOWN_FIELDS.labels(self.model_name, "dropped").inc(dropped)
        names = {name for u in seen for name in u.names}
        with self._lock:
            room = max(0, MAX_LOGGED_NAMES - len(self._logged))
            new = sorted(names - self._logged)[:room]
            self._logged.update(new)
        if new:
            # Once per name and worker, at warning (the default level): an upstream schema change shows in the log.
            log.warning(
                "new fields outside the schema", extra={"model": self.model_name, "policy": self.policy, "fields": new}
            )
        log.info("fields outside the schema", extra={"rows": len(seen), "fields": sorted(names), "dropped": dropped})
