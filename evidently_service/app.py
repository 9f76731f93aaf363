"""Assemble the Flask app: config and references loaded, windows re-warmed if asked, evaluations started."""

from __future__ import annotations

import logging
from collections.abc import Callable

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


def check_folder_reference(config: ModelConfig) -> None:
    """Raise DescriptionError unless the config's reference file is there, readable and fits its description."""

    from monitoring_core.description import DescriptionError
    from monitoring_core.reference import read_reference
    from monitoring_core.reference_check import check_reference

    if not config.reference_path.is_file():
        raise DescriptionError(f"{config.reference_path}: no reference file (the model folder's reference rows)")
    try:
        reference = read_reference(config.reference_path)
    except (OSError, ValueError) as exc:
        raise DescriptionError(f"{config.reference_path}: not a readable parquet file: {exc}") from exc
    check_reference(config.description, reference, str(config.reference_path))


def added_model_loader(settings: Settings) -> Callable[[str], ModelMonitor | None]:
    """Return `load(name)`: the monitor of a folder `name` added to MODELS_DIR since the start, else None.

    The folder is checked as at the start (description, config, reference; ValueError otherwise),
    re-warmed from MongoDB when asked, and its evaluation started.
    """

    def load(name: str) -> ModelMonitor | None:
        folders = discover_models(settings.models_dir)
        if name not in folders:
            return None
        config = load_config(settings.config_path, {name: folders[name]})[name]
        check_folder_reference(config)
        monitor = ModelMonitor.from_config(config, folders[name])
        if settings.rewarm_from_mongodb:
            rewarm(monitor, settings.mongodb_uri, settings.mongodb_database, settings.mongodb_timeout_ms)
        if settings.run_evaluators:
            monitor.start()
        return monitor

    return load


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
    app.extensions[EXTENSION] = ServiceState(settings, monitors, registry, added_model_loader(settings))
    app.register_blueprint(bp)
    register_error_handlers(app)
    if settings.run_evaluators:
        for monitor in monitors.values():
            monitor.start()
    log.info("metrics service ready", extra={"models": sorted(monitors)})
    return app
