"""Assemble the Flask app: state on `app.extensions`, routes, JSON errors, request metrics."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request

from monitoring_core.model_folder import load_model_folder
from prediction_service import EXTENSION, metrics, store
from prediction_service.api import bp
from prediction_service.health import DependencyProbe
from prediction_service.inputs import InputError
from prediction_service.model_loader import ModelOutputError, load_served_model
from prediction_service.monitoring import Monitoring
from prediction_service.settings import Settings
from prediction_service.state import ServiceState
from prediction_service.unknown_fields import UnknownFieldLog
from service_common.errors import json_error, register_error_handlers

log = logging.getLogger(__name__)
# The `reason` of a 500 for a model's unusable answer (not an input error: not in validation.REASONS).
MODEL_OUTPUT = "model_output"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def build_app(settings: Settings) -> Flask:
    """Return the app serving MODEL_DIR's model; background threads start on first use (after gunicorn forks).

    A bad description raises DescriptionError, a model that cannot serve ModelLoadError (one line each).
    """
    app = Flask("prediction_service")
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes, MONITORING_TOKEN=settings.monitoring_token)
    folder = load_model_folder(settings.model_dir)
    model = load_served_model(folder, settings.model_path)
    name = folder.name
    mongo = store.connect(settings) if settings.log_to_mongodb else None
    collection = store.predictions(mongo, settings) if mongo is not None else None
    app.extensions[EXTENSION] = ServiceState(
        settings=settings,
        description=folder.description,
        model=model,
        monitoring=Monitoring(settings, folder.description),
        probe=DependencyProbe(
            mongo,
            settings.evidently_service_url if settings.forward_to_metrics else None,
            settings.health_cache_seconds,
            collection,
        ),
        mongo=mongo,
        collection=collection,
        unknown_fields=UnknownFieldLog(name, settings.unknown_fields),
    )
    metrics.MODEL_INFO.labels(name, model.version).set(1)
    for reason in ("raised", "unusable_answer"):  # at 0 from the start: the alert's increase() sees the first
        metrics.MODEL_ERRORS.labels(name, reason)
    register_error_handlers(app)
    _register_input_errors(app)
    _register_model_errors(app, folder.description.prediction_column, name)
    _register_request_metrics(app)
    app.register_blueprint(bp)
    return app


def _register_input_errors(app: Flask) -> None:
    @app.errorhandler(InputError)
    def input_error(exc: InputError):
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        for reason in exc.reasons:
            metrics.REJECTED_INPUTS.labels(endpoint, reason).inc()
        # Once per rejection, at info: visible with LOG_LEVEL=info, quiet by default (the counter always counts).
        log.info(
            "rejected input",
            extra={
                "endpoint": endpoint,
                "status": exc.status,
                "problems": [f"{d['field']}: {d.get('reason')}" for d in exc.details[:10]],
            },
        )
        return json_error(exc.status, exc.message, exc.details)


def _register_model_errors(app: Flask, prediction: str, model: str) -> None:
    @app.errorhandler(ModelOutputError)
    def model_output_error(exc: ModelOutputError):
        # Valid rows the model gave no usable answer for (NaN, None, a foreign class, or it raised): a 500 naming
        # the rows, nothing served, logged or forwarded (a NaN stored or forwarded would be refused downstream).
        details = [
            {
                "field": f"{index}.{prediction}" if exc.is_batch else prediction,
                "message": problem,
                "reason": MODEL_OUTPUT,
            }
            for index, problem in sorted(exc.problems.items())[:100]
        ]
        metrics.MODEL_ERRORS.labels(model, exc.reason).inc(len(exc.problems))
        log.error("the model gave no usable answer", extra={"rows": len(exc.problems), "first": str(exc)})
        return json_error(500, "the model gave no usable answer", details)


def _register_request_metrics(app: Flask) -> None:
    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observe(response):
        # Route templates, not paths, so label values stay bounded whatever clients request.
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        requests_total, latency = metrics.request_series(endpoint, method, str(response.status_code))
        requests_total.inc()
        started = g.get("started")
        if started is not None:
            latency.observe(time.perf_counter() - started)
        return response
