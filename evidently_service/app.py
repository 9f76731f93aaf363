"""Assemble the Flask app: config and references loaded, windows re-warmed if asked, evaluations started."""

from __future__ import annotations

import logging

from flask import Flask
from prometheus_client import CollectorRegistry

from evidently_service import EXTENSION
from evidently_service.api import bp
from evidently_service.collector import MonitorCollector
from evidently_service.evaluator import ModelMonitor
from evidently_service.rewarm import rewarm
from evidently_service.settings import Settings
from evidently_service.state import ServiceState
from monitoring_core.monitoring_config import load_config
from service_common.auth import TOKEN_CONFIG_KEY
from service_common.errors import register_error_handlers

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> Flask:
    """Return the app for `settings`, its evaluation threads started unless `run_evaluators` is off."""
    configs = load_config(settings.config_path, settings.model_name, settings.reference_path)
    monitors = {name: ModelMonitor.from_config(config) for name, config in configs.items()}
    registry = CollectorRegistry()
    registry.register(MonitorCollector(monitors))
    if settings.rewarm_from_mongodb:
        for monitor in monitors.values():
            rewarm(monitor, settings.mongodb_uri, settings.mongodb_database, settings.mongodb_timeout_ms)

    app = Flask("evidently_service")
    app.config[TOKEN_CONFIG_KEY] = settings.monitoring_token
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions[EXTENSION] = ServiceState(settings, monitors, registry)
    app.register_blueprint(bp)
    register_error_handlers(app)
    if settings.run_evaluators:
        for monitor in monitors.values():
            monitor.start()
    log.info("metrics service ready", extra={"models": sorted(monitors)})
    return app
