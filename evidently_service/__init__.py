"""The metrics service: sliding-window drift, data quality and model quality, exported to Prometheus."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evidently_service.settings import Settings

# The key of the per-worker state on `app.extensions`; here, so the gunicorn master reads it without the app.
EXTENSION = "evidently_service"

if TYPE_CHECKING:
    from flask import Flask


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings from the environment (unless given), monitors, routes."""
    # Imported here so `python -m evidently_service` checks its settings before loading Evidently.
    from evidently_service.app import build_app

    return build_app(settings or Settings.from_env())
