"""The metrics service: sliding-window drift, data quality and model quality, exported to Prometheus."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask
from prometheus_client import CollectorRegistry

from evidently_service.config import load_config
from evidently_service.evaluator import ModelMonitor
from evidently_service.settings import Settings
from service_common.auth import TOKEN_CONFIG_KEY
from service_common.errors import register_error_handlers

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    """What the routes share: settings, one monitor per model, the metrics registry."""

    settings: Settings
    monitors: dict[str, ModelMonitor]
    registry: CollectorRegistry

    def stop(self) -> None:
        """Stop every background evaluation."""
        for monitor in self.monitors.values():
            monitor.stop()


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: load the config and references, re-warm the windows if asked, start evaluations."""
    from evidently_service.api import EXTENSION, bp
    from evidently_service.collector import MonitorCollector
    from evidently_service.rewarm import rewarm

    settings = settings or Settings.from_env()
    configs = load_config(settings.config_path, settings.model_name, settings.reference_path)
    monitors = {name: ModelMonitor.from_config(config) for name, config in configs.items()}
    registry = CollectorRegistry()
    registry.register(MonitorCollector(monitors))
    if settings.rewarm_from_mongodb:
        for monitor in monitors.values():
            rewarm(monitor, settings.mongodb_uri, settings.mongodb_database, settings.mongodb_timeout_ms)

    app = Flask(__name__)
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
