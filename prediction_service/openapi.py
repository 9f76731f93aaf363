"""The OpenAPI 3.1 document of the API, generated from the model's description by the pydantic models that validate."""

from __future__ import annotations

from typing import Any

from monitoring_core.description import ModelDescription
from monitoring_core.records import DUPLICATE, INVALID, QUEUED, label_model
from monitoring_core.validation import request_model
from prediction_service.settings import Settings

_REF = "#/components/schemas/{model}"


def _schema(model) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = model.model_json_schema(ref_template=_REF)
    defs = schema.pop("$defs", {})
    return schema, defs


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json({"$ref": _REF.format(model="Error")})}


def prediction_schema(description: ModelDescription) -> dict[str, Any]:
    """Return the schema of one /predict answer: the prediction typed by the task, its answer keys, probabilities."""
    unit = f" ({description.prediction.unit})" if description.prediction.unit else ""
    if description.is_classification:
        value: dict[str, Any] = {"enum": list(description.class_keys), "description": "predicted class"}
    else:
        value = {"type": "number", "description": f"predicted {description.target.name}{unit}"}
    properties: dict[str, Any] = {
        "request_id": {"type": "string"},
        "prediction": value,
        **{
            key: {**value, "description": f"the prediction again (kept for existing clients){unit}"}
            for key in description.prediction.answer_keys
        },
        "model_version": {"type": "string"},
    }
    if description.is_classification:
        properties["probabilities"] = {
            "type": "object",
            "description": "probability of each class (when the model gives probabilities)",
            "properties": {cls: {"type": "number", "minimum": 0, "maximum": 1} for cls in description.class_keys},
            "additionalProperties": False,
        }
    return {
        "type": "object",
        "required": ["request_id", "prediction", *description.prediction.answer_keys, "model_version"],
        "properties": properties,
    }


def openapi_document(settings: Settings, description: ModelDescription) -> dict[str, Any]:
    """Return the OpenAPI document of the model `description` describes, with the batch limits of `settings`."""
    row, row_defs = _schema(request_model(description))
    if settings.unknown_fields != "reject":
        # UNKNOWN_FIELDS=keep|ignore: any other field is served (kept on the logged document, or ignored).
        row["additionalProperties"] = True
        row["description"] = (
            f"{row.get('description', '')} Fields outside these are accepted and "
            + ("kept on the logged document (bounded)." if settings.unknown_fields == "keep" else "ignored.")
        ).strip()
    label, label_defs = _schema(label_model(description))
    prediction = prediction_schema(description)
    problem = {
        "type": "object",
        "required": ["field", "message"],
        "properties": {
            "field": {"type": "string"},
            "message": {"type": "string"},
            "reason": {"type": "string"},
        },
    }
    error = {
        "type": "object",
        "required": ["error", "details"],
        "properties": {
            "error": {"type": "string"},
            "details": {"type": "array", "items": {"$ref": _REF.format(model="Problem")}},
        },
    }
    feedback_item = {
        "type": "object",
        "description": "What happened to one item of the call, in request order.",
        "required": ["index", "request_id", "outcome"],
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "request_id": {"type": ["string", "null"], "description": "null when the item has no string id"},
            "outcome": {
                "enum": [QUEUED, DUPLICATE, INVALID],
                "description": "queued: valid, handed to the writer (whether it wins its prediction is decided "
                "there, see prediction_feedback_total); duplicate: its request_id came earlier in this call; "
                "invalid: see details",
            },
            "details": {"type": "array", "items": {"$ref": _REF.format(model="Problem")}},
        },
    }
    feedback_answer = {
        "type": "object",
        "required": [QUEUED, DUPLICATE, INVALID, "items"],
        "properties": {
            QUEUED: {"type": "integer"},
            DUPLICATE: {"type": "integer"},
            INVALID: {"type": "integer"},
            "items": {"type": "array", "items": {"$ref": _REF.format(model="FeedbackItem")}},
        },
    }
    rejections = {
        "400": _error("invalid input; `details` names each field and problem"),
        "409": _error("the same request_id twice in one batch"),
        "413": _error("body over the size limit"),
        "415": _error("content type is not application/json"),
    }
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": f"Prediction service: {description.name} ({description.task.value})",
            "description": description.description,
            "version": "1.0.0",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": f"Predict {description.name} for one row, or for a batch of rows in order",
                    "description": (
                        "A batch is all or nothing: when any row is invalid, none is served and the 400 names "
                        f"every invalid row by its index (`2.{description.feature_names[0]}`)."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {
                                "oneOf": [
                                    {"$ref": _REF.format(model="Request")},
                                    {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": settings.max_batch_rows,
                                        "items": {"$ref": _REF.format(model="Request")},
                                    },
                                ]
                            }
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "the prediction, or a list of them in request order",
                            "content": _json(
                                {
                                    "oneOf": [
                                        {"$ref": _REF.format(model="Prediction")},
                                        {"type": "array", "items": {"$ref": _REF.format(model="Prediction")}},
                                    ]
                                }
                            ),
                        },
                        **rejections,
                        "503": {
                            **_error(
                                "PREDICTION_UNLOGGED=refuse only: the prediction cannot be logged now (MongoDB "
                                "away and the spool or its disk full); send the call again"
                            ),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                }
            },
            "/feedback": {
                "post": {
                    "summary": f"Queue the observed {description.target.name} of served {description.name} "
                    "predictions (the first label accepted wins)",
                    "description": "Answered at once, item by item; the labels are written in the background. "
                    "A list is answered per item as long as one item is a valid Label; the others are "
                    "answered `invalid` with their problems.",
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {
                                "oneOf": [
                                    {"$ref": _REF.format(model="Label")},
                                    {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": settings.max_batch_rows * 10,
                                        "contains": {"$ref": _REF.format(model="Label")},
                                        "items": {"description": "a Label; anything else is answered invalid"},
                                    },
                                ]
                            }
                        ),
                    },
                    "responses": {
                        "202": {
                            "description": "valid labels queued; every item's outcome in `items`",
                            "content": _json({"$ref": _REF.format(model="FeedbackAnswer")}),
                        },
                        "400": _error(
                            "unreadable body, empty or oversized list, an invalid single label, or a list "
                            "without one valid label; `details` names each field and problem"
                        ),
                        "401": _error("missing or wrong bearer token (when MONITORING_TOKEN is set)"),
                        "413": rejections["413"],
                        "415": rejections["415"],
                        "503": {
                            **_error("labels fill their share of the writer's queue: send the call again"),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Model version and dependency reachability",
                    "responses": {
                        "200": {
                            "description": "always 200 while the process serves",
                            "content": _json({"type": "object"}),
                        }
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                **row_defs,
                **label_defs,
                "Request": row,
                "Label": label,
                "Prediction": prediction,
                "Problem": problem,
                "Error": error,
                "FeedbackItem": feedback_item,
                "FeedbackAnswer": feedback_answer,
            }
        },
    }
    if settings.monitoring_token:
        document["components"]["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
        document["paths"]["/feedback"]["post"]["security"] = [{"bearerAuth": []}]
    return document
