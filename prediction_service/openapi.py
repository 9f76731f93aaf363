"""The OpenAPI 3.1 document of the API, generated from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from monitoring_core.records import Label
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
    error = {
        "type": "object",
        "required": ["error", "details"],
        "properties": {
            "error": {"type": "string"},
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "reason": {"type": "string"},
                    },
                },
            },
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
                    },
                }
            },
            "/feedback": {
                "post": {
                    "summary": "Record the observed duration of served predictions (first label wins)",
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
                                        "items": {"$ref": _REF.format(model="Label")},
                                    },
                                ]
                            }
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "labels applied; unknown and duplicate ids listed",
                            "content": _json({"$ref": _REF.format(model="FeedbackSummary")}),
                        },
                        "202": {
                            "description": "MongoDB unreachable: labels queued and applied later",
                            "content": _json({"$ref": _REF.format(model="FeedbackSummary")}),
                        },
                        "401": _error("missing or wrong bearer token (when MONITORING_TOKEN is set)"),
                        **rejections,
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
                "Error": error,
                "FeedbackSummary": {
                    "type": "object",
                    "properties": {
                        "accepted": {"type": "integer"},
                        "queued": {"type": "integer"},
                        "unknown": {"type": "array", "items": {"type": "string"}},
                        "duplicate": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    }
    if settings.monitoring_token:
        document["components"]["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
        document["paths"]["/feedback"]["post"]["security"] = [{"bearerAuth": []}]
    return document
