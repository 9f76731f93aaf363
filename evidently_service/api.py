"""HTTP routes: /iterate and /feedback per model, /health and /metrics."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from evidently_service.evaluator import ModelMonitor
from evidently_service.rows import validate_labels, validate_rows
from evidently_service.state import current_state
from evidently_service.window import Label
from monitoring_core.description import REQUEST_ID
from monitoring_core.records import INVALID, label_item
from monitoring_core.unknown_fields import UNKNOWN_FIELDS
from service_common.auth import require_token
from service_common.body import BodyError, read_json_body
from service_common.errors import json_error

log = logging.getLogger(__name__)
bp = Blueprint("evidently_service", __name__)
MAX_DETAILS = 50  # per-row errors echoed back; the counts cover the rest


def _monitor(model: str) -> ModelMonitor | tuple[Response, int]:
    state = current_state()
    monitor = state.monitor(model)  # a folder added to MODELS_DIR since the start is loaded here
    if monitor is None:
        monitors = list(state.monitors)
        body = {
            "error": f"unknown model {model!r}",
            "known_models": sorted(monitors),
            "details": [
                {"field": "model", "message": f"known models: {', '.join(sorted(monitors))}", "reason": "unknown_model"}
            ],
        }
        return jsonify(body), 404
    return monitor


def _json_list(monitor: ModelMonitor | None) -> list[Any] | tuple[Response, int]:
    """Parse the body as a JSON list (one object counts as a list of one), or return the 4xx answer."""

    def reject(status: int, reason: str, message: str, rows: int = 1, field: str = "body") -> tuple[Response, int]:
        if monitor is not None:
            monitor.count("rejected", reason, rows)
        return json_error(status, message, [{"field": field, "message": message, "reason": reason}])

    try:
        body = read_json_body(request)
    except BodyError as exc:
        return reject(exc.status, exc.reason, exc.message, field=exc.field)
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        return reject(400, "not_an_object", "expected a JSON list of objects")
    limit = current_state().settings.max_rows_per_request
    if len(body) > limit:
        return reject(413, "too_many_rows", f"at most {limit} items per request, got {len(body)}", len(body))
    return body


def _details(bad: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [problem for entry in bad[:MAX_DETAILS] for problem in entry["problems"]]


@bp.post("/iterate/<model>")
@require_token
def iterate(model: str):
    """Append a batch of served predictions to the model's window."""
    monitor = _monitor(model)
    if not isinstance(monitor, ModelMonitor):
        return monitor
    items = _json_list(monitor)
    if not isinstance(items, list):
        return items
    good, bad = validate_rows(monitor.description, items)
    for entry in bad:  # one reason per rejected row, so the counter counts rows
        monitor.count("rejected", entry["problems"][0]["reason"] if entry["problems"] else "invalid_value")
    if bad and not good:
        return json_error(400, f"no valid row among {len(items)}", _details(bad))
    appended = monitor.window.append(good)
    monitor.unknown_fields.add((row[REQUEST_ID], row.get(UNKNOWN_FIELDS)) for row in good)
    monitor.count("received", "", appended.appended)
    monitor.count("rejected", "duplicate", appended.duplicates)
    if bad:
        log.info("rows rejected", extra={"model": model, "rejected": len(bad), "accepted": appended.appended})
    return jsonify(
        {
            "model": model,
            "accepted": appended.appended,
            "duplicates": appended.duplicates,
            # Valid new rows beyond the window's size in this one call: its newest rows are kept.
            "evicted": appended.evicted,
            "rejected": len(bad),
            "window_rows": len(monitor.window),
            "details": _details(bad),
        }
    )


@bp.post("/feedback/<model>")
@require_token
def feedback(model: str):
    """Join ground-truth labels to the model's window rows by request id."""
    monitor = _monitor(model)
    if not isinstance(monitor, ModelMonitor):
        return monitor
    items = _json_list(None)
    if not isinstance(items, list):
        return items
    if not items:
        return json_error(
            400, "empty list of labels", [{"field": "body", "message": "send at least one", "reason": "invalid_value"}]
        )
    good, bad = validate_labels(monitor.description, items, now=time.time())
    monitor.count("labels", "invalid", len(bad))
    if bad and not good:
        return json_error(400, f"no valid label among {len(items)}", _details(bad))
    result = monitor.window.add_labels(good)
    for name in ("matched", "pending", "duplicates", "pending_dropped"):
        monitor.count("labels", name, getattr(result, name))
    return jsonify(
        {
            "model": model,
            "matched": result.matched,
            "pending": result.pending,
            "duplicates": result.duplicates,
            "rejected": len(bad),
            "details": _details(bad),
            "items": _label_items(items, good, bad, result.outcomes),
        }
    )


def _label_items(
    items: list[Any], good: list[Label], bad: list[dict[str, Any]], outcomes: tuple[str, ...]
) -> list[dict[str, Any]]:
    # Every item in request order: the window's outcome for a valid label, `invalid` with its problems otherwise.
    problems = {entry["index"]: entry["problems"] for entry in bad}
    decided = iter(zip(good, outcomes, strict=True))
    answer = []
    for index, item in enumerate(items):
        if index in problems:
            request_id = item.get(REQUEST_ID) if isinstance(item, dict) else None
            answer.append(label_item(index, request_id, INVALID, problems[index]))
        else:
            (request_id, _, _), outcome = next(decided)
            answer.append(label_item(index, request_id, outcome))
    return answer


@bp.get("/health")
def health():
    """Report liveness and, per model, the window size and the last evaluation time."""
    models = {}
    for name, monitor in list(current_state().monitors.items()):
        latest = monitor.latest
        models[name] = {
            "window_rows": len(monitor.window),
            # Derived by the drift calibration at the first evaluation (the configured value until then).
            "min_rows": latest.min_rows if latest else monitor.config.min_rows,
            "last_evaluation": latest.computed_at if latest else None,
            "reference_rows": monitor.reference.rows,
            "reference_hash": monitor.reference.content_hash,
            "reference_duplicates_dropped": monitor.reference.duplicates_dropped,
            "task": monitor.description.task.value,
            # Whether the drift calibration came from `prepare` (prepared/calibration.json, hash matching).
            "calibration_prepared": monitor.prepared,
            # Per feature: the reference cannot calibrate a verdict at any window size (None until derived).
            "reference_too_small": monitor.reference_too_small,
            "quality_estimate": {"available": monitor.estimator is not None, "reason": monitor.estimation_reason},
        }
    return jsonify({"status": "ok", "models": models})


@bp.get("/metrics")
def metrics():
    """Expose every model's metrics in the Prometheus text format."""
    return Response(generate_latest(current_state().registry), mimetype=CONTENT_TYPE_LATEST)
