"""The per-worker state kept on `app.extensions["prediction_service"]`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import current_app
from pymongo import MongoClient
from pymongo.collection import Collection

from monitoring_core.description import ModelDescription
from prediction_service import EXTENSION, metrics
from prediction_service.health import DependencyProbe
from prediction_service.model_loader import ServedModel
from prediction_service.monitoring import Monitoring
from prediction_service.settings import Settings
from prediction_service.unknown_fields import UnknownFieldLog

# A regression prediction in one of these units is observed in prediction_predicted_duration_seconds.
SECONDS_PER_UNIT = {"seconds": 1.0, "s": 1.0, "minutes": 60.0, "min": 60.0, "hours": 3600.0, "h": 3600.0}


@dataclass
class ServiceState:
    """The model, its description, the monitoring pipelines and the MongoDB client of one worker."""

    settings: Settings
    description: ModelDescription
    model: ServedModel
    monitoring: Monitoring
    probe: DependencyProbe
    mongo: MongoClient | None
    collection: Collection | None
    unknown_fields: UnknownFieldLog

    @property
    def model_name(self) -> str:
        """Return the served model's name (its description's): the `model` label, the documents' model_name."""
        return self.description.name

    def observe_predictions(self, predictions: Sequence[Any]) -> None:
        """Count predicted classes (classifier), or observe durations (a regressor predicting a time)."""
        if self.description.is_classification:
            for cls in predictions:
                metrics.PREDICTED_CLASSES.labels(self.model_name, cls).inc()
            return
        seconds = SECONDS_PER_UNIT.get(self.description.prediction.unit.strip().lower())
        if seconds is not None:
            histogram = metrics.PREDICTED_DURATION.labels(self.model_name)
            for value in predictions:
                histogram.observe(value * seconds)

    def close(self) -> None:
        """Flush the pipelines and release clients (called when the worker exits)."""
        self.monitoring.close()
        self.probe.close()


def current_state() -> ServiceState:
    """Return the state of the app handling the current request."""
    return current_app.extensions[EXTENSION]
