"""The OpenAPI 3.1 document of the API, generated from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from monitoring_core.records import DUPLICATE, INVALID, QUEUED, Label
from monitoring_core.validation import ride_model
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


def openapi_document(settings: Settings) -> dict[str, Any]:
    """Return the OpenAPI document, with the batch limits of `settings`."""
    ride, ride_defs = _schema(ride_model())
    if settings.unknown_fields != "reject":
        # UNKNOWN_FIELDS=keep|ignore: any other field is served (kept on the logged document, or ignored).
        ride["additionalProperties"] = True
        ride["description"] = (
            f"{ride.get('description', '')} Fields outside these are accepted and "
            + ("kept on the logged document (bounded)." if settings.unknown_fields == "keep" else "ignored.")
        ).strip()
    label, label_defs = _schema(Label)
    prediction = {
        "type": "object",
        "required": ["request_id", "duration", "model_version"],
        "properties": {
            "request_id": {"type": "string"},
            "duration": {"type": "number", "description": "minutes"},
            "model_version": {"type": "string"},
        },
    }
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
        "info": {"title": "Ride-duration prediction service", "version": "1.0.0"},
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict the duration of one ride, or of a batch of rides in order",
                    "description": (
                        "A batch is all or nothing: when any ride is invalid, none is served and the 400 names "
                        "every invalid ride by its index (`2.trip_distance`)."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": _json(
                            {
                                "oneOf": [
                                    {"$ref": _REF.format(model="Ride")},
                                    {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": settings.max_batch_rows,
                                        "items": {"$ref": _REF.format(model="Ride")},
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
                    "summary": "Queue the observed duration of served predictions (the first label accepted wins)",
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
                **ride_defs,
                **label_defs,
                "Ride": ride,
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
