"""The service's state kept on `app.extensions["evidently_service"]`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from prometheus_client import CollectorRegistry

from evidently_service import EXTENSION
from evidently_service.evaluator import ModelMonitor
from evidently_service.settings import Settings


@dataclass
class ServiceState:
    """What the routes share: settings, one monitor per model, the metrics registry."""

    settings: Settings
    monitors: dict[str, ModelMonitor]
    registry: CollectorRegistry

    def close(self) -> None:
        """Stop every background evaluation (called when the worker exits)."""
        for monitor in self.monitors.values():
            monitor.stop()


def current_state() -> ServiceState:
    """Return the state of the app handling the current request."""
    return current_app.extensions[EXTENSION]
