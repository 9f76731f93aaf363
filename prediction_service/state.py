"""The per-worker state kept on `app.extensions["prediction_service"]`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from pymongo import MongoClient
from pymongo.collection import Collection

from prediction_service import EXTENSION
from prediction_service.health import DependencyProbe
from prediction_service.monitoring import Monitoring
from prediction_service.settings import Settings
from prediction_service.unknown_fields import UnknownFieldLog
from ride_duration.model_loader import ServedModel


@dataclass
class ServiceState:
    """The model, the monitoring pipelines and the MongoDB client of one worker."""

    settings: Settings
    model: ServedModel
    monitoring: Monitoring
    probe: DependencyProbe
    mongo: MongoClient | None
    collection: Collection | None
    unknown_fields: UnknownFieldLog

    def close(self) -> None:
        """Flush the pipelines and release clients (called when the worker exits)."""
        self.monitoring.close()
        self.probe.close()


def current_state() -> ServiceState:
    """Return the state of the app handling the current request."""
    return current_app.extensions[EXTENSION]
