"""The HTTP API of the served model: /predict, /feedback, /health, /openapi.json, /metrics."""

from __future__ import annotations

import json
import logging
import uuid

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel

from monitoring_core.documents import prediction_document
from monitoring_core.records import forwarded_row
from monitoring_core.validation import ride_id
from prediction_service import metrics
from prediction_service.inputs import parse_rows
from prediction_service.labels import read_feedback
from prediction_service.model_loader import ModelOutputError
from prediction_service.monitoring import utc_now_ms
from prediction_service.openapi import openapi_document
from prediction_service.state import current_state
from service_common.auth import require_token
from service_common.errors import json_error

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)


@bp.post("/predict")
def predict():
    """Predict one row (a JSON object) or a batch (a JSON list), all or nothing."""
    state = current_state()
    settings = state.settings
    description = state.description
    inputs, is_batch = parse_rows(request, description, settings.max_batch_rows, settings.unknown_fields)
    features = [_features(description.feature_names, item.row) for item in inputs]
    try:
        answers_of_model = state.model.predict_rows(features)
    except Exception as exc:  # noqa: BLE001 - whatever the model raises on valid rows: one clear answer
        log.exception("the model raised on valid rows", extra={"rows": len(features)})
        problem = f"the model raised {type(exc).__name__} for this input (the service's log has the details)"
        raise ModelOutputError(dict.fromkeys(range(len(features)), problem), is_batch, raised=True) from None
    if answers_of_model.problems:  # NaN, None, a class outside `classes`: never served, logged or forwarded
        raise ModelOutputError(answers_of_model.problems, is_batch)
    served_at = utc_now_ms()
    version = state.model.version
    name = state.model_name
    probabilities = answers_of_model.probabilities or [None] * len(inputs)
    columns = description.probability_columns
    retention = description.retention  # the TTL: MongoDB may delete the document this long after serving
    answers, docs, rows = [], [], []
    for item, values, prediction, probs in zip(
        inputs, features, answers_of_model.predictions, probabilities, strict=True
    ):
        request_id = ride_id(item.row) or uuid.uuid4().hex
        values = _logged(values)
        unknown = item.unknown
        answer = {"request_id": request_id, "prediction": prediction, "model_version": version}
        answer.update(dict.fromkeys(description.prediction.answer_keys, prediction))
        outputs = {description.prediction_column: prediction}
        if probs is not None:
            answer["probabilities"] = probs
            outputs.update({column: probs[cls] for cls, column in columns.items() if cls in probs})
        answers.append(answer)
        docs.append(prediction_document(request_id, served_at, name, version, values, outputs, unknown.kept, retention))
        rows.append(forwarded_row(request_id, served_at, version, values, outputs, unknown.names))
    if not state.monitoring.record_predictions(docs, rows):
        # PREDICTION_UNLOGGED=refuse: no prediction goes out without its log.
        message = "the prediction cannot be logged now (MongoDB and the spool are unavailable); retry shortly"
        response, status = json_error(503, "unlogged", [{"field": "body", "message": message, "reason": "unlogged"}])
        response.headers["Retry-After"] = "1"
        return response, status
    state.observe_predictions(answers_of_model.predictions)
    metrics.PREDICTIONS.labels(name, version).inc(len(answers))
    state.unknown_fields.record([item.unknown for item in inputs])
    return json_response(answers if is_batch else answers[0])


def json_response(payload: object) -> Response:
    """Return `payload` as the same bytes `jsonify` writes, without its per-call provider overhead (~40%)."""
    return Response(json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n", mimetype="application/json")


def _features(names: tuple[str, ...], row: BaseModel) -> dict:
    # Every described feature by name, as validated (datetimes as datetimes, for the model).
    return {name: getattr(row, name) for name in names}


def _logged(values: dict) -> dict:
    # Datetimes as ISO strings, as clients sent them, on the document and the forwarded row.
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}


@bp.post("/feedback")
@require_token
def feedback():
    """Queue ground truth for served predictions (`{"request_id", <target name>}` or a list); answer each item."""
    state = current_state()
    call = read_feedback(request, state.description, state.settings.max_batch_rows * 10, utc_now_ms())
    if not state.monitoring.record_labels(call.records):
        message = "too many labels are waiting to be written; send them again shortly"
        response, status = json_error(503, "busy", [{"field": "body", "message": message, "reason": "busy"}])
        response.headers["Retry-After"] = "1"
        return response, status
    call.count()
    return jsonify(call.answer()), 202


@bp.get("/health")
def health():
    """Report the model and the reachability of MongoDB and the metrics service; 200 even when they are down."""
    state = current_state()
    reach = state.probe.snapshot()
    # `degraded` (still 200: the model serves) while a record cannot be logged, with the reasons.
    problems, spool = state.monitoring.logging_state()
    return jsonify(
        {
            "status": "degraded" if problems else "ok",
            "degraded_reasons": problems,
            "model_name": state.model_name,
            "model_version": state.model.version,
            # Served answers for reference rows against the reference's recorded predictions (start check).
            "reference_check": state.model.reference_check,
            "mongodb": {
                "enabled": state.collection is not None,
                "reachable": reach.mongodb,
                # Names of missing indexes ([] when all exist, null when unknown): without the unique
                # request_id index a retried request is stored twice. The writer recreates them.
                "indexes_missing": list(reach.indexes_missing) if reach.indexes_missing is not None else None,
            },
            "metrics_service": {
                "enabled": state.settings.forward_to_metrics,
                "reachable": reach.metrics_service,
                # This worker's last forwards: reachable is not enough (a 401 for another token, a 404 for a
                # model it does not monitor drop every row while its /health answers).
                "forwarding": state.monitoring.forwarding(),
                # Its 4xx answer while it refuses the forwarded rows (404 unknown_model: its MODELS_DIR
                # lacks this model's folder), else null: reachable, yet monitoring nothing of this model.
                "refused": state.monitoring.forward_refusal(),
            },
            "queues": state.monitoring.sizes(),
            "spool": None
            if spool is None
            else {
                "records": spool.records,
                "capacity_records": spool.capacity,
                "free_bytes": spool.free_bytes,
                "used_bytes": spool.used_bytes,
            },
        }
    )


@bp.get("/openapi.json")
def openapi():
    """Return the OpenAPI 3.1 document of this API."""
    state = current_state()
    return jsonify(openapi_document(state.settings, state.description))


@bp.get("/metrics")
def prometheus_metrics():
    """Return the Prometheus metrics, merged over gunicorn workers."""
    current_state().monitoring.logging_state()  # the spool gauges, read from the folder now
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)
