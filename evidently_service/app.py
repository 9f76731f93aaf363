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
from monitoring_core.model_folder import ModelFolder, discover_models
from monitoring_core.monitoring_config import ModelConfig, load_config
from service_common.auth import TOKEN_CONFIG_KEY
from service_common.errors import register_error_handlers

log = logging.getLogger(__name__)


def load_models(settings: Settings) -> tuple[dict[str, ModelFolder], dict[str, ModelConfig]]:
    """Return every model folder of `MODELS_DIR` and its monitoring config; DescriptionError / ConfigError when bad."""
    folders = discover_models(settings.models_dir)
    return folders, load_config(settings.config_path, folders)


def build_app(settings: Settings) -> Flask:
    """Return the app for `settings`, its evaluation threads started unless `run_evaluators` is off."""
    folders, configs = load_models(settings)
    monitors = {name: ModelMonitor.from_config(config, folders[name]) for name, config in configs.items()}
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
