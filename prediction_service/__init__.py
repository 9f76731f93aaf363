"""The prediction service: a Flask app serving one model folder (MODEL_DIR), logging and forwarding every prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prediction_service.settings import Settings

# The key of the per-worker state on `app.extensions`; here, so the gunicorn master reads it without the app.
EXTENSION = "prediction_service"

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings from the environment (unless given), model, monitoring pipelines, routes."""
    # Imported here, not at module level: `python -m prediction_service` imports this package in the
    # gunicorn master before PROMETHEUS_MULTIPROC_DIR is set, and prometheus_client fixes its mode on import.
    from prediction_service.app import build_app

    return build_app(settings or Settings.from_env())
