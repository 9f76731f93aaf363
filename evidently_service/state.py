"""The service's state kept on `app.extensions["evidently_service"]`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app
from prometheus_client import CollectorRegistry

from evidently_service import EXTENSION
from evidently_service.evaluator import ModelMonitor
from evidently_service.settings import Settings

log = logging.getLogger(__name__)

# At most one look at MODELS_DIR for a model the service does not know yet per this many seconds
# (a client posting rows for an unknown name keeps getting 404 without a folder scan per request).
RESCAN_SECONDS = 2.0


@dataclass
class ServiceState:
    """What the routes share: settings, one monitor per model, the metrics registry.

    `loader(name)` returns a monitor for a folder of MODELS_DIR added since the start (None when there
    is none); it raises ValueError when the folder is there but cannot be monitored.
    """

    settings: Settings
    monitors: dict[str, ModelMonitor]
    registry: CollectorRegistry
    loader: Callable[[str], ModelMonitor | None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last_scan: float = field(default=float("-inf"), repr=False)

    def monitor(self, name: str) -> ModelMonitor | None:
        """Return the model's monitor; a folder added to MODELS_DIR since the start is loaded on first use."""
        monitor = self.monitors.get(name)
        if monitor is not None or self.loader is None:
            return monitor
        with self._lock:
            if name in self.monitors:
                return self.monitors[name]
            if time.monotonic() - self._last_scan < RESCAN_SECONDS:
                return None
            self._last_scan = time.monotonic()
            try:
                monitor = self.loader(name)
            except ValueError as exc:  # DescriptionError, ConfigError: the folder is there but bad
                log.error("a model folder added since the start cannot be monitored", extra={"error": str(exc)})
                return None
            if monitor is None:
                return None
            # Readers iterate over a snapshot (list(...)): adding a key never breaks a scrape in progress.
            self.monitors[name] = monitor
        log.warning("monitoring a model folder added since the start", extra={"model": name})
        return monitor

    def close(self) -> None:
        """Stop every background evaluation (called when the worker exits)."""
        for monitor in list(self.monitors.values()):
            monitor.stop()


def current_state() -> ServiceState:
    """Return the state of the app handling the current request."""
    return current_app.extensions[EXTENSION]
